//! The command line (clap): `cnntui MODEL` (the dashboard), `cnntui train`, `cnntui summary`,
//! `cnntui bench`, `cnntui predict`, `cnntui weights`, `cnntui extract`, `cnntui viz`,
//! `cnntui plot`, `cnntui image` (classic image operations, [`image`]). Errors are printed with
//! their chain; bad input exits with status 2.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use cnntui::headless::Printer;
use cnntui::ir;
use cnntui::passes;
use cnntui::runtime::setup::{self, Overrides};
use cnntui::runtime::{Backend, Mode};

/// `print!` for a command's output: a reader that has gone away (`| head`) is not an error —
/// the rest of the output is dropped and the work goes on; another write error is returned.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cnntui_cli::emit(&format!($($arg)*))
    };
}

/// `println!` for a command's output, as [`out!`].
macro_rules! outln {
    () => {
        $crate::cnntui_cli::emit("\n")
    };
    ($($arg:tt)*) => {
        $crate::cnntui_cli::emit(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes `text` to stdout; a reader that has gone away (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// Checks, before any work, that `file` can be created: its directory exists and takes a
/// file. The error is the reason, for the caller's own message.
fn writable_file(file: &Path) -> std::result::Result<(), String> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("the directory {} does not exist", dir.display()));
    }
    writable_dir(dir)
}

/// Checks that a file can be written in the existing directory `dir`.
fn writable_dir(dir: &Path) -> std::result::Result<(), String> {
    let probe = dir.join(format!(".cnntui-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

// Loaded through `#[path]` from main.rs, so each submodule's file is named explicitly.
#[path = "cli/extract.rs"]
mod extract;
#[path = "cli/image.rs"]
mod image;
#[path = "cli/predict.rs"]
mod predict;
#[path = "cli/viz.rs"]
mod viz;
#[path = "cli/weights.rs"]
mod weights;

/// Learn, train and inspect convolutional networks on a CPU, from a terminal.
#[derive(Debug, Parser)]
#[command(
    name = "cnntui",
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// With no subcommand: the dashboard for MODEL (on a terminal; otherwise, or with
    /// `--headless`, the same training as `train --headless`).
    #[command(flatten)]
    train: TrainArgs,
    /// Draw the dashboard with plain ASCII characters and no colour (also when NO_COLOR is set).
    #[arg(long)]
    ascii: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Train a model on the data its `train` section names.
    Train(TrainArgs),
    /// Print the model in Keras's `model.summary()` layout.
    Summary {
        /// A model file (RON), e.g. models/mnist.ron.
        model: PathBuf,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Which fusion to show: inference folds batch normalisation, training cannot.
        #[arg(long, value_enum, default_value = "infer")]
        mode: ModeArg,
    },
    /// Measure compile time, per-layer forward and backward time and GFLOP/s, samples/s.
    Bench(BenchArgs),
    /// Draw a training history (loss and accuracy, raw and smoothed) as a PNG.
    Plot {
        /// A history.json written by training, or the run directory that holds it.
        history: PathBuf,
        /// The PNG to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Classify photographs: the top-5 classes of each, with probabilities.
    Predict(predict::PredictArgs),
    /// List a weights file's tensors and how they map onto a model.
    Weights(weights::WeightsArgs),
    /// Run a model's frozen base once over its data and store the features (safetensors),
    /// for a classifier trained with `data: Features(file: ...)`.
    Extract(extract::ExtractArgs),
    /// Look inside a model: activations, filters by gradient ascent, Grad-CAM heatmaps.
    #[command(subcommand)]
    Viz(viz::VizCommand),
    /// Run one classic image operation on a picture: `cnntui image OP IN OUT [options]`.
    Image {
        #[command(subcommand)]
        op: image::ImageCommand,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ModeArg {
    Infer,
    Train,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Infer => Mode::Infer,
            ModeArg::Train => Mode::Train,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    /// Cranelift-compiled, fused kernels (the default).
    Jit,
    /// The plain-Rust reference kernels.
    Reference,
    /// One im2col buffer per layer and ndarray's GEMM (a baseline).
    Im2col,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::Jit => Backend::Jit,
            BackendArg::Reference => Backend::Reference,
            BackendArg::Im2col => Backend::Im2col,
        }
    }
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// A model file (RON), e.g. models/vgg16.ron.
    model: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[arg(long, value_enum, default_value = "infer")]
    mode: ModeArg,
    /// Samples per batch (default 64 for training, 256 for inference).
    #[arg(long)]
    batch: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    #[arg(long, value_enum, default_value = "jit")]
    backend: BackendArg,
    /// Also measure the other implementations side by side (time-capped).
    #[arg(long)]
    baselines: bool,
    /// Seconds of measurement per implementation (after warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// A model file (RON), e.g. models/mnist.ron.
    #[arg(required = true)]
    model: Option<PathBuf>,
    /// Print Keras-style progress lines instead of the dashboard.
    #[arg(long)]
    headless: bool,
    /// Number of epochs (overrides the model file).
    #[arg(long)]
    epochs: Option<usize>,
    /// Samples per batch (overrides the model file).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Directory for checkpoints and history.json (default runs/MODEL_NAME).
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    /// Continue from a checkpoint written by an earlier run.
    #[arg(long, value_name = "CKPT")]
    resume: Option<PathBuf>,
    /// Use only the first N training samples.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Seed for initialisation, shuffling, dropout and augmentation (overrides the model file).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Which kernels run the model: the JIT (default) or the reference kernels.
    #[arg(long, value_enum, default_value = "jit")]
    backend: BackendArg,
    /// Weights to start from, for every layer they name: safetensors, PyTorch .pth/.pt or a
    /// cnntui checkpoint (loaded after the model's `base` weights).
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
}

/// An error that is the program's fault rather than the input's (exit status 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Internal(String);

/// Runs the command line; returns the exit status.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if err.downcast_ref::<Internal>().is_some() {
                1
            } else {
                2
            }
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Some(Cmd::Summary { model, json, mode }) => summary(&model, json, mode.into()),
        Some(Cmd::Bench(args)) => bench(args),
        Some(Cmd::Train(args)) => train(args),
        Some(Cmd::Plot { history, out }) => plot(&history, &out),
        Some(Cmd::Predict(args)) => predict::predict(args),
        Some(Cmd::Weights(args)) => weights::weights(args),
        Some(Cmd::Extract(args)) => extract::extract(args),
        Some(Cmd::Viz(command)) => viz::viz(command),
        Some(Cmd::Image { op }) => image::run(&op),
        None if !cli.train.headless && std::io::stdout().is_terminal() => {
            dashboard(cli.train, cli.ascii)
        }
        None => train(cli.train),
    }
}

fn plot(history: &Path, out: &Path) -> Result<i32> {
    use cnntui::runtime::History;
    use cnntui::runtime::history::HISTORY_FILE;
    let file = if history.is_dir() {
        history.join(HISTORY_FILE)
    } else {
        history.to_path_buf()
    };
    let read = History::read(&file).with_context(|| {
        format!(
            "{}: cannot read a training history; give the history.json a training run wrote \
             (runs/MODEL/history.json) or its directory",
            file.display()
        )
    })?;
    cnntui::viz::plot::write_history_plot(&read, out)?;
    outln!(
        "{}: {} epochs of loss and accuracy",
        out.display(),
        read.epochs()
    )?;
    Ok(0)
}

fn summary(model: &Path, json: bool, mode: Mode) -> Result<i32> {
    let mut graph = ir::load(model)?;
    let target = passes::Target {
        training: mode == Mode::Train,
        requested: vec![],
    };
    passes::optimize(&mut graph, &target).map_err(|e| Internal(e.to_string()))?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&ir::summary_json(&graph))?
        )?;
    } else {
        out!("{}", ir::render_summary(&graph))?;
    }
    Ok(0)
}

