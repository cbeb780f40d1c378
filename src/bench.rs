//! `cnntui bench`: per-layer and whole-model speed of a model, measured after warm-up with
//! medians, on random inputs of the model's shape.
//!
//! Speed is shown here and in `benches/`, never by a test that times itself. A consumer of
//! the runtime like the dashboard and the headless printer; must not depend on `tui`.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::ir::Graph;
use crate::model::{LossSpec, OptimizerSpec};
use crate::runtime::{Backend, Loss, Mode, Optimizer, ParamStore, Plan, Rng, Session};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub mode: Mode,
    pub batch: usize,
    pub backend: Backend,
    /// Wall-clock budget for the measured iterations (at least `min_iters` run).
    pub budget: Duration,
    pub min_iters: usize,
}

/// One layer's figures.
#[derive(Clone, Debug, Serialize)]
pub struct LayerFigures {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The fused group this layer belongs to, if any.
    pub fused: Option<String>,
    pub forward_ms: f64,
    pub backward_ms: Option<f64>,
    /// Counted as the direct convolution's operations, so a Winograd layer's figure is an
    /// effective rate (it multiplies 2.25 times less).
    pub gflops: Option<f64>,
    /// The passes of a convolution that run by Winograd F(2×2, 3×3): `forward`,
    /// `input_grad`, `weight_grad`.
    pub winograd: Vec<&'static str>,
}

/// A whole run's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    /// Time to JIT-compile the model's kernels for this batch and mode (0 on other backends).
    pub compile_ms: f64,
    /// Layers the JIT left to the reference kernels, and why.
    pub warnings: Vec<String>,
    pub samples_per_s: f64,
    /// Samples per second of on-CPU time of all the process's threads (median), where Linux
    /// reports it: on a shared machine wall-clock time includes waiting for a core.
    pub cpu_samples_per_s: Option<f64>,
    pub gflops: f64,
    pub iterations: usize,
    pub layers: Vec<LayerFigures>,
}

/// Multiply-adds of one sample's forward pass through node `v`.
pub fn macs(g: &Graph, v: usize) -> usize {
    let node = &g.nodes[v];
    let c_in = node
        .inputs
        .first()
        .map_or(0, |&u| g.nodes[u].shape.channels());
    node.op.macs_per_sample(c_in, node.shape.elems())
}

/// On-CPU nanoseconds of all of this process's threads so far
/// (`/proc/self/task/*/schedstat`), if Linux reports them.
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// One model set up to run bench iterations: its session, parameters and a random batch.
struct Runner<'g> {
    graph: &'g Graph,
    mode: Mode,
    n: usize,
    loss: Loss,
    params: ParamStore,
    optimizer: Optimizer,
    rng: Rng,
    x: Vec<f32>,
    labels: Vec<u32>,
    plan: Plan,
    session: Session,
    grad: Vec<f32>,
    compile_ms: f64,
    warnings: Vec<String>,
    /// Per node, the passes of its convolution that run by Winograd (JIT only).
    winograd: Vec<Vec<&'static str>>,
    /// Per iteration: wall seconds, on-CPU seconds (when known), per-node forward and
    /// backward seconds.
    totals: Vec<f64>,
    cpu: Vec<f64>,
    per_layer: Vec<Vec<[f64; 2]>>,
}

