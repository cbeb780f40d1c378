//! Datasets: reading labelled images from disk and holding them in memory for training.
//!
//! Owns the on-disk dataset formats — IDX (the MNIST / Fashion-MNIST format) and image folders
//! ([`folder`]) — the in-memory [`Dataset`] the IDX loader produces (NHWC `f32` images, `u32`
//! class labels), [`Samples`] (what a run reads by index, in memory or from files), the input
//! [`pipeline`] (worker threads, bounded prefetch), Keras's augmentation ([`augment`]), images
//! and the classic image operations ([`image`]), stored [`features`] (what `cnntui extract`
//! writes), and [`DataError`].
//!
//! Must not depend on `ir` or `tui`: a dataset knows nothing of the model that consumes it, and
//! loading one is the same whether the dashboard, the headless printer or a test is watching.
//! Inside this module, [`Dataset`] and [`DataError`] depend on no file format; the format
//! readers depend on them.

pub mod augment;
mod dataset;
mod error;
pub mod features;
pub mod folder;
mod idx;
pub mod image;
pub mod pipeline;
mod samples;

pub use dataset::Dataset;
pub use error::DataError;
pub use idx::{IdxImages, IdxLabels, IdxSplits, load_idx_dir, read_images, read_labels};
pub use samples::Samples;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over `path` — an interrupted write never leaves half a file under the name.
///
/// # Errors
/// The I/O error; the temporary file is removed.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
