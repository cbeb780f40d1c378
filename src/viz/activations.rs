//! Intermediate activations: for one input, the output of every layer with a feature map, each
//! channel drawn as its own tile, and how many channels are blank — the lecture's observation
//! that deeper layers respond to fewer, more specific patterns.

use std::path::{Path, PathBuf};

use crate::ir::{Graph, NodeId};
use crate::runtime::{Backend, ParamStore};

use super::grid::{blank_fraction, channel_grid};
use super::layers::feature_layers;
use super::{Probe, VizError};

/// One layer's output for the input.
#[derive(Clone, Debug)]
pub struct LayerActivations {
    pub node: NodeId,
    pub layer: String,
    pub class: &'static str,
    /// `(h, w, c)`.
    pub shape: (usize, usize, usize),
    /// `h × w × c` values, channels last.
    pub values: Vec<f32>,
    /// The fraction of channels that are the same value everywhere (all zero after a ReLU).
    pub blank_fraction: f64,
}

/// Runs `input` (one sample, model-input scale) and returns every feature-map layer's output
/// (or only `only`'s), on `backend`.
///
/// # Errors
/// [`VizError::NoFeatureMaps`] for a model without any; [`VizError::Prepare`].
pub fn activations(
    graph: &Graph,
    params: &ParamStore,
    backend: Backend,
    input: &[f32],
    only: Option<NodeId>,
) -> Result<Vec<LayerActivations>, VizError> {
    let layers = match only {
        Some(v) => vec![v],
        None => feature_layers(graph),
    };
    if layers.is_empty() {
        return Err(VizError::NoFeatureMaps);
    }
    let mut probe = Probe::new(graph, params, backend, &layers, None)?;
    probe.forward(input, 1);
    Ok(layers
        .iter()
        .filter_map(|&v| {
            let node = &graph.nodes[v];
            let (h, w, c) = node.shape.hwc()?;
            let values = probe.activation(v)[..h * w * c].to_vec();
            Some(LayerActivations {
                node: v,
                layer: node.name.clone(),
                class: node.op.class_name(),
                shape: (h, w, c),
                blank_fraction: blank_fraction(&values, c),
                values,
            })
        })
        .collect())
}

/// Writes one grid PNG per layer into `dir` (`NN_layer.png`, in graph order) and returns the
/// paths.
///
/// # Errors
/// [`VizError::Image`] naming a file that cannot be written.
pub fn write_grids(layers: &[LayerActivations], dir: &Path) -> Result<Vec<PathBuf>, VizError> {
    layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (h, w, c) = l.shape;
            let path = dir.join(format!("{:02}_{}.png", i + 1, l.layer));
            channel_grid(&l.values, h, w, c).save(&path)?;
            Ok(path)
        })
        .collect()
}