impl<'g> Runner<'g> {
    /// Compiles (JIT) and warms up: buffers allocated, caches and thread pool warm.
    fn new(graph: &'g Graph, cfg: &BenchConfig) -> Self {
        let classes = graph.output_shape().elems();
        let loss_spec = if classes == 1 {
            LossSpec::BinaryCrossentropy
        } else {
            LossSpec::SparseCategoricalCrossentropy
        };
        let loss = Loss::new(loss_spec, graph);
        let params = ParamStore::init(graph, 0);
        let mut optimizer = Optimizer::new(OptimizerSpec::default(), graph);
        if cfg.backend == Backend::Jit {
            // The reference step stays when the JIT cannot compile it (said by the session).
            let _ = optimizer.use_jit(graph);
        }
        let mut rng = Rng::new(1);
        let n = cfg.batch;
        let x: Vec<f32> = (0..n * graph.input_shape().elems())
            .map(|_| rng.uniform(0.0, 1.0))
            .collect();
        let labels: Vec<u32> = (0..n)
            .map(|_| rng.below(classes.max(2)) as u32 % classes.max(1) as u32)
            .collect();
        let mut session = Session::new(graph, loss.link).with_backend(cfg.backend);
        let compiled = session.compiled(graph, n, cfg.mode);
        let compile_ms = compiled.as_ref().map_or(0.0, |c| c.compile_ms);
        let winograd = (0..graph.nodes.len())
            .map(|v| {
                compiled
                    .as_ref()
                    .map_or_else(Vec::new, |c| c.winograd_passes(v))
            })
            .collect();
        let warnings = session.take_warnings();
        let mut runner = Runner {
            graph,
            mode: cfg.mode,
            n,
            loss,
            params,
            optimizer,
            rng,
            x,
            labels,
            plan: Plan::new(graph, &[]),
            session,
            grad: Vec::new(),
            compile_ms,
            warnings,
            winograd,
            totals: Vec::new(),
            cpu: Vec::new(),
            per_layer: vec![Vec::new(); graph.nodes.len()],
        };
        runner.step();
        runner.step();
        runner
    }

    /// What the trainer does per batch (forward, loss, backward and an RMSprop update), or
    /// a forward pass.
    fn step(&mut self) {
        let (g, n) = (self.graph, self.n);
        let s = &mut self.session;
        s.forward(g, &self.params, &self.x, n, self.mode, &mut self.rng);
        if self.mode == Mode::Train {
            let grad = &mut self.grad;
            self.loss
                .evaluate(s.output(g), s.logits(), &self.labels, Some(grad));
            s.backward(g, &self.params, &self.plan, &self.grad);
            self.optimizer
                .apply(g, &mut self.params, &s.param_grads, &self.plan.weight_grad);
        }
    }

    /// One measured iteration.
    fn timed_step(&mut self) {
        self.session.start_timing();
        let cpu0 = process_cpu_ns();
        let t = Instant::now();
        self.step();
        self.totals.push(t.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu0, process_cpu_ns()) {
            self.cpu.push(b.saturating_sub(a) as f64 * 1e-9);
        }
        if let Some(times) = &self.session.timings {
            for (v, t) in times.iter().enumerate() {
                self.per_layer[v].push([t[0].as_secs_f64(), t[1].as_secs_f64()]);
            }
        }
    }

    /// The medians of the measured iterations.
    fn figures(self) -> Figures {
        let (graph, n) = (self.graph, self.n);
        let total = median(self.totals.clone());
        let train = self.mode == Mode::Train;
        let layers = graph
            .nodes
            .iter()
            .enumerate()
            .skip(1)
            .map(|(v, node)| {
                let fwd = median(self.per_layer[v].iter().map(|t| t[0]).collect());
                let bwd = median(self.per_layer[v].iter().map(|t| t[1]).collect());
                // Backward of a convolution or dense layer is two products of the forward's
                // size.
                let flops = 2.0 * (macs(graph, v) * n) as f64 * if train { 3.0 } else { 1.0 };
                let secs = fwd + if train { bwd } else { 0.0 };
                LayerFigures {
                    name: node.name.clone(),
                    kind: node.op.class_name().to_string(),
                    fused: graph.group_of(v).map(|(_, g)| g.kind.clone()),
                    forward_ms: fwd * 1e3,
                    backward_ms: train.then_some(bwd * 1e3),
                    gflops: (flops > 0.0 && secs > 0.0).then(|| flops / secs / 1e9),
                    winograd: self.winograd[v].clone(),
                }
            })
            .collect();
        let all_flops: f64 = (1..graph.nodes.len())
            .map(|v| 2.0 * (macs(graph, v) * n) as f64)
            .sum::<f64>()
            * if train { 3.0 } else { 1.0 };
        let iterations = self.totals.len();
        Figures {
            compile_ms: self.compile_ms,
            warnings: self.warnings,
            samples_per_s: n as f64 / total.max(1e-12),
            cpu_samples_per_s: (self.cpu.len() == iterations)
                .then(|| n as f64 / median(self.cpu).max(1e-12)),
            gflops: all_flops / total.max(1e-12) / 1e9,
            iterations,
            layers,
        }
    }
}

/// Most measured iterations of one run.
const MAX_ITERS: usize = 1000;

