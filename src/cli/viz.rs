//! `cnntui viz activations | filters | heatmap`: the three classic ways of looking inside a
//! convnet, written as PNGs, with the weights and preprocessing `predict` uses.
//!
//! Every output location is checked for writing before any work starts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use cnntui::data::image::Image;
use cnntui::ir::{self, Graph};
use cnntui::model;
use cnntui::runtime::{Backend, ParamStore};
use cnntui::viz::filters::{AscentSettings, PixelNorm, ascend, deprocess, first_layer_kernels};
use cnntui::viz::grid::{overlay, tile};
use cnntui::viz::layers::{feature_layer, has_feature_map};
use cnntui::viz::{VizError, activations, gradcam};
use cnntui::weights::{self, Preprocessing};

#[derive(Debug, Subcommand)]
pub enum VizCommand {
    /// Every convolution, pooling and activation layer's output for an image, one grid PNG
    /// per layer, and the fraction of blank channels per layer.
    Activations(ActivationsArgs),
    /// Input patterns that maximise filters' mean activation (gradient ascent), as a grid PNG;
    /// also the first layer's kernels drawn directly.
    Filters(FiltersArgs),
    /// A Grad-CAM class-activation heatmap over the image, as a PNG of the image's size.
    Heatmap(HeatmapArgs),
}

/// What every `viz` command needs: the model, its weights, the backend.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A model file (RON), e.g. models/mobilenet_v2.ron.
    model: PathBuf,
    /// Weights for every layer: safetensors, PyTorch .pth/.pt, or a cnntui checkpoint.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Which kernels run the model: the JIT (default) or the reference kernels.
    #[arg(long, value_enum, default_value = "jit")]
    backend: super::BackendArg,
}

#[derive(Debug, Args)]
pub struct ActivationsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The photograph to look at.
    #[arg(long, value_name = "IMG")]
    image: PathBuf,
    /// Only this layer (default: every layer with a feature map).
    #[arg(long, value_name = "NAME")]
    layer: Option<String>,
    /// Directory for the grids (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct FiltersArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The layer whose filters to visualise.
    #[arg(long, value_name = "NAME")]
    layer: String,
    /// How many of its filters, from the first.
    #[arg(long, value_name = "N", default_value_t = 16)]
    count: usize,
    /// Gradient-ascent steps.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Seed of the starting noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory for the grids (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct HeatmapArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The photograph to explain.
    #[arg(long, value_name = "IMG")]
    image: PathBuf,
    /// The class to explain (default: the predicted one).
    #[arg(long, value_name = "K")]
    class: Option<usize>,
    /// The feature map to weight (default: the last one, `out_relu` in MobileNetV2).
    #[arg(long, value_name = "NAME")]
    layer: Option<String>,
    /// The PNG to write (the image's size, heatmap at 0.4 opacity in jet).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Heatmap opacity over the photograph, as the Keras book draws it.
const OPACITY: f32 = 0.4;

/// The model with its weights, lowered but not optimised (each visualisation prepares its own
/// copy), and the preprocessing that travels with the weights.
struct Loaded {
    graph: Graph,
    params: ParamStore,
    preprocessing: Preprocessing,
    backend: Backend,
}

fn load(args: &ModelArgs) -> Result<Loaded> {
    let file = model::load(&args.model).map_err(ir::LoadError::from)?;
    let graph = ir::lower(&file)?;
    if graph.base_weights.is_empty() && args.weights.is_none() {
        bail!(
            "{}: no weights to look at: pass `--weights FILE` (safetensors, PyTorch .pth or a \
             cnntui checkpoint) or give the model a `base: (..., weights: \"FILE\")`",
            args.model.display()
        );
    }
    let mut params = ParamStore::init(&graph, 0);
    let (warnings, recorded) =
        weights::load_for_model(&graph, &mut params.tensors, args.weights.as_deref())?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let preprocessing = recorded.unwrap_or_else(|| super::predict::default_preprocessing(&file));
    Ok(Loaded {
        graph,
        params,
        preprocessing,
        backend: args.backend.into(),
    })
}

/// Creates `dir` and checks that a file can be written in it.
fn writable_dir(dir: &Path) -> Result<(), VizError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|()| super::writable_dir(dir))
        .map_err(|reason| VizError::Unwritable {
            path: dir.to_path_buf(),
            reason,
        })
}

/// Checks that `file` can be created (its directory exists and is writable).
fn writable_file(file: &Path) -> Result<(), VizError> {
    super::writable_file(file).map_err(|reason| VizError::Unwritable {
        path: file.to_path_buf(),
        reason,
    })
}

/// The image as the model sees it, and the photograph.
/// A rectangle of a photograph: (left, top, right, bottom).
type Region = (usize, usize, usize, usize);

fn input(l: &Loaded, path: &Path) -> Result<(Vec<f32>, Image, Region)> {
    let shape = l
        .graph
        .input_shape()
        .hwc()
        .context("the model's input is not an image (height, width, channels)")?;
    let photo = Image::open(path)?;
    let x = l
        .preprocessing
        .apply(&photo, shape)
        .with_context(|| format!("{}: cannot preprocess the image", path.display()))?;
    let region = seen_region(
        &l.preprocessing,
        photo.width,
        photo.height,
        (shape.0, shape.1),
    );
    Ok((x, photo, region))
}

