//! Class-activation heatmaps (Grad-CAM, Selvaraju et al. 2017, as the Keras book computes
//! them): the gradient of a class's score (its logit, before softmax) with respect to a
//! convolutional feature map, averaged over the map per channel, weights that map's channels;
//! their sum, through a ReLU and divided by its maximum, says where in the picture the evidence
//! for the class lies.

use crate::ir::{Graph, NodeId};
use crate::runtime::{Backend, ParamStore, argmax};

use super::layers::last_feature_map;
use super::{Probe, VizError};

/// A class-activation map.
#[derive(Clone, Debug)]
pub struct Cam {
    pub class: usize,
    /// The class's score (logit) for the input.
    pub score: f32,
    pub layer: String,
    pub h: usize,
    pub w: usize,
    /// `h × w` values in [0, 1] (all zero if nothing speaks for the class).
    pub heat: Vec<f32>,
    /// The largest value before normalisation: how strongly the map's evidence speaks for the
    /// class, comparable between classes for one input and layer.
    pub raw_max: f32,
}

/// Grad-CAM of `class` (default: the predicted one) at `layer` (default: the last feature
/// map) for one input on `backend`.
///
/// # Errors
/// [`VizError::ClassOutOfRange`], [`VizError::NoFeatureMaps`], [`VizError::Prepare`].
pub fn grad_cam(
    graph: &Graph,
    params: &ParamStore,
    backend: Backend,
    input: &[f32],
    class: Option<usize>,
    layer: Option<NodeId>,
) -> Result<Cam, VizError> {
    let v = layer
        .or_else(|| last_feature_map(graph))
        .ok_or(VizError::NoFeatureMaps)?;
    let (h, w, c) = graph.nodes[v].shape.hwc().ok_or(VizError::NoFeatureMaps)?;
    let classes = graph.output_shape().elems();
    if let Some(k) = class
        && k >= classes
    {
        return Err(VizError::ClassOutOfRange { class: k, classes });
    }
    let mut probe = Probe::new(graph, params, backend, &[v], None)?;
    probe.forward(input, 1);
    let scores = probe.scores()[..classes].to_vec();
    let class = class.unwrap_or_else(|| argmax(&scores));
    let mut d_out = vec![0.0; classes];
    d_out[class] = 1.0;
    probe.backward(&d_out);
    let a = &probe.activation(v)[..h * w * c];
    let g = &probe.gradient(v)[..h * w * c];
    let mut alpha = vec![0.0f64; c];
    for (i, &gi) in g.iter().enumerate() {
        alpha[i % c] += f64::from(gi);
    }
    alpha.iter_mut().for_each(|x| *x /= (h * w) as f64);
    let cam: Vec<f32> = a
        .chunks_exact(c)
        .map(|pixel| {
            let s: f64 = pixel
                .iter()
                .zip(&alpha)
                .map(|(&x, &w)| f64::from(x) * w)
                .sum();
            s.max(0.0) as f32
        })
        .collect();
    let raw_max = cam.iter().copied().fold(0.0f32, f32::max);
    let heat = if raw_max > 0.0 {
        cam.iter().map(|&x| x / raw_max).collect()
    } else {
        cam
    };
    Ok(Cam {
        class,
        score: scores[class],
        layer: graph.nodes[v].name.clone(),
        h,
        w,
        heat,
        raw_max,
    })
}
