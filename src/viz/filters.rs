//! What a filter responds to: the input pattern that maximises a filter's mean activation,
//! found by gradient ascent in input space (the Keras book's method), and the first layer's
//! kernels drawn directly.
//!
//! Ascent runs in pixel space (values in [0, 1]); the model sees `(pixel − mean) / std` per
//! channel, the normalisation that travels with its weights. It starts from grey (0.5) with
//! seeded uniform noise of ±0.1, and each step moves the picture along the gradient of the
//! filter's mean activation (over the map without a 2-pixel border, as the book does, which
//! keeps padding artefacts out; for a convolution that fuses its activation, of its
//! pre-activation, so a filter the ReLU silences at the start still climbs), normalised to unit root-mean-square, by `step_size`. All
//! requested filters ascend together as one batch. The gradient comes from the backward
//! kernels training uses. For display the result is standardised (mean 128, standard deviation
//! 64, clipped) and its outer eighth cropped, as the book deprocesses it.

use cnntui_kernels::reference::{Activation, activation_forward};

use crate::data::image::Image;
use crate::ir::{Graph, NodeId, Op};
use crate::runtime::{Backend, ParamStore, Rng};

use super::grid::tile;
use super::{Cut, Probe, VizError};

/// How the ascent runs.
#[derive(Clone, Debug, PartialEq)]
pub struct AscentSettings {
    pub steps: usize,
    /// Root-mean-square change per pixel per step, in [0, 1] pixel units.
    pub step_size: f32,
    pub seed: u64,
}

impl Default for AscentSettings {
    fn default() -> Self {
        AscentSettings {
            steps: 30,
            step_size: 0.03,
            seed: 0,
        }
    }
}

/// The normalisation the model applies to pixels in [0, 1]: `(pixel − mean[c]) / std[c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelNorm {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl PixelNorm {
    /// Pixels in [0, 1] go in unchanged (a model trained with `rescale: 1/255`).
    pub fn identity(channels: usize) -> PixelNorm {
        PixelNorm {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }
}

/// One filter's optimised pattern.
#[derive(Clone, Debug)]
pub struct FilterPattern {
    pub filter: usize,
    /// The filter's mean activation (after the layer's own activation, over the map without
    /// its border) for the starting picture and for the result.
    pub start_score: f32,
    pub end_score: f32,
    /// The pattern in pixel space ([0, 1] nominally, unclipped), `h × w × c` of the input.
    pub pixels: Vec<f32>,
}

/// The score's region: the map without a 2-pixel border when it is large enough.
fn border(n: usize) -> usize {
    if n > 8 { 2 } else { 0 }
}

/// Gradient ascent for each of `filters` of layer `v`.
///
/// # Errors
/// [`VizError::FilterOutOfRange`], [`VizError::NotConvolutional`] (via the caller's lookup),
/// [`VizError::Prepare`].
pub fn ascend(
    graph: &Graph,
    params: &ParamStore,
    backend: Backend,
    v: NodeId,
    filters: &[usize],
    norm: &PixelNorm,
    settings: &AscentSettings,
) -> Result<Vec<FilterPattern>, VizError> {
    let (h, w, c) = graph.nodes[v].shape.hwc().ok_or(VizError::NoFeatureMaps)?;
    if let Some(&bad) = filters.iter().find(|&&f| f >= c) {
        return Err(VizError::FilterOutOfRange {
            layer: graph.nodes[v].name.clone(),
            filter: bad,
            filters: c,
        });
    }
    let n = filters.len();
    let in_shape = graph.input_shape().0.clone();
    let in_c = *in_shape.last().unwrap_or(&1);
    let per = graph.input_shape().elems();
    let mut rng = Rng::derived(settings.seed, 7);
    let mut pixels: Vec<f32> = (0..n * per).map(|_| 0.5 + rng.uniform(-0.1, 0.1)).collect();
    let activation = match graph.nodes[v].op {
        Op::Conv2D { activation, .. } | Op::DepthwiseConv2D { activation, .. } => activation,
        _ => Activation::Linear,
    };
    let cut = Cut {
        node: v,
        pre_activation: activation != Activation::Linear,
    };
    let mut probe = Probe::new(graph, params, backend, &[0], Some(cut))?;
    let (by, bx) = (border(h), border(w));
    let region = ((h - 2 * by) * (w - 2 * bx)) as f32;
    let to_input = |pixels: &[f32]| -> Vec<f32> {
        pixels
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let k = i % in_c;
                (p - norm.mean[k % norm.mean.len()]) / norm.std[k % norm.std.len()]
            })
            .collect()
    };
    // The mean over the region of the layer's output, after its own activation.
    let score = |probe: &Probe, s: usize, f: usize| -> f32 {
        let out = &probe.activation(v)[s * h * w * c..(s + 1) * h * w * c];
        let mut pre = Vec::with_capacity((h - 2 * by) * (w - 2 * bx));
        for y in by..h - by {
            for x in bx..w - bx {
                pre.push(out[(y * w + x) * c + f]);
            }
        }
        let mut post = vec![0.0; pre.len()];
        activation_forward(activation, 1, &pre, &mut post);
        (post.iter().map(|&x| f64::from(x)).sum::<f64>() / f64::from(region)) as f32
    };
    let mut start = vec![0.0; n];
    let mut d_out = vec![0.0f32; n * h * w * c];
    for (s, &f) in filters.iter().enumerate() {
        for y in by..h - by {
            for x in bx..w - bx {
                d_out[s * h * w * c + (y * w + x) * c + f] = 1.0 / region;
            }
        }
    }
    for step in 0..=settings.steps {
        probe.forward(&to_input(&pixels), n);
        if step == 0 {
            for (s, &f) in filters.iter().enumerate() {
                start[s] = score(&probe, s, f);
            }
        }
        if step == settings.steps {
            break;
        }
        probe.backward(&d_out);
        let grad = probe.gradient(0);
        for s in 0..n {
            let g = &grad[s * per..(s + 1) * per];
            // d score / d pixel = d score / d input / std.
            let gp: Vec<f32> = g
                .iter()
                .enumerate()
                .map(|(i, &gi)| gi / norm.std[(i % in_c) % norm.std.len()])
                .collect();
            let rms = (gp.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / per as f64)
                .sqrt() as f32;
            if rms > 0.0 {
                let px = &mut pixels[s * per..(s + 1) * per];
                for (p, &gi) in px.iter_mut().zip(&gp) {
                    *p += settings.step_size * gi / rms;
                }
            }
        }
    }
    Ok(filters
        .iter()
        .enumerate()
        .map(|(s, &f)| FilterPattern {
            filter: f,
            start_score: start[s],
            end_score: score(&probe, s, f),
            pixels: pixels[s * per..(s + 1) * per].to_vec(),
        })
        .collect())
}

