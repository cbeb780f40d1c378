//! `cnntui predict MODEL --weights W IMAGE...`: the top-5 classes of each image, with the
//! preprocessing recorded with the weights (torchvision's for PyTorch files).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use cnntui::data::image::Image;
use cnntui::ir::{self, Graph};
use cnntui::model::{self, DataSpec};
use cnntui::passes;
use cnntui::runtime::{Backend, Mode, OutputLink, ParamStore, Rng, Session};
use cnntui::weights::{self, Preprocessing};
use cnntui_kernels::reference::Activation;

/// Images per forward pass.
const CHUNK: usize = 8;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A model file (RON), e.g. models/mobilenet_v2.ron.
    model: PathBuf,
    /// Photographs to classify (JPEG, PNG, BMP, GIF, WebP).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Weights for every layer: safetensors, PyTorch .pth/.pt, or a cnntui checkpoint.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Print one JSON array: per image its `file` and `top5` (`class_index`, `class_name`,
    /// `probability`).
    #[arg(long)]
    json: bool,
    /// Also print the pre-softmax scores (with --json, every class's).
    #[arg(long)]
    logits: bool,
    /// Which kernels run the model: the JIT (default) or the reference kernels.
    #[arg(long, value_enum, default_value = "jit")]
    backend: super::BackendArg,
}

/// One image's result.
struct Prediction {
    file: PathBuf,
    logits: Vec<f32>,
    probabilities: Vec<f32>,
}

impl Prediction {
    /// Class indices by falling probability, the first `k`.
    fn top(&self, k: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.probabilities.len()).collect();
        idx.sort_by(|&a, &b| self.probabilities[b].total_cmp(&self.probabilities[a]));
        idx.truncate(k);
        idx
    }
}

fn class_name(classes: usize, i: usize) -> String {
    match weights::imagenet_class(i) {
        Some(name) if classes == weights::imagenet_class_count() => name.to_string(),
        _ => format!("class {i}"),
    }
}

/// The transform used when the weights record none: the model's own `rescale` (1/255 unless
/// its `train.data` says otherwise), after resizing to the input.
pub(super) fn default_preprocessing(file: &model::ModelFile) -> Preprocessing {
    let factor = match file.spec.train.as_ref().map(|t| &t.data) {
        Some(DataSpec::Idx {
            rescale: Some(r), ..
        }) => *r as f32,
        _ => 1.0 / 255.0,
    };
    Preprocessing::Rescale { factor }
}

/// A model lowered for inference with its weights loaded, and the preprocessing they need.
pub(super) struct Ready {
    pub graph: Graph,
    pub params: ParamStore,
    pub preprocessing: Preprocessing,
}

/// Loads `model`, its base weights and `extra`, for inference.
pub(super) fn ready(model_path: &Path, extra: Option<&Path>) -> Result<Ready> {
    let file = model::load(model_path).map_err(ir::LoadError::from)?;
    let mut graph = ir::lower(&file)?;
    passes::optimize(&mut graph, &passes::Target::default())
        .map_err(|e| super::Internal(e.to_string()))?;
    if graph.base_weights.is_empty() && extra.is_none() {
        bail!(
            "{}: no weights to predict with: pass `--weights FILE` (safetensors, PyTorch .pth or a \
             cnntui checkpoint) or give the model a `base: (..., weights: \"FILE\")`",
            model_path.display()
        );
    }
    let mut params = ParamStore::init(&graph, 0);
    let (warnings, recorded) = weights::load_for_model(&graph, &mut params.tensors, extra)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let preprocessing = recorded.unwrap_or_else(|| default_preprocessing(&file));
    Ok(Ready {
        graph,
        params,
        preprocessing,
    })
}

fn softmax(v: &[f32]) -> Vec<f32> {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|x| x / sum).collect()
}

