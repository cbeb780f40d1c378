//! Importing weights that other programs wrote: safetensors (memory-mapped), PyTorch `.pth` /
//! `.pt` in both of its formats (read by a small pickle machine that rebuilds tensors and runs
//! nothing else), and cnntui's own checkpoints; fitting them onto a model's parameters by
//! structure (PyTorch layouts rearranged into Keras's: OIHW → HWIO, `[out, in]` → `[in, out]`,
//! C-H-W flattening → H-W-C); and the [`Preprocessing`] that travels with them.
//!
//! The stages are types: [`WeightsFile`] (opened, indexed, nothing converted) → [`Mapping`]
//! (which tensor fills which parameter, every shape checked) → [`Loaded`] (the converted values,
//! applied all at once, so a file that does not fit changes nothing).
//!
//! Depends on `ir` (what a model needs) and `data` (images, for preprocessing); must not
//! depend on `runtime` or `tui` — the runtime hands its parameter tensors in.

mod error;
mod file;
mod imagenet;
mod layout;
mod mapping;
mod pickle;
mod preprocess;
mod safetensors_file;
mod torch;

use std::path::Path;

pub use error::WeightsError;
pub use file::{Dtype, Format, TensorInfo, WeightsFile};
pub use imagenet::{imagenet_class, imagenet_class_count};
pub use layout::Layout;
pub use mapping::{Assignment, Mapping, map};
pub use preprocess::{IMAGENET_MEAN, IMAGENET_STD, Preprocessing, normalise_imagenet};

use crate::ir::{Graph, NodeId};

/// The safetensors metadata key under which cnntui records a [`Preprocessing`] (as JSON).
pub const PREPROCESSING_KEY: &str = "cnntui.preprocessing";

/// Converted values ready to be written into a model's parameters.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// `(node, param index, values in cnntui's layout)`.
    pub values: Vec<(NodeId, usize, Vec<f32>)>,
    /// For the user: tensors the model does not use.
    pub warnings: Vec<String>,
    /// The transform the weights were trained with, when the file says or implies it.
    pub preprocessing: Option<Preprocessing>,
}

impl Loaded {
    /// Writes the values into `tensors` (`tensors[node][param]`, as the runtime's
    /// `ParamStore` holds them).
    pub fn apply(self, tensors: &mut [Vec<Vec<f32>>]) {
        for (node, k, v) in self.values {
            tensors[node][k] = v;
        }
    }

    /// Adds `other`'s values after this one's (later files win), its warnings, and its
    /// preprocessing if it has one.
    pub fn extend(&mut self, other: Loaded) {
        self.values.extend(other.values);
        self.warnings.extend(other.warnings);
        if other.preprocessing.is_some() {
            self.preprocessing = other.preprocessing;
        }
    }
}

/// What a file's tensors are, for messages: `` `a` [1, 2], `b` [3] ``, the first `max`.
pub fn list_tensors(file: &WeightsFile, which: &[usize], max: usize) -> String {
    let mut parts: Vec<String> = which
        .iter()
        .take(max)
        .map(|&i| format!("`{}` {:?}", file.tensors[i].name, file.tensors[i].shape))
        .collect();
    if which.len() > max {
        parts.push(format!("and {} more", which.len() - max));
    }
    parts.join(", ")
}

/// Reads `path` and converts the tensors that fill the layers named in `only` (every layer
/// with weights when `None`).
///
/// # Errors
/// Every [`WeightsError`]: the file cannot be read, is not a weights file, is truncated, or
/// does not fit the model (a tensor missing, of the wrong shape or kind).
pub fn load(graph: &Graph, path: &Path, only: Option<&[String]>) -> Result<Loaded, WeightsError> {
    let file = WeightsFile::open(path)?;
    let mapping = map(graph, &file, only)?;
    let mut values = Vec::with_capacity(mapping.assignments.len());
    for a in &mapping.assignments {
        let t = &file.tensors[a.tensor];
        let src = file.read_f32(t)?;
        let dst_shape = &graph.nodes[a.node].params[a.param].shape;
        values.push((a.node, a.param, a.layout.apply(&src, &t.shape, dst_shape)));
    }
    let mut warnings = Vec::new();
    if !mapping.unused.is_empty() {
        warnings.push(format!(
            "{}: {} tensor(s) in the file are not used by the model: {}",
            path.display(),
            mapping.unused.len(),
            list_tensors(&file, &mapping.unused, 8)
        ));
    }
    Ok(Loaded {
        values,
        warnings,
        preprocessing: preprocessing_of(graph, &file, &mapping),
    })
}

/// The preprocessing a file records (cnntui's metadata) or implies (PyTorch names: the
/// torchvision ImageNet transform, for an RGB model).
pub fn preprocessing_of(
    graph: &Graph,
    file: &WeightsFile,
    mapping: &Mapping,
) -> Option<Preprocessing> {
    if let Some(json) = file.metadata.get(PREPROCESSING_KEY) {
        return serde_json::from_str(json).ok();
    }
    if mapping.by_name {
        return None;
    }
    match graph.input_shape().hwc() {
        Some((h, w, 3)) => Some(Preprocessing::torchvision(h, w)),
        _ => None,
    }
}

/// Loads the weights a model file names for its `base` layers, then `extra` (a `--weights`
/// file, for every layer), converting everything before anything is written.
///
/// # Errors
/// The first [`WeightsError`]; `tensors` is then unchanged.
pub fn load_for_model(
    graph: &Graph,
    tensors: &mut [Vec<Vec<f32>>],
    extra: Option<&Path>,
) -> Result<(Vec<String>, Option<Preprocessing>), WeightsError> {
    let mut all = Loaded::default();
    for (path, layers) in &graph.base_weights {
        all.extend(load(graph, path, Some(layers))?);
    }
    if let Some(path) = extra {
        all.extend(load(graph, path, None)?);
    }
    let out = (std::mem::take(&mut all.warnings), all.preprocessing.clone());
    all.apply(tensors);
    Ok(out)
}