/// Sets rayon's global pool to `threads`, saying so when that is more than the cores.
fn set_threads(threads: Option<usize>) -> Result<()> {
    let Some(threads) = threads else {
        return Ok(());
    };
    if threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads > cores {
        eprintln!(
            "note: --threads {threads} is more than the {cores} cores of this machine; threads will share cores"
        );
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| Internal(e.to_string()))?;
    Ok(())
}

/// A throughput with three significant digits at least (`1.55`, `23.4`, `8519`): VGG16's
/// images per second are not rounded to one decimal.
fn rate(x: f64) -> String {
    match x {
        x if x >= 100.0 => format!("{x:.0}"),
        x if x >= 10.0 => format!("{x:.1}"),
        _ => format!("{x:.2}"),
    }
}

fn bench(args: BenchArgs) -> Result<i32> {
    use cnntui::bench::{BenchConfig, measure, peak_rss_mb};
    set_threads(args.threads)?;
    let mode: Mode = args.mode.into();
    let batch = args
        .batch
        .unwrap_or(if mode == Mode::Train { 64 } else { 256 });
    if batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        anyhow::bail!("--seconds must be a positive number");
    }
    let mut graph = ir::load(&args.model)?;
    let unfused = graph.clone();
    let backend = args.backend.into();
    let passes_started = std::time::Instant::now();
    let target = passes::Target {
        training: mode == Mode::Train,
        requested: vec![],
    };
    passes::optimize(&mut graph, &target).map_err(|e| Internal(e.to_string()))?;
    let passes_ms = passes_started.elapsed().as_secs_f64() * 1e3;
    let budget = std::time::Duration::from_secs_f64(args.seconds);
    let cfg = BenchConfig {
        mode,
        batch,
        backend,
        budget,
        min_iters: 3,
    };
    let figures = measure(&graph, &cfg);
    let compile_ms = passes_ms + figures.compile_ms;
    for w in &figures.warnings {
        eprintln!("warning: {w}");
    }
    let capped = BenchConfig {
        budget: budget.min(std::time::Duration::from_secs(10)),
        ..cfg.clone()
    };
    let (baselines, fusion) = if args.baselines {
        let (b, f) = cnntui::bench::baselines(&graph, &unfused, &capped);
        (Some(b), f)
    } else {
        (None, Vec::new())
    };
    let threads = rayon::current_num_threads();
    let peak = peak_rss_mb();
    let mode_name = if mode == Mode::Train {
        "train"
    } else {
        "infer"
    };
    let backend_name = format!("{:?}", args.backend).to_lowercase();
    if args.json {
        let mut v = serde_json::json!({
            "model": graph.name,
            "backend": backend_name,
            "compile_ms": compile_ms,
            "mode": mode_name,
            "batch": batch,
            "threads": threads,
            "samples_per_s": figures.samples_per_s,
            "cpu_samples_per_s": figures.cpu_samples_per_s,
            "gflops": figures.gflops,
            "peak_rss_mb": peak,
            "iterations": figures.iterations,
            "layers": figures.layers,
        });
        if let Some(b) = baselines {
            v["baselines"] = serde_json::Value::Object(b);
            v["fusion"] = serde_json::to_value(&fusion)?;
        }
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    outln!(
        "{}: {mode_name}, batch {batch}, {threads} threads, backend {backend_name}",
        graph.name
    )?;
    outln!("compile: {compile_ms:.1} ms")?;
    outln!(
        "{:<28} {:<22} {:>11} {:>12} {:>9}  fused",
        "layer",
        "type",
        "forward ms",
        "backward ms",
        "GFLOP/s"
    )?;
    for l in &figures.layers {
        let bwd = l.backward_ms.map_or("-".to_string(), |b| format!("{b:.3}"));
        let gf = l.gflops.map_or("-".to_string(), |g| format!("{g:.1}"));
        let winograd = if l.winograd.is_empty() {
            String::new()
        } else {
            format!("  Winograd: {}", l.winograd.join(", "))
        };
        outln!(
            "{:<28} {:<22} {:>11.3} {:>12} {:>9}  {}{winograd}",
            l.name,
            l.kind,
            l.forward_ms,
            bwd,
            gf,
            l.fused.as_deref().unwrap_or("")
        )?;
    }
    if figures.layers.iter().any(|l| !l.winograd.is_empty()) {
        outln!(
            "(GFLOP/s count a direct convolution's operations: a Winograd layer's is an effective rate)"
        )?;
    }
    outln!(
        "whole model: {} samples/s, {:.1} GFLOP/s ({} iterations, medians)",
        rate(figures.samples_per_s),
        figures.gflops,
        figures.iterations
    )?;
    if let Some(p) = peak {
        outln!("peak RSS: {p:.0} MiB")?;
    }
    if let Some(b) = baselines {
        for (name, v) in b {
            outln!(
                "baseline {name}: {} samples/s",
                rate(v["samples_per_s"].as_f64().unwrap_or(0.0))
            )?;
        }
    }
    for f in &fusion {
        outln!(
            "fused {} ({}): {:.3} ms, unfused {:.3} ms",
            f.layers.join(" + "),
            f.kind,
            f.fused_ms,
            f.unfused_ms
        )?;
    }
    Ok(0)
}

