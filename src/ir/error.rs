//! Lowering errors: each names the file, the layer (name, position and Keras class) and what
//! to change.

use std::path::PathBuf;

use super::Shape;
use crate::model::ModelError;

/// A model file that parsed but does not describe a valid network.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    #[error("{}: the model has no input shape: add `input: (height, width, channels)` or a `base`", file.display())]
    NoInput { file: PathBuf },
    #[error("{}: the model has no layers: list them under `layers: [...]` or give a `base`", file.display())]
    NoLayers { file: PathBuf },
    #[error("{}: {}: `{field}` must be {constraint}, got {value}", file.display(), layer_ref(layer, class, *index))]
    BadValue {
        file: PathBuf,
        layer: String,
        class: &'static str,
        index: usize,
        field: &'static str,
        value: String,
        constraint: &'static str,
    },
    #[error("{}: {}: input shape {input} {problem}", file.display(), layer_ref(layer, class, *index))]
    Shape {
        file: PathBuf,
        layer: String,
        class: &'static str,
        index: usize,
        input: Shape,
        problem: String,
    },
    #[error("{}: {}: all inputs of Add must have one shape, got {}", file.display(), layer_ref(layer, "Add", *index), list_shapes(inputs))]
    AddMismatch {
        file: PathBuf,
        layer: String,
        index: usize,
        inputs: Vec<(String, Shape)>,
    },
    #[error("{}: two layers are named `{name}` (layers {first} and {second}): layer names must be unique; rename one", file.display())]
    DuplicateName {
        file: PathBuf,
        name: String,
        first: usize,
        second: usize,
    },
    #[error("{}: {}: `inputs` names `{missing}`, which is not a layer of this model{hint}", file.display(), layer_ref(layer, class, *index))]
    MissingInput {
        file: PathBuf,
        layer: String,
        class: &'static str,
        index: usize,
        missing: String,
        hint: String,
    },
    #[error("{}: the `inputs` of these layers form a cycle: {}; a layer cannot depend on its own output", file.display(), layers.join(" → "))]
    Cycle { file: PathBuf, layers: Vec<String> },
    #[error("{}: `freeze: UpTo(\"{name}\")` names no layer of this model{hint}", file.display())]
    FreezeUnknown {
        file: PathBuf,
        name: String,
        hint: String,
    },
    #[error("{}: `base` refers to itself through {}", file.display(), chain.join(" → "))]
    BaseCycle { file: PathBuf, chain: Vec<String> },
}

fn layer_ref(layer: &str, class: &str, index: usize) -> String {
    format!("layer {index} `{layer}` ({class})")
}

fn list_shapes(inputs: &[(String, Shape)]) -> String {
    inputs
        .iter()
        .map(|(n, s)| format!("`{n}` {s}"))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Why a model file could not be turned into a graph: it could not be parsed, or lowered.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Parse(#[from] ModelError),
    #[error(transparent)]
    Lower(#[from] LowerError),
}
