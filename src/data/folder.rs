//! Image-folder datasets with Keras's semantics (`image_dataset_from_directory`,
//! `flow_from_directory`): one subdirectory per class, class names sorted, the class of a file
//! being the folder it lies in (at any depth below the class folder).
//!
//! Owns scanning a directory into a list of files and labels ([`scan`]), checking that every
//! file decodes (a corrupt, truncated or non-image file is skipped and reported, never fatal),
//! Keras's seeded `validation_split`, and turning one file into a sample of the requested size
//! and colour mode ([`FolderOptions::load`]).
//!
//! Files are listed in sorted order, class by class, as Keras lists them. Keras shuffles before
//! a `validation_split` with NumPy's generator; here the shuffle is seeded too but is cnntui's
//! own, so the same seed picks other files than Keras (the fraction arithmetic is Keras's:
//! `floor(split · n)` validation files, taken from the end).
//!
//! Colour conversion follows PIL's `convert` (Keras's `load_img`): grey is ITU-R 601 luma in
//! PIL's fixed point; grey files read as RGB repeat the grey value; alpha is dropped. Resizing
//! is Pillow's (`resize`, exact), with the interpolation the model file names.
//!
//! Must not depend on `ir`, `runtime` or `tui`.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::DataError;
use super::augment::SampleRng;
use super::image::{Filter, Image, Rounding, grey, resize};

/// `rgb` (3 channels) or `grayscale` (1), as Keras's `color_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMode {
    Rgb,
    Grayscale,
}

impl ColorMode {
    /// The names accepted in model files.
    pub const NAMES: &'static str = "rgb, grayscale";

    /// Parses a Keras name; `None` for anything else.
    pub fn from_name(name: &str) -> Option<ColorMode> {
        match name {
            "rgb" => Some(ColorMode::Rgb),
            "grayscale" => Some(ColorMode::Grayscale),
            _ => None,
        }
    }

    pub fn channels(self) -> usize {
        match self {
            ColorMode::Rgb => 3,
            ColorMode::Grayscale => 1,
        }
    }
}

/// How each file becomes a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FolderOptions {
    /// `(height, width)` of every sample.
    pub image_size: (usize, usize),
    pub interpolation: Filter,
    pub color_mode: ColorMode,
}

impl FolderOptions {
    /// `[h, w, c]` of a sample.
    pub fn shape(&self) -> [usize; 3] {
        [
            self.image_size.0,
            self.image_size.1,
            self.color_mode.channels(),
        ]
    }

    /// Decodes `bytes`, converts the colour mode and resizes: a sample on the 0–255 scale.
    ///
    /// # Errors
    /// The decoder's reason when the bytes are not an image it reads.
    pub fn decode(&self, bytes: &[u8]) -> Result<Image, String> {
        if bytes.starts_with(&[0xff, 0xd8]) && !jpeg_ends(bytes) {
            return Err("truncated JPEG: no end-of-image marker (FF D9) at its end".to_string());
        }
        let decoded =
            image::load_from_memory(bytes).map_err(|e| e.to_string().trim().replace('\n', " "))?;
        let img = match self.color_mode {
            ColorMode::Rgb => {
                let rgb = decoded.to_rgb8();
                Image {
                    width: rgb.width() as usize,
                    height: rgb.height() as usize,
                    channels: 3,
                    data: rgb.into_raw().into_iter().map(f32::from).collect(),
                }
            }
            // Pillow's `convert("L")` for colour files; grey files pass through.
            ColorMode::Grayscale => grey(&Image::from_dynamic(&decoded)),
        };
        self.convert(img)
    }

    /// Converts a sample already in memory (an IDX image, say) to the colour mode — PIL's
    /// `convert`: luma for colour to grey, the grey value repeated for grey to RGB — then
    /// resizes it.
    ///
    /// # Errors
    /// The resizer's reason (a zero-sized image).
    pub fn convert(&self, img: Image) -> Result<Image, String> {
        let img = match (self.color_mode, img.channels) {
            (ColorMode::Grayscale, c) if c != 1 => grey(&img),
            (ColorMode::Rgb, 1) => Image {
                data: img.data.iter().flat_map(|&v| [v, v, v]).collect(),
                channels: 3,
                ..img
            },
            _ => img,
        };
        let (h, w) = self.image_size;
        if (img.height, img.width) == (h, w) {
            return Ok(img);
        }
        resize(&img, w, h, self.interpolation, Rounding::Bytes).map_err(|e| e.to_string())
    }

