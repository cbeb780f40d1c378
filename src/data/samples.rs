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
    /// NHWC values, `len · stored_shape`; converted on read when `convert` is given (an IDX
    /// dataset resized and turned to RGB for a pretrained base).
    Memory {
        values: Vec<f32>,
        stored_shape: [usize; 3],
        convert: Option<FolderOptions>,
    },
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
    /// Per-channel `(mean, std)` applied after `rescale` — `(x · rescale − mean) / std` — as
    /// the weights of a pretrained base record it (torchvision's ImageNet statistics).
    pub normalise: Option<(Vec<f32>, Vec<f32>)>,
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
            normalise: None,
            preprocess: Vec::new(),
            store: Store::Memory {
                values: data.images,
                stored_shape: data.shape,
                convert: None,
            },
        }
    }

    /// These in-memory samples converted as they are read: resized to `options.image_size`
    /// and turned to its colour mode (the samples' shape becomes `options.shape()`). Files are
    /// converted as they are decoded already; for them this changes nothing.
    pub fn converted(mut self, options: FolderOptions) -> Samples {
        if let Store::Memory { convert, .. } = &mut self.store {
            *convert = Some(options);
            self.shape = options.shape();
        }
        self
    }

    /// With `(x · rescale − mean) / std` per channel (see [`Samples::normalise`]).
    pub fn normalised(mut self, mean: Vec<f32>, std: Vec<f32>) -> Samples {
        self.normalise = Some((mean, std));
        self
    }

    /// Turns one sample on the 0–255 scale (augmented or not) into model input, in place:
    /// `· rescale`, then `normalise`, if any.
    pub fn scale(&self, x: &mut [f32]) {
        if self.rescale != 1.0 {
            x.iter_mut().for_each(|v| *v *= self.rescale);
        }
        if let Some((mean, std)) = &self.normalise {
            let c = mean.len();
            for px in x.chunks_exact_mut(c) {
                for ((v, m), s) in px.iter_mut().zip(mean).zip(std) {
                    *v = (*v - m) / s;
                }
            }
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
            normalise: None,
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

    /// Whether reading a sample is more than a copy (decoding, resizing or image operations:
    /// work worth doing on other threads).
    pub fn is_costly(&self) -> bool {
        !self.preprocess.is_empty()
            || match &self.store {
                Store::Files { .. } => true,
                Store::Memory { convert, .. } => convert.is_some(),
            }
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
        match &self.store {
            Store::Memory {
                values,
                stored_shape: [h, w, c],
                convert,
            } => {
                let n = h * w * c;
                let img = Image {
                    width: *w,
                    height: *h,
                    channels: *c,
                    data: values[i * n..(i + 1) * n].to_vec(),
                };
                match convert {
                    Some(options) => options.convert(img),
                    None => Ok(img),
                }
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
            .field("costly", &self.is_costly())
            .finish_non_exhaustive()
    }
}
