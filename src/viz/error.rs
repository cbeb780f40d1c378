//! [`VizError`]: what can go wrong looking inside a model.

use std::path::PathBuf;

use crate::data::image::ImageError;

/// A visualisation request that cannot be met; each message says what to ask instead.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    #[error("no layer named `{name}`; layers with feature maps are: {valid}")]
    UnknownLayer { name: String, valid: String },
    #[error(
        "layer `{name}` ({class}) is not convolutional: its output has shape {shape:?}, and \
         this needs a feature map of height × width × channels; choose one of: {valid}"
    )]
    NotConvolutional {
        name: String,
        class: &'static str,
        shape: Vec<usize>,
        valid: String,
    },
    #[error("the model has no layer with a 2-D feature map to look at")]
    NoFeatureMaps,
    #[error("class {class} is outside the model's output; give a class index from 0 to {}", classes - 1)]
    ClassOutOfRange { class: usize, classes: usize },
    #[error("filter {filter} is outside layer `{layer}`, which has {filters} filters (0 to {})", filters - 1)]
    FilterOutOfRange {
        layer: String,
        filter: usize,
        filters: usize,
    },
    #[error("{}: cannot write here ({reason}); choose a directory you can write to", path.display())]
    Unwritable { path: PathBuf, reason: String },
    #[error("the model could not be prepared for inspection: {0}")]
    Prepare(String),
    #[error(transparent)]
    Image(#[from] ImageError),
}