    /// Reads and decodes one file into a sample.
    ///
    /// # Errors
    /// The reason, when the file cannot be read or is not an image.
    pub fn load(&self, path: &Path) -> Result<Image, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        self.decode(&bytes)
    }
}

/// Whether a JPEG ends with its end-of-image marker (within its last KiB, to allow padding).
/// The decoder fills a truncated JPEG with grey rather than failing, where PIL (and so Keras)
/// raises "image file is truncated"; the marker is how a cut file shows.
fn jpeg_ends(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(1024).max(2)..];
    tail.windows(2).any(|w| w == [0xff, 0xd9])
}

/// The labelled files of one directory.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// The directory scanned.
    pub dir: PathBuf,
    /// Class names: the subdirectories, sorted.
    pub class_names: Vec<String>,
    /// Every readable image, class by class, sorted by path within a class.
    pub files: Vec<PathBuf>,
    /// The class of each file.
    pub labels: Vec<u32>,
    /// Files left out, each with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl Scan {
    /// One line for the log naming what was skipped, or `None` when nothing was.
    pub fn skipped_message(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let names: Vec<String> = self
            .skipped
            .iter()
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        Some(format!(
            "{}: skipped {} file(s) that are not readable images: {}",
            self.dir.display(),
            self.skipped.len(),
            names.join("; ")
        ))
    }

    /// Keras's seeded `validation_split`: shuffles the files with `seed`, then moves the last
    /// `floor(split · n)` to a second scan. Returns `(training, validation)`.
    ///
    /// # Errors
    /// [`DataError::BadFraction`] outside `(0, 1)`; [`DataError::EmptySplit`] when either part
    /// would be empty.
    pub fn split(mut self, split: f64, seed: u64) -> Result<(Scan, Scan), DataError> {
        if !(split > 0.0 && split < 1.0) {
            return Err(DataError::BadFraction { fraction: split });
        }
        let n = self.files.len();
        let val = (split * n as f64).floor() as usize;
        if val == 0 || val >= n {
            return Err(DataError::EmptySplit {
                fraction: split,
                samples: n,
            });
        }
        let mut order: Vec<usize> = (0..n).collect();
        SampleRng::new(seed).shuffle(&mut order);
        let files: Vec<PathBuf> = order.iter().map(|&i| self.files[i].clone()).collect();
        let labels: Vec<u32> = order.iter().map(|&i| self.labels[i]).collect();
        let validation = Scan {
            dir: self.dir.clone(),
            class_names: self.class_names.clone(),
            files: files[n - val..].to_vec(),
            labels: labels[n - val..].to_vec(),
            skipped: Vec::new(),
        };
        self.files = files[..n - val].to_vec();
        self.labels = labels[..n - val].to_vec();
        Ok((self, validation))
    }

    /// The first `limit` files.
    pub fn take(mut self, limit: usize) -> Scan {
        self.files.truncate(limit);
        self.labels.truncate(limit);
        self
    }
}

