//! The dashboard's filter and heatmap views, computed from a [`Snapshot`] of the model on a
//! worker thread (never on the trainer's, never in `App::update`) with the same `viz`
//! functions `cnntui viz` uses, and handed to the Feature maps pane as [`FeatureMaps`] whose
//! tiles are the patterns (filters) or the heatmap resized to the sample image (Grad-CAM).
//!
//! Patterns ascend in the model's input space as the model sees it (the pane has no record of
//! a normalisation) for 20 steps, and are drawn grey (the mean over colour channels).

use crate::data::image::{Filter, Image, Rounding, resize};
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
    }
}
