//! [`Samples`]: the labelled samples a run reads by index — held in memory (IDX) or decoded
//! from image files on demand (folders) — with the `rescale` that turns them into model input.
//!
//! Both kinds give a sample on the 0–255 scale of its file ([`Samples::raw`]); augmentation
//! works on that scale (as Keras's `ImageDataGenerator` transforms before it rescales), and the
//! pipeline multiplies by `rescale` last.
//!
//! Must not depend on `ir`, `runtime` or `tui`.

use std::path::PathBuf;

use super::Dataset;
use super::folder::{FolderOptions, Scan};
use super::image::{Image, ImageOp};

enum Store {
    /// NHWC values, `len · h · w · c`.
    Memory(Vec<f32>),
    Files {
        files: Vec<PathBuf>,
        options: FolderOptions,
    },
}

/// Labelled samples of one shape, in memory or on disk.
pub struct Samples {
    /// `[h, w, c]` of one sample.
    pub shape: [usize; 3],
    /// The number of classes.
    pub classes: usize,
    /// Class names (the folder names), empty for IDX data.
    pub class_names: Vec<String>,
    /// One class index per sample.
    pub labels: Vec<u32>,
    /// Multiplies every value after augmentation (Keras's `rescale`).
    pub rescale: f32,
    /// Image operations applied to every sample as it is read, before augmentation.
    pub preprocess: Vec<ImageOp>,
    store: Store,
}

impl Samples {
    /// In-memory samples; `data` holds values on the 0–255 scale.
    pub fn memory(data: Dataset, rescale: f32) -> Samples {
        Samples {
            shape: data.shape,
            classes: data.classes,
            class_names: Vec::new(),
            labels: data.labels,
            rescale,
            preprocess: Vec::new(),
            store: Store::Memory(data.images),
        }
    }

    /// The files of a folder scan, decoded on demand with `options`.
    pub fn files(scan: Scan, options: FolderOptions, rescale: f32) -> Samples {
        Samples {
            shape: options.shape(),
            classes: scan.class_names.len(),
            class_names: scan.class_names,
            labels: scan.labels,
            rescale,
            preprocess: Vec::new(),
            store: Store::Files {
                files: scan.files,
                options,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values in one sample: `h · w · c`.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the samples are decoded from files (work worth doing on other threads).
    pub fn is_on_disk(&self) -> bool {
        matches!(self.store, Store::Files { .. })
    }

    /// Sample `i` on the 0–255 scale, before augmentation and rescaling.
    ///
    /// # Errors
    /// `"FILE: reason"` when a file that decoded when the folder was scanned no longer does.
    ///
    /// # Panics
    /// If `i >= self.len()` (an index is the caller's, not the user's).
    pub fn raw(&self, i: usize) -> Result<Image, String> {
        let mut img = self.stored(i)?;
        for op in &self.preprocess {
            img = op
                .apply(&img)
                .map_err(|e| format!("{} of sample {i}: {e}", op.name()))?;
        }
        Ok(img)
    }

    /// With image operations applied to every sample as it is read (see [`Samples::raw`]).
    pub fn with_preprocess(mut self, ops: Vec<ImageOp>) -> Samples {
        self.preprocess = ops;
        self
    }

    /// Sample `i` as stored (decoded and resized for files).
    fn stored(&self, i: usize) -> Result<Image, String> {
        let [h, w, c] = self.shape;
        match &self.store {
            Store::Memory(values) => {
                let n = h * w * c;
                Ok(Image {
                    width: w,
                    height: h,
                    channels: c,
                    data: values[i * n..(i + 1) * n].to_vec(),
                })
            }
            Store::Files { files, options } => options
                .load(&files[i])
                .map_err(|why| format!("{}: {why}", files[i].display())),
        }
    }
}

/// Summarises instead of printing every value.
impl std::fmt::Debug for Samples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Samples")
            .field("shape", &self.shape)
            .field("len", &self.len())
            .field("classes", &self.classes)
            .field("on_disk", &self.is_on_disk())
            .finish_non_exhaustive()
    }
}