/// The rectangle (left, top, right, bottom) of a `width × height` photograph that the
/// preprocessing hands to an `h × w` model: the centre crop's box mapped back through the
/// resize (all of it when the photograph is only resized).
fn seen_region(
    p: &Preprocessing,
    width: usize,
    height: usize,
    (h, w): (usize, usize),
) -> (usize, usize, usize, usize) {
    match *p {
        Preprocessing::ImageNet { resize } => {
            let short = resize.max(h).max(w) as f64;
            let scale = width.min(height) as f64 / short;
            let (nw, nh) = if width <= height {
                (short, (short * height as f64 / width as f64).floor())
            } else {
                ((short * width as f64 / height as f64).floor(), short)
            };
            let top = ((nh - h as f64) / 2.0).round_ties_even();
            let left = ((nw - w as f64) / 2.0).round_ties_even();
            let px = |v: f64, max: usize| ((v * scale).round() as usize).min(max);
            (
                px(left, width),
                px(top, height),
                px(left + w as f64, width),
                px(top + h as f64, height),
            )
        }
        Preprocessing::Rescale { .. } => (0, 0, width, height),
    }
}

/// The per-channel normalisation of pixels in [0, 1] that the preprocessing applies, for
/// gradient ascent in pixel space.
fn pixel_norm(p: &Preprocessing, channels: usize) -> PixelNorm {
    match *p {
        Preprocessing::ImageNet { .. } => PixelNorm {
            mean: weights::IMAGENET_MEAN.to_vec(),
            std: weights::IMAGENET_STD.to_vec(),
        },
        // `x · factor` of a 0–255 pixel p is (p/255 − 0) / (1 / (255 · factor)).
        Preprocessing::Rescale { factor } => PixelNorm {
            mean: vec![0.0; channels],
            std: vec![1.0 / (255.0 * factor); channels],
        },
    }
}

pub fn viz(command: VizCommand) -> Result<i32> {
    match command {
        VizCommand::Activations(a) => run_activations(a),
        VizCommand::Filters(a) => run_filters(a),
        VizCommand::Heatmap(a) => run_heatmap(a),
    }
}

fn run_activations(a: ActivationsArgs) -> Result<i32> {
    writable_dir(&a.out)?;
    let l = load(&a.model)?;
    let only = match &a.layer {
        Some(name) => Some(feature_layer(&l.graph, name)?),
        None => None,
    };
    let (x, _, _) = input(&l, &a.image)?;
    let layers = activations::activations(&l.graph, &l.params, l.backend, &x, only)?;
    let written = activations::write_grids(&layers, &a.out)?;
    outln!("{:<28} {:>16} {:>8}  file", "layer", "shape", "blank")?;
    for (layer, path) in layers.iter().zip(&written) {
        let (h, w, c) = layer.shape;
        outln!(
            "{:<28} {:>16} {:>7.0}%  {}",
            format!("{} ({})", layer.layer, layer.class),
            format!("{h}×{w}×{c}"),
            layer.blank_fraction * 100.0,
            path.display()
        )?;
    }
    Ok(0)
}

fn run_filters(a: FiltersArgs) -> Result<i32> {
    writable_dir(&a.out)?;
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    let l = load(&a.model)?;
    let v = feature_layer(&l.graph, &a.layer)?;
    if !has_feature_map(&l.graph, v) {
        return Err(VizError::NotConvolutional {
            name: a.layer.clone(),
            class: l.graph.nodes[v].op.class_name(),
            shape: l.graph.nodes[v].shape.0.clone(),
            valid: "a convolution, pooling or activation layer (see `cnntui summary`)".into(),
        }
        .into());
    }
    let c = l.graph.nodes[v].shape.channels();
    let filters: Vec<usize> = (0..a.count.min(c)).collect();
    let (h, w, c_in) = l
        .graph
        .input_shape()
        .hwc()
        .context("the model's input is not an image")?;
    let settings = AscentSettings {
        steps: a.steps,
        seed: a.seed,
        ..AscentSettings::default()
    };
    let norm = pixel_norm(&l.preprocessing, c_in);
    let patterns = ascend(
        &l.graph, &l.params, l.backend, v, &filters, &norm, &settings,
    )?;
    let tiles: Vec<Image> = patterns
        .iter()
        .map(|p| deprocess(&p.pixels, h, w, c_in))
        .collect();
    let grid_path = a.out.join(format!("filters_{}.png", a.layer));
    tile(&tiles, 8).save(&grid_path)?;
    outln!("{:>6}  {:>10}  {:>10}", "filter", "start", "optimised")?;
    for p in &patterns {
        outln!(
            "{:>6}  {:>10.4}  {:>10.4}",
            p.filter,
            p.start_score,
            p.end_score
        )?;
    }
    outln!("{}", grid_path.display())?;
    if let Some((name, kernels)) = first_layer_kernels(&l.graph, &l.params) {
        let path = a.out.join(format!("kernels_{name}.png"));
        kernels.save(&path)?;
        outln!("{} (the first layer's kernels)", path.display())?;
    }
    Ok(0)
}

fn run_heatmap(a: HeatmapArgs) -> Result<i32> {
    writable_file(&a.out)?;
    let l = load(&a.model)?;
    let layer = match &a.layer {
        Some(name) => Some(feature_layer(&l.graph, name)?),
        None => None,
    };
    let (x, photo, region) = input(&l, &a.image)?;
    let cam = gradcam::grad_cam(&l.graph, &l.params, l.backend, &x, a.class, layer)?;
    let picture = overlay(&photo, &cam.heat, cam.h, cam.w, region, OPACITY);
    picture.save(&a.out)?;
    let classes = l.graph.output_shape().elems();
    let name = match weights::imagenet_class(cam.class) {
        Some(n) if classes == weights::imagenet_class_count() => format!(" {n}"),
        _ => String::new(),
    };
    outln!(
        "class {}{name} (score {:.3}) at {} {}×{}: Grad-CAM maximum {:.4}",
        cam.class,
        cam.score,
        cam.layer,
        cam.h,
        cam.w,
        cam.raw_max
    )?;
    outln!("{}", a.out.display())?;
    Ok(0)
}