/// Runs the images through the model in chunks.
fn classify(r: &Ready, images: &[PathBuf], backend: Backend) -> Result<Vec<Prediction>> {
    let (h, w, c) = r.graph.input_shape().hwc().with_context(|| {
        format!(
            "the model's input {} is not an image (height, width, channels)",
            r.graph.input_shape()
        )
    })?;
    // Every image is read before any is classified: a bad file stops the run up front.
    let mut inputs = Vec::with_capacity(images.len());
    for path in images {
        let img = Image::open(path)?;
        let x = r
            .preprocessing
            .apply(&img, (h, w, c))
            .with_context(|| format!("{}: cannot preprocess the image", path.display()))?;
        inputs.push(x);
    }
    let out_node = &r.graph.nodes[r.graph.output];
    let activation = out_node.op.activation().unwrap_or(Activation::Linear);
    let classes = out_node.shape.elems();
    let mut session = Session::new(&r.graph, OutputLink::Logits).with_backend(backend);
    let mut rng = Rng::new(0);
    let mut out = Vec::with_capacity(images.len());
    for (chunk, paths) in inputs.chunks(CHUNK).zip(images.chunks(CHUNK)) {
        let x: Vec<f32> = chunk.concat();
        let n = chunk.len();
        session.forward(&r.graph, &r.params, &x, n, Mode::Infer, &mut rng);
        for w in session.take_warnings() {
            eprintln!("warning: {w}");
        }
        let y = session.output(&r.graph);
        let z = session.logits();
        for (i, path) in paths.iter().enumerate() {
            let y = &y[i * classes..(i + 1) * classes];
            let (logits, probabilities) = match activation {
                Activation::Softmax if z.len() == n * classes => {
                    (z[i * classes..(i + 1) * classes].to_vec(), y.to_vec())
                }
                Activation::Softmax => (y.iter().map(|p| p.ln()).collect(), y.to_vec()),
                Activation::Sigmoid if classes == 1 => {
                    let p = y[0];
                    (vec![-(1.0 / p - 1.0).ln()], vec![1.0 - p, p])
                }
                _ => (y.to_vec(), softmax(y)),
            };
            out.push(Prediction {
                file: path.clone(),
                logits,
                probabilities,
            });
        }
    }
    Ok(out)
}

pub fn predict(args: PredictArgs) -> Result<i32> {
    use std::fmt::Write;
    let r = ready(&args.model, args.weights.as_deref())?;
    let predictions = classify(&r, &args.images, args.backend.into())?;
    if args.json {
        let v: Vec<serde_json::Value> = predictions
            .iter()
            .map(|p| {
                let classes = p.probabilities.len();
                let top5: Vec<serde_json::Value> = p
                    .top(5)
                    .into_iter()
                    .map(|i| {
                        serde_json::json!({
                            "class_index": i,
                            "class_name": class_name(classes, i),
                            "probability": p.probabilities[i],
                        })
                    })
                    .collect();
                let mut o = serde_json::json!({
                    "file": p.file.display().to_string(),
                    "top5": top5,
                });
                if args.logits {
                    o["logits"] = serde_json::json!(p.logits);
                }
                o
            })
            .collect();
        super::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
        return Ok(0);
    }
    let mut out = String::new();
    for (k, p) in predictions.iter().enumerate() {
        if k > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", p.file.display())?;
        let classes = p.probabilities.len();
        for (rank, i) in p.top(5).into_iter().enumerate() {
            let name = format!("{} ({i})", class_name(classes, i));
            let pct = 100.0 * p.probabilities[i];
            if args.logits && p.logits.len() == classes {
                writeln!(
                    out,
                    "  {}. {name:<34} {pct:6.2}%   logit {:9.4}",
                    rank + 1,
                    p.logits[i]
                )?;
            } else {
                writeln!(out, "  {}. {name:<34} {pct:6.2}%", rank + 1)?;
            }
        }
    }
    super::emit(&out)?;
    Ok(0)
}
