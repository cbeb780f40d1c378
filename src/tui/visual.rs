//! The dashboard's filter, heatmap, augmentation and image-operation views, computed from a [`Snapshot`] of the model on a
//! worker thread (never on the trainer's, never in `App::update`) with the same `viz`
//! functions `cnntui viz` uses, and handed to the Feature maps pane as [`FeatureMaps`] whose
//! tiles are the patterns (filters) or the heatmap resized to the sample image (Grad-CAM).
//!
//! Patterns ascend in the model's input space as the model sees it (the pane has no record of
//! a normalisation) for 20 steps, and are drawn grey (the mean over colour channels).

use crate::data::image::{Border, Filter, Image, ImageOp, Rounding, SobelOutput, resize};
use crate::runtime::{FeatureMaps, Snapshot, View};
use crate::viz::filters::{AscentSettings, PixelNorm, ascend};
use crate::viz::gradcam::grad_cam;
use crate::viz::layers::{feature_layer, has_feature_map};

/// Filters shown per layer.
const FILTERS: usize = 16;

/// The view's maps for the snapshot; `None` for [`View::Activations`] (the trainer sends
/// those); an error message for the log when the view does not apply.
pub fn compute(
    snapshot: &Snapshot,
    view: View,
    layer: Option<&str>,
) -> Result<Option<FeatureMaps>, String> {
    let g = &snapshot.graph;
    let (h, w, c_in) = match snapshot.input_shape[..] {
        [h, w, c] => (h, w, c),
        _ => return Err("visualisations need an image input".into()),
    };
    let base = |view, layer: String, shape: Vec<usize>, values| FeatureMaps {
        view,
        layer,
        shape,
        values,
        input_shape: snapshot.input_shape.clone(),
        input: snapshot.input.clone(),
        label: snapshot.label,
    };
    match view {
        View::Activations => Ok(None),
        View::Filters => {
            let name = layer.ok_or("select a layer first")?;
            let v = feature_layer(g, name).map_err(|e| e.to_string())?;
            if !has_feature_map(g, v) {
                return Err(format!(
                    "`{name}` is not a convolution or pooling layer; select one to see its filters"
                ));
            }
            let c = g.nodes[v].shape.channels();
            let filters: Vec<usize> = (0..c.min(FILTERS)).collect();
            let settings = AscentSettings {
                steps: 20,
                ..AscentSettings::default()
            };
            let patterns = ascend(
                g,
                &snapshot.params,
                snapshot.backend,
                v,
                &filters,
                &PixelNorm::identity(c_in),
                &settings,
            )
            .map_err(|e| e.to_string())?;
            // Tiles as channels: [h, w, n], each the pattern's mean over colour channels.
            let n = patterns.len();
            let mut values = vec![0.0; h * w * n];
            for (k, p) in patterns.iter().enumerate() {
                for (i, px) in p.pixels.chunks_exact(c_in).enumerate() {
                    values[i * n + k] = px.iter().sum::<f32>() / c_in as f32;
                }
            }
            Ok(Some(base(
                View::Filters,
                name.to_string(),
                vec![h, w, n],
                values,
            )))
        }
        View::Heatmap => {
            let cam = grad_cam(
                g,
                &snapshot.params,
                snapshot.backend,
                &snapshot.input,
                None,
                None,
            )
            .map_err(|e| e.to_string())?;
            let small = Image {
                width: cam.w,
                height: cam.h,
                channels: 1,
                data: cam.heat.clone(),
            };
            let big = resize(&small, w, h, Filter::Bilinear, Rounding::None)
                .map_err(|e| e.to_string())?;
            let label = format!("class {} at {}", cam.class, cam.layer);
            Ok(Some(base(View::Heatmap, label, vec![h, w, 1], big.data)))
        }
        View::Augmented => {
            if snapshot.augmented.is_empty() {
                return Err("the model file's `train` section asks for no augmentation (add `augment: (...)`)".into());
            }
            // Tiles: the training image, then its versions, each the mean over colour channels.
            let images: Vec<&Vec<f32>> = std::iter::once(&snapshot.train_image)
                .chain(&snapshot.augmented)
                .collect();
            let values = as_tiles(&images, h * w, c_in);
            let label = format!(
                "Augmentation · a training image and {} versions (a: new draws)",
                images.len() - 1
            );
            Ok(Some(base(
                View::Augmented,
                label,
                vec![h, w, images.len()],
                values,
            )))
        }
        View::ImageOps => {
            // The sample on the 0–255 scale the operations expect, whatever the model's rescale.
            let (lo, hi) = snapshot
                .input
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let span = if hi > lo { hi - lo } else { 1.0 };
            let img = Image {
                width: w,
                height: h,
                channels: c_in,
                data: snapshot
                    .input
                    .iter()
                    .map(|&v| (v - lo) / span * 255.0)
                    .collect(),
            };
            let ops = [
                ImageOp::Grey,
                ImageOp::Gaussian {
                    sigma: 1.0,
                    kernel_size: None,
                    border: Border::Nearest,
                },
                ImageOp::TvDenoise {
                    weight: 0.1,
                    eps: 2e-4,
                    max_num_iter: 200,
                },
                ImageOp::Sobel {
                    direction: SobelOutput::Magnitude,
                },
                ImageOp::Canny {
                    sigma: 1.0,
                    low_threshold: 25.5,
                    high_threshold: 51.0,
                },
                ImageOp::KMeans {
                    k: 4,
                    seed: 0,
                    iterations: 50,
                },
            ];
            let mut outs = vec![img.data.clone()];
            for op in &ops {
                let out = op.apply(&img).map_err(|e| e.to_string())?;
                outs.push(out.data);
            }
            let n = outs.len();
            let mut values = vec![0.0; h * w * n];
            for (k, out) in outs.iter().enumerate() {
                let c = (out.len() / (h * w)).max(1);
                for (i, px) in out.chunks_exact(c).enumerate().take(h * w) {
                    values[i * n + k] = px.iter().sum::<f32>() / c as f32;
                }
            }
            let label = "Image operations · sample, grey, gaussian σ1, tv-denoise 0.1, sobel, canny σ1, kmeans k4".to_string();
            Ok(Some(base(View::ImageOps, label, vec![h, w, n], values)))
        }
    }
}

/// Pictures `[h, w, c]` as tiles `[h, w, n]`, each the mean over its colour channels.
fn as_tiles(images: &[&Vec<f32>], pixels: usize, c: usize) -> Vec<f32> {
    let n = images.len();
    let mut values = vec![0.0; pixels * n];
    for (k, img) in images.iter().enumerate() {
        for (i, px) in img.chunks_exact(c.max(1)).enumerate().take(pixels) {
            values[i * n + k] = px.iter().sum::<f32>() / c.max(1) as f32;
        }
    }
    values
}
