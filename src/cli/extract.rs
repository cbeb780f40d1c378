//! `cnntui extract MODEL --out FILE [--layer NAME]`: runs the model's frozen convolutional
//! base (by default: up to the last layer of its `base`) once over every split of its
//! `train.data`, without augmentation, and stores the features with their labels
//! ([`cnntui::data::features`]). A model file with `data: Features(file: ...)` then trains a
//! small classifier on them — the fast feature extraction of the lecture.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use cnntui::data::pipeline::{Feed, Loader};
use cnntui::data::{Dataset, Samples, features};
use cnntui::ir::{self, Graph};
use cnntui::model::{self, ValidationSpec};
use cnntui::passes;
use cnntui::runtime::setup::load_data;
use cnntui::runtime::{Mode, OutputLink, ParamStore, Rng, Session};
use cnntui::weights;

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// A model file (RON) with a `base` and a `train.data` section, e.g.
    /// models/fashion_mobilenet_frozen.ron.
    model: PathBuf,
    /// The safetensors file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The layer whose output is stored (default: the last layer of the model's `base`).
    #[arg(long, value_name = "NAME")]
    layer: Option<String>,
    /// More weights, for every layer they name (after the `base` weights).
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Use only the first N training samples.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Samples per forward pass.
    #[arg(long, value_name = "N", default_value_t = 32)]
    batch_size: usize,
    /// Which kernels run the model: the JIT (default) or the reference kernels.
    #[arg(long, value_enum, default_value = "jit")]
    backend: super::BackendArg,
}

/// `graph` (with `tensors`) cut after node `cut`: the nodes after it dropped (nodes are in
/// topological order, so nothing `cut` reads comes later).
fn cut(graph: &mut Graph, tensors: &mut Vec<Vec<Vec<f32>>>, cut: usize) {
    graph.nodes.truncate(cut + 1);
    tensors.truncate(cut + 1);
    graph.output = cut;
    graph.groups.clear();
}

/// Runs `samples` through the session in batches: the output of every sample, in order.
fn run_split(
    session: &mut Session,
    graph: &Graph,
    params: &ParamStore,
    samples: Arc<Samples>,
    batch_size: usize,
) -> Result<Dataset> {
    let shape = graph.output_shape().0.clone();
    let shape = match shape[..] {
        [h, w, c] => [h, w, c],
        [d] => [1, 1, d],
        _ => bail!(
            "the layer's output {:?} is neither (h, w, c) nor flat",
            shape
        ),
    };
    let n = samples.len();
    let loader = Arc::new(Loader::new(samples.clone(), None, 0));
    let threads = loader.suggested_threads();
    let feed = Feed::new(loader, (0..n).collect(), batch_size, 0, None, threads);
    let mut rng = Rng::new(0);
    let mut images = Vec::with_capacity(n * shape.iter().product::<usize>());
    for batch in feed {
        for problem in &batch.problems {
            eprintln!("warning: {problem}");
        }
        session.forward(
            graph,
            params,
            &batch.x,
            batch.labels.len(),
            Mode::Infer,
            &mut rng,
        );
        for w in session.take_warnings() {
            eprintln!("warning: {w}");
        }
        images.extend_from_slice(session.output(graph));
    }
    Ok(Dataset {
        shape,
        images,
        labels: samples.labels.clone(),
        classes: samples.classes,
    })
}

pub fn extract(args: ExtractArgs) -> Result<i32> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let file = model::load(&args.model).map_err(ir::LoadError::from)?;
    let mut graph = ir::lower(&file)?;
    let layer = match (&args.layer, &graph.base_output) {
        (Some(l), _) => l.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => bail!(
            "{}: the model has no `base`; name the layer whose output to store with --layer",
            args.model.display()
        ),
    };
    let Some(at) = graph.node_by_name(&layer) else {
        let hint = model::suggest_name(&layer, graph.nodes.iter().map(|n| n.name.as_str()));
        bail!(
            "{}: --layer {layer} names no layer of this model{hint}",
            args.model.display()
        );
    };
    if at == 0 {
        bail!("--layer names the input; name a layer of the base, e.g. its last one");
    }
    let Some(spec) = file.spec.train.clone() else {
        bail!(
            "{}: the model has no `train` section, so no data to extract features from: add one \
             with `data` (see models/fashion_mobilenet_frozen.ron)",
            args.model.display()
        );
    };
    super::writable_file(&args.out).map_err(|why| {
        anyhow::anyhow!(
            "{}: cannot write the features there: {why}; create the directory or choose another --out",
            args.out.display()
        )
    })?;

    let mut params = ParamStore::init(&graph, spec.seed);
    let (warnings, preprocessing) =
        weights::load_for_model(&graph, &mut params.tensors, args.weights.as_deref())?;
    if graph.base_weights.is_empty() && args.weights.is_none() {
        eprintln!(
            "warning: no weights: the features come from randomly initialised layers (give the \
             base `weights: \"FILE\"` or pass --weights)"
        );
    }
    cut(&mut graph, &mut params.tensors, at);
    for w in warnings {
        eprintln!("warning: {w}");
    }
    passes::optimize(&mut graph, &passes::Target::default())
        .map_err(|e| super::Internal(e.to_string()))?;
    let normalise = preprocessing.as_ref().and_then(|p| p.normalisation());
    let loaded = load_data(&file, &spec, args.limit, normalise.as_ref())?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    if spec.augment.is_some() {
        eprintln!(
            "note: `train.augment` is not applied: stored features are computed once per sample"
        );
    }
    let data = loaded.data;
    let mut splits: Vec<(&str, Arc<Samples>)> = vec![("train", data.train.clone())];
    // With TestSplit the validation samples are the test samples: stored once, as `test`.
    if spec.validation != ValidationSpec::TestSplit
        && let Some(v) = &data.validation
    {
        splits.push(("validation", v.clone()));
    }
    if let Some(t) = &data.test {
        splits.push(("test", t.clone()));
    }
    let class_names = data.train.class_names.clone();
    let mut session = Session::new(&graph, OutputLink::Output).with_backend(args.backend.into());
    let mut done: Vec<(&str, Dataset)> = Vec::new();
    for (name, samples) in splits {
        let started = Instant::now();
        let d = run_split(&mut session, &graph, &params, samples, args.batch_size)
            .with_context(|| format!("extracting the {name} features"))?;
        let secs = started.elapsed().as_secs_f64();
        outln!(
            "{name}: {} samples -> {:?} features of `{layer}` in {secs:.1} s ({:.0} samples/s)",
            d.len(),
            d.shape,
            d.len() as f64 / secs.max(1e-9)
        )?;
        done.push((name, d));
    }
    let refs: Vec<(&str, &Dataset)> = done.iter().map(|(n, d)| (*n, d)).collect();
    let meta = vec![
        ("model", args.model.display().to_string()),
        ("layer", layer.clone()),
        (
            "preprocessing",
            preprocessing
                .as_ref()
                .map_or_else(|| "rescale".to_string(), |p| p.describe()),
        ),
    ];
    features::write(&args.out, &refs, &class_names, &meta).map_err(|why| {
        anyhow::anyhow!("{}: cannot write the features: {why}", args.out.display())
    })?;
    let bytes = std::fs::metadata(&args.out).map_or(0, |m| m.len());
    outln!(
        "wrote {} ({:.1} MB); train a classifier on it with a model file whose data is \
         `Features(file: \"...\")` (the path relative to that model file)",
        args.out.display(),
        bytes as f64 / 1e6,
    )?;
    Ok(0)
}
