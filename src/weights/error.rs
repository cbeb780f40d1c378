//! [`WeightsError`]: everything that can go wrong reading a weights file or fitting it to a
//! model. Each message names the file, and the tensors and shapes involved.

use std::path::PathBuf;

/// A weights file could not be read, or does not fit the model. Nothing has been loaded into
/// the model when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: cannot read the weights file ({source}); check the path", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: not a weights file: it is neither safetensors nor a PyTorch .pth/.pt (zip or legacy \
         pickle format){hint}",
        path.display()
    )]
    NotWeights { path: PathBuf, hint: String },
    #[error(
        "{}: the file is truncated or damaged: {what}; download it again",
        path.display()
    )]
    Truncated { path: PathBuf, what: String },
    #[error("{}: not a valid safetensors file ({reason})", path.display())]
    Safetensors { path: PathBuf, reason: String },
    #[error("{}: not a valid PyTorch zip file ({reason})", path.display())]
    Zip { path: PathBuf, reason: String },
    #[error("{}: cannot read the pickled data at byte {offset}: {problem}", path.display())]
    Pickle {
        path: PathBuf,
        offset: usize,
        problem: String,
    },
    #[error("{}: {problem}", path.display())]
    Unsupported { path: PathBuf, problem: String },
    #[error(
        "{}: tensor `{name}` needs elements up to byte {needed} of its storage, which holds \
         {available} bytes; the file is damaged",
        path.display()
    )]
    OutOfBounds {
        path: PathBuf,
        name: String,
        needed: usize,
        available: usize,
    },
    #[error(
        "{}: tensor `{name}` has shape {found:?} but layer `{layer}` ({class}) needs {expected:?} \
         there{note}; the file belongs to a different model",
        path.display()
    )]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        layer: String,
        class: &'static str,
        expected: Vec<usize>,
        note: String,
    },
    #[error(
        "{}: tensor `{name}` ({found}) cannot be the weights of layer `{layer}` ({class}), the \
         next layer with weights; the file belongs to a different model",
        path.display()
    )]
    Kind {
        path: PathBuf,
        name: String,
        found: String,
        layer: String,
        class: &'static str,
    },
    #[error(
        "{}: the file lacks tensors the model needs:\n{}",
        path.display(),
        missing.iter().map(|m| format!("    {m}")).collect::<Vec<_>>().join("\n")
    )]
    Missing { path: PathBuf, missing: Vec<String> },
    #[error("{}: tensor `{name}` is {dtype}; only floating-point weights can be loaded", path.display())]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
}