fn train(args: TrainArgs) -> Result<i32> {
    let model = args.model.clone().context(
        "no model file given: pass one, e.g. `cnntui train models/mnist.ron --headless`",
    )?;
    set_threads(args.threads)?;
    let prepared = setup::prepare(&model, &overrides(&args))?;
    for w in &prepared.warnings {
        eprintln!("warning: {w}");
    }
    let trainer = prepared.trainer;
    let interrupt = trainer.interrupt.clone();
    // Ctrl-C: finish the batch, save, exit. A second Ctrl-C while saving is ignored.
    ctrlc::set_handler(move || interrupt.store(true, Ordering::Relaxed))
        .map_err(|e| Internal(format!("cannot install the Ctrl-C handler: {e}")))?;
    let interrupted = trainer.interrupt.clone();
    let (tx, commands) = std::sync::mpsc::channel();
    let (events, handle) = trainer.spawn(commands);
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal() && std::env::var_os("CI").is_none();
    let mut printer = Printer::new(stdout.lock(), tty);
    let mut failed = false;
    for event in events {
        if matches!(event, cnntui::runtime::Event::Error(_)) {
            failed = true;
        }
        if let Some(cmd) = printer.event(&event).context("cannot write to stdout")? {
            let _ = tx.send(cmd);
        }
    }
    let outcome = handle
        .join()
        .map_err(|_| Internal("the trainer thread panicked".into()))?;
    if interrupted.load(Ordering::Relaxed) {
        eprintln!("Interrupted: saved {}", outcome.checkpoint.display());
        return Ok(130);
    }
    Ok(if failed || outcome.stopped_early {
        1
    } else {
        0
    })
}

/// `cnntui MODEL` on a terminal: the dashboard. Bad input is printed after the terminal is
/// restored, with exit status 2, as for `train`.
fn dashboard(args: TrainArgs, ascii: bool) -> Result<i32> {
    let model = args
        .model
        .as_deref()
        .context("no model file given: pass one, e.g. `cnntui models/mnist.ron`")?;
    set_threads(args.threads)?;
    let theme = cnntui::tui::Theme::from_env(ascii);
    match cnntui::tui::run_dashboard(model, overrides(&args), theme) {
        Ok(exit) => Ok(exit.code),
        Err(cnntui::tui::TuiError::Setup(e)) => Err(e.into()),
        Err(e) => Err(Internal(e.to_string()).into()),
    }
}

fn overrides(args: &TrainArgs) -> Overrides {
    Overrides {
        epochs: args.epochs,
        batch_size: args.batch_size,
        limit: args.limit,
        save: args.save.clone(),
        resume: args.resume.clone(),
        seed: args.seed,
        backend: args.backend.into(),
        weights: args.weights.clone(),
    }
}