/// Runs `graph` repeatedly and measures it (after two warm-up iterations): at least
/// `cfg.min_iters` iterations and until `cfg.budget` has passed.
pub fn measure(graph: &Graph, cfg: &BenchConfig) -> Figures {
    let mut r = Runner::new(graph, cfg);
    let started = Instant::now();
    while r.totals.len() < cfg.min_iters || started.elapsed() < cfg.budget {
        r.timed_step();
        if r.totals.len() >= MAX_ITERS {
            break;
        }
    }
    r.figures()
}

/// Measures two graphs with their iterations alternated, so that both see the same machine:
/// on a shared host the speed of a core drifts from one minute to the next by more than
/// fusing a pool changes a layer. Returns `(a, b)`.
pub fn measure_alternated(a: &Graph, b: &Graph, cfg: &BenchConfig) -> (Figures, Figures) {
    let (mut ra, mut rb) = (Runner::new(a, cfg), Runner::new(b, cfg));
    let started = Instant::now();
    while ra.totals.len() < cfg.min_iters || started.elapsed() < cfg.budget {
        ra.timed_step();
        rb.timed_step();
        if ra.totals.len() >= MAX_ITERS {
            break;
        }
    }
    (ra.figures(), rb.figures())
}

/// One fused group with a pool, timed fused and unfused (forward plus, in training,
/// backward, summed over the group's layers; medians of alternated iterations).
#[derive(Clone, Debug, Serialize)]
pub struct FusionRow {
    /// The group's layers, head first.
    pub layers: Vec<String>,
    pub kind: String,
    pub fused_ms: f64,
    pub unfused_ms: f64,
}

/// Fused against unfused for every fused group of `graph` that contains a pooling layer:
/// `fused` measured on `graph`, `unfused` on the same model without the fusion pass (its
/// layers, by name, run one kernel each).
pub fn fusion_comparison(graph: &Graph, fused: &Figures, unfused: &Figures) -> Vec<FusionRow> {
    let time = |f: &Figures, name: &str| {
        f.layers
            .iter()
            .find(|l| l.name == name)
            .map_or(0.0, |l| l.forward_ms + l.backward_ms.unwrap_or(0.0))
    };
    graph
        .groups
        .iter()
        .filter(|g| {
            g.members.iter().any(|&m| {
                matches!(
                    graph.nodes[m].op,
                    crate::ir::Op::MaxPooling2D { .. } | crate::ir::Op::AveragePooling2D { .. }
                )
            })
        })
        .map(|g| {
            let layers: Vec<String> = g
                .members
                .iter()
                .map(|&m| graph.nodes[m].name.clone())
                .collect();
            FusionRow {
                kind: g.kind.clone(),
                fused_ms: layers.iter().map(|l| time(fused, l)).sum(),
                unfused_ms: layers.iter().map(|l| time(unfused, l)).sum(),
                layers,
            }
        })
        .collect()
}

/// The `--baselines` figures, each run capped at `budget`: the same model on the unfused JIT
/// (`unfused` is the graph before the fusion pass), on the reference kernels and on the
/// im2col + ndarray baseline, as `{name: {samples_per_s, gflops}}`; and the per-group fused
/// against unfused comparison ([`fusion_comparison`]), from the fused and unfused models
/// run alternately.
pub fn baselines(
    graph: &Graph,
    unfused: &Graph,
    cfg: &BenchConfig,
) -> (serde_json::Map<String, serde_json::Value>, Vec<FusionRow>) {
    let mut out = serde_json::Map::new();
    let (fused, unfused_jit) = measure_alternated(graph, unfused, cfg);
    let fusion = fusion_comparison(graph, &fused, &unfused_jit);
    let reference = BenchConfig {
        backend: Backend::Reference,
        ..cfg.clone()
    };
    let im2col = BenchConfig {
        backend: Backend::Im2col,
        ..cfg.clone()
    };
    for (name, f) in [
        ("unfused_jit", unfused_jit),
        ("reference", measure(graph, &reference)),
        ("im2col_ndarray", measure(graph, &im2col)),
    ] {
        out.insert(
            name.to_string(),
            serde_json::json!({
                "samples_per_s": f.samples_per_s,
                "cpu_samples_per_s": f.cpu_samples_per_s,
                "gflops": f.gflops,
            }),
        );
    }
    (out, fusion)
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