/// The Keras book's display of an optimised pattern: standardised to mean 128 and standard
/// deviation 64, clipped to 0–255, the outer eighth on each side cropped.
pub fn deprocess(pixels: &[f32], h: usize, w: usize, c: usize) -> Image {
    let n = pixels.len() as f64;
    let mean = pixels.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = pixels
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt().max(1e-12);
    let (cy, cx) = (h / 8, w / 8);
    let mut out = Image::filled(w - 2 * cx, h - 2 * cy, c, 0.0);
    for y in cy..h - cy {
        for x in cx..w - cx {
            for k in 0..c {
                let v = (f64::from(pixels[(y * w + x) * c + k]) - mean) / std * 64.0 + 128.0;
                out.data[((y - cy) * out.width + x - cx) * c + k] = v.clamp(0.0, 255.0) as f32;
            }
        }
    }
    out
}

/// The first convolution's kernels drawn directly: one tile per output channel, its
/// `k_h × k_w` taps as RGB when the layer reads three channels (else the mean over input
/// channels as grey), each kernel stretched to the full range, enlarged to 32 pixels a side.
pub fn first_layer_kernels(graph: &Graph, params: &ParamStore) -> Option<(String, Image)> {
    let v = (1..graph.nodes.len()).find(|&v| matches!(graph.nodes[v].op, Op::Conv2D { .. }))?;
    let Op::Conv2D {
        filters, kernel, ..
    } = graph.nodes[v].op
    else {
        return None;
    };
    let (kh, kw) = kernel;
    let weights = params.tensors[v].first()?;
    let c_in = weights.len() / (kh * kw * filters);
    let scale = 32usize.div_ceil(kh.max(kw)).max(1);
    let tiles: Vec<Image> = (0..filters)
        .map(|o| {
            // HWIO: weights[((y * kw + x) * c_in + i) * filters + o].
            let tap =
                |y: usize, x: usize, i: usize| weights[((y * kw + x) * c_in + i) * filters + o];
            let mut values = Vec::with_capacity(kh * kw * 3);
            for y in 0..kh {
                for x in 0..kw {
                    if c_in == 3 {
                        values.extend((0..3).map(|i| tap(y, x, i)));
                    } else {
                        let m = (0..c_in).map(|i| tap(y, x, i)).sum::<f32>() / c_in as f32;
                        values.extend([m; 3]);
                    }
                }
            }
            let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let range = if hi > lo { hi - lo } else { 1.0 };
            let mut img = Image::filled(kw * scale, kh * scale, 3, 0.0);
            for y in 0..kh * scale {
                for x in 0..kw * scale {
                    for k in 0..3 {
                        let val = values[((y / scale) * kw + x / scale) * 3 + k];
                        img.data[(y * img.width + x) * 3 + k] = (val - lo) / range * 255.0;
                    }
                }
            }
            img
        })
        .collect();
    Some((graph.nodes[v].name.clone(), tile(&tiles, 16)))
}