/// Every regular file below `dir`, sorted, recursively.
fn files_below(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_below(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Scans `dir`: its subdirectories are the classes (sorted), the files below each are its
/// samples. Every file is decoded once (in parallel) with `options`, so that corrupt,
/// truncated and non-image files are found now and listed in [`Scan::skipped`]; files directly
/// in `dir` (outside any class folder) are skipped too. `expected_classes`, when given, are the
/// training set's classes, which a validation or test directory must repeat.
///
/// # Errors
/// [`DataError::NotAFolderDataset`] if `dir` is not a directory; [`DataError::NoClassFolders`]
/// if it has no subdirectories; [`DataError::EmptyClass`] if a class has no readable image;
/// [`DataError::ClassesDiffer`] if the classes are not `expected_classes`.
pub fn scan(
    dir: &Path,
    options: &FolderOptions,
    expected_classes: Option<&[String]>,
) -> Result<Scan, DataError> {
    if !dir.is_dir() {
        return Err(DataError::NotAFolderDataset {
            dir: dir.to_path_buf(),
        });
    }
    let mut top = Vec::new();
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        top.push(entry.map_err(io)?.path());
    }
    top.sort();
    let mut skipped = Vec::new();
    let mut class_dirs = Vec::new();
    for path in top {
        if path.is_dir() {
            class_dirs.push(path);
        } else {
            skipped.push((path, "not inside a class folder".to_string()));
        }
    }
    let class_names: Vec<String> = class_dirs
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    if class_names.is_empty() {
        return Err(DataError::NoClassFolders {
            dir: dir.to_path_buf(),
        });
    }
    if let Some(expected) = expected_classes
        && expected != class_names.as_slice()
    {
        return Err(DataError::ClassesDiffer {
            dir: dir.to_path_buf(),
            expected: expected.to_vec(),
            found: class_names,
        });
    }
    let mut candidates = Vec::new();
    for (label, class_dir) in class_dirs.iter().enumerate() {
        let mut files = Vec::new();
        files_below(class_dir, &mut files)?;
        candidates.extend(files.into_iter().map(|f| (f, label as u32)));
    }
    let checked: Vec<Option<String>> = candidates
        .par_iter()
        .map(|(path, _)| options.load(path).err())
        .collect();
    let mut scan = Scan {
        dir: dir.to_path_buf(),
        class_names,
        skipped,
        ..Scan::default()
    };
    let mut per_class = vec![0usize; class_dirs.len()];
    for ((path, label), problem) in candidates.into_iter().zip(checked) {
        match problem {
            Some(why) => scan.skipped.push((path, why)),
            None => {
                per_class[label as usize] += 1;
                scan.files.push(path);
                scan.labels.push(label);
            }
        }
    }
    if let Some(empty) = per_class.iter().position(|&n| n == 0) {
        return Err(DataError::EmptyClass {
            dir: class_dirs[empty].clone(),
            class: scan.class_names[empty].clone(),
        });
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pil_luma_matches_pil_convert_l() {
        // PIL 13: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0)).
        let pil_luma = |[r, g, b]: [u8; 3]| {
            let png = {
                let mut bytes = Vec::new();
                image::RgbImage::from_pixel(1, 1, image::Rgb([r, g, b]))
                    .write_to(
                        &mut std::io::Cursor::new(&mut bytes),
                        image::ImageFormat::Png,
                    )
                    .unwrap();
                bytes
            };
            let options = FolderOptions {
                color_mode: ColorMode::Grayscale,
                image_size: (1, 1),
                interpolation: Filter::Bilinear,
            };
            options.decode(&png).unwrap().data[0]
        };
        assert_eq!(pil_luma([255, 255, 255]), 255.0);
        assert_eq!(pil_luma([255, 0, 0]), 76.0);
        assert_eq!(pil_luma([0, 255, 0]), 150.0);
        assert_eq!(pil_luma([0, 0, 255]), 29.0);
        assert_eq!(pil_luma([12, 200, 99]), 132.0);
    }

    #[test]
    fn a_jpeg_without_its_end_marker_is_truncated() {
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0];
        jpeg.extend(std::iter::repeat_n(0x11, 3000));
        assert!(!jpeg_ends(&jpeg));
        jpeg.extend([0xff, 0xd9, 0, 0]);
        assert!(jpeg_ends(&jpeg));
        assert!(!jpeg_ends(&[0xff, 0xd8]), "the start marker is not an end");
    }

    #[test]
    fn split_takes_the_floor_of_the_fraction_from_the_end() {
        let scan = Scan {
            dir: PathBuf::from("d"),
            class_names: vec!["a".into(), "b".into()],
            files: (0..10).map(|i| PathBuf::from(format!("{i}"))).collect(),
            labels: (0..10).map(|i| i % 2).collect(),
            skipped: Vec::new(),
        };
        let (train, val) = scan.clone().split(0.25, 3).unwrap();
        assert_eq!((train.files.len(), val.files.len()), (8, 2));
        let (train2, _) = scan.clone().split(0.25, 3).unwrap();
        assert_eq!(train.files, train2.files);
        for (f, l) in train.files.iter().zip(&train.labels) {
            let i: u32 = f.to_str().unwrap().parse().unwrap();
            assert_eq!(i % 2, *l);
        }
        assert!(matches!(
            scan.split(0.05, 1),
            Err(DataError::EmptySplit { .. })
        ));
    }
}
