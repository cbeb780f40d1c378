//! Datasets: reading labelled images from disk and holding them in memory for training.
//!
//! Owns the on-disk dataset formats — IDX (the MNIST / Fashion-MNIST format) and image folders
//! ([`folder`]) — the in-memory [`Dataset`] the IDX loader produces (NHWC `f32` images, `u32`
//! class labels), [`Samples`] (what a run reads by index, in memory or from files), the input
//! [`pipeline`] (worker threads, bounded prefetch), Keras's augmentation ([`augment`]), images
//! and the classic image operations ([`image`]), and [`DataError`].
//!
//! Must not depend on `ir` or `tui`: a dataset knows nothing of the model that consumes it, and
//! loading one is the same whether the dashboard, the headless printer or a test is watching.
//! Inside this module, [`Dataset`] and [`DataError`] depend on no file format; the format
//! readers depend on them.

pub mod augment;
mod dataset;
mod error;
pub mod folder;
mod idx;
pub mod image;
pub mod pipeline;
mod samples;

pub use dataset::Dataset;
pub use error::DataError;
pub use idx::{IdxImages, IdxLabels, IdxSplits, load_idx_dir, read_images, read_labels};
pub use samples::Samples;
