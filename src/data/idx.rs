//! The IDX format of MNIST, Fashion-MNIST and their kin: reading image and label files, raw or
//! gzip-compressed, and loading a directory of the four standard files as train and test
//! [`Dataset`]s.
//!
//! An IDX file is, big-endian: two zero bytes, a type code (only 0x08, unsigned byte, is
//! read), the number of dimensions, one `u32` per dimension, then the data, row-major. Image
//! files have 3 dimensions (count, rows, cols), label files 1 (count). Gzip is recognised by its
//! magic bytes (1f 8b), never by the file name. Every check happens here, once: a caller gets
//! a consistent [`IdxImages`] / [`IdxLabels`] or a [`DataError`] naming the file.
//!
//! A file is read whole, decompressed in one pass into a buffer sized from the gzip trailer,
//! and checked before anything is allocated from its header's numbers.
//!
//! Must not depend on `ir` or `tui`.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::{DataError, Dataset};

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The IDX type code of unsigned bytes, the only type read.
const UNSIGNED_BYTE: u8 = 0x08;

/// Deflate cannot expand data by more than about 1032:1. Caps the buffer reserved from a gzip
/// trailer, which a damaged file could set to anything.
const MAX_DEFLATE_RATIO: usize = 1032;

/// The four files of an MNIST-format directory, without the optional `.gz`, in the order
/// train images, train labels, test images, test labels.
const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The images of an IDX image file, as stored.
///
/// # Shapes
///
/// `pixels` holds `count` images of `rows * cols` bytes, row-major, back to back.
#[derive(Clone, PartialEq)]
pub struct IdxImages {
    /// The number of images.
    pub count: usize,
    /// Rows of one image.
    pub rows: usize,
    /// Columns of one image.
    pub cols: usize,
    /// `count * rows * cols` pixel values, 0–255.
    pub pixels: Vec<u8>,
}

/// The labels of an IDX label file, one per sample.
#[derive(Clone, PartialEq)]
pub struct IdxLabels {
    /// The labels, in file order.
    pub labels: Vec<u8>,
}

/// Summarises instead of printing every pixel.
impl fmt::Debug for IdxImages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdxImages")
            .field("count", &self.count)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

/// Summarises instead of printing every label.
impl fmt::Debug for IdxLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdxLabels")
            .field("count", &self.labels.len())
            .finish_non_exhaustive()
    }
}

/// The training and test sets of an MNIST-format directory.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxSplits {
    /// From `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`.
    pub train: Dataset,
    /// From `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`.
    pub test: Dataset,
}

/// Reads an IDX image file (3 dimensions: count, rows, cols), raw or gzip-compressed.
///
/// # Errors
///
/// [`DataError::Io`] if the file cannot be read; [`DataError::Gzip`] if it is gzip and does not
/// decompress; [`DataError::NotIdx`], [`DataError::UnsupportedType`] or
/// [`DataError::BadMagic`] if its magic number is not 0x00000803; [`DataError::Truncated`],
/// [`DataError::TrailingBytes`] or [`DataError::TooLarge`] if its length disagrees with its
/// header.
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    let ([count, rows, cols], pixels) = read_idx(path)?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Reads an IDX label file (1 dimension: count), raw or gzip-compressed.
///
/// # Errors
///
/// As [`read_images`], with the expected magic number 0x00000801.
pub fn read_labels(path: &Path) -> Result<IdxLabels, DataError> {
    let ([_count], labels) = read_idx(path)?;
    Ok(IdxLabels { labels })
}

/// Loads an MNIST-format directory: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each raw or with `.gz` appended (the
/// raw file is preferred when both exist).
///
/// Pixels become `f32` multiplied by `rescale` (Keras's `Rescaling(1/255)` is
/// `rescale = 1.0 / 255.0`); images are `[rows, cols, 1]`. Both sets get the same `classes`:
/// one more than the largest label in either.
///
/// # Errors
///
/// [`DataError::NotADirectory`]; [`DataError::Missing`] listing every file not found; any
/// error of [`read_images`] / [`read_labels`]; [`DataError::CountMismatch`] if an image file
/// and its label file disagree on the number of samples; [`DataError::ShapeMismatch`] if the
/// test images are not the size of the training images.
pub fn load_idx_dir(dir: &Path, rescale: f32) -> Result<IdxSplits, DataError> {
    if !dir.is_dir() {
        return Err(DataError::NotADirectory {
            dir: dir.to_path_buf(),
        });
    }
    let found = IDX_FILES.map(|name| locate(dir, name).ok_or(name));
    let [
        Ok(train_images),
        Ok(train_labels),
        Ok(test_images),
        Ok(test_labels),
    ] = found
    else {
        return Err(DataError::Missing {
            dir: dir.to_path_buf(),
            missing: found
                .iter()
                .filter_map(|file| file.as_ref().err())
                .map(|name| format!("{name}[.gz]"))
                .collect(),
        });
    };
    let (train_x, train_y) = read_pair(&train_images, &train_labels)?;
    let (test_x, test_y) = read_pair(&test_images, &test_labels)?;
    if [test_x.rows, test_x.cols] != [train_x.rows, train_x.cols] {
        return Err(DataError::ShapeMismatch {
            train_path: train_images,
            test_path: test_images,
            train: [train_x.rows, train_x.cols],
            test: [test_x.rows, test_x.cols],
        });
    }
    let classes = train_y
        .labels
        .iter()
        .chain(&test_y.labels)
        .max()
        .map_or(0, |&max| usize::from(max) + 1);
    Ok(IdxSplits {
        train: to_dataset(train_x, train_y, rescale, classes),
        test: to_dataset(test_x, test_y, rescale, classes),
    })
}

/// `dir/name` if it is a file, else `dir/name.gz` if that is, else `None`.
fn locate(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|path| path.is_file())
}

/// Reads an image file and its label file, checking that they hold as many samples.
fn read_pair(images: &Path, labels: &Path) -> Result<(IdxImages, IdxLabels), DataError> {
    let x = read_images(images)?;
    let y = read_labels(labels)?;
    if x.count != y.labels.len() {
        return Err(DataError::CountMismatch {
            images_path: images.to_path_buf(),
            labels_path: labels.to_path_buf(),
            images: x.count,
            labels: y.labels.len(),
        });
    }
    Ok((x, y))
}

/// Pixels to `f32` times `rescale`, labels to `u32`; images `[rows, cols, 1]`.
fn to_dataset(x: IdxImages, y: IdxLabels, rescale: f32, classes: usize) -> Dataset {
    Dataset {
        shape: [x.rows, x.cols, 1],
        images: x.pixels.iter().map(|&p| f32::from(p) * rescale).collect(),
        labels: y.labels.iter().map(|&l| u32::from(l)).collect(),
        classes,
    }
}

/// Reads an unsigned-byte IDX file of `N` dimensions: its dimensions and its data.
fn read_idx<const N: usize>(path: &Path) -> Result<([usize; N], Vec<u8>), DataError> {
    let bytes = fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_idx(path, decompress(path, bytes)?)
}

/// `bytes` gunzipped if they start with the gzip magic, else unchanged.
fn decompress(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    // The trailer's ISIZE is the uncompressed length modulo 2^32: one allocation for MNIST.
    let trailer_len = bytes
        .last_chunk()
        .map_or(0, |&tail| u32::from_le_bytes(tail));
    let capacity = usize::try_from(trailer_len)
        .unwrap_or(0)
        .min(bytes.len().saturating_mul(MAX_DEFLATE_RATIO));
    let mut raw = Vec::with_capacity(capacity);
    // Reading to the end also checks every member's CRC and length.
    MultiGzDecoder::new(bytes.as_slice())
        .read_to_end(&mut raw)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(raw)
}

/// Checks the header of an uncompressed unsigned-byte IDX file of `N` dimensions against its
/// length, and returns the dimensions and the data.
fn parse_idx<const N: usize>(
    path: &Path,
    mut raw: Vec<u8>,
) -> Result<([usize; N], Vec<u8>), DataError> {
    let header_len = 4 + 4 * N;
    let truncated = |expected_bytes: usize, actual_bytes: usize| DataError::Truncated {
        path: path.to_path_buf(),
        expected_bytes: expected_bytes as u64,
        actual_bytes: actual_bytes as u64,
    };
    let Some(&magic) = raw.first_chunk() else {
        return Err(truncated(header_len, raw.len()));
    };
    check_magic(path, u32::from_be_bytes(magic), N)?;
    let Some(dims_bytes) = raw.get(4..header_len) else {
        return Err(truncated(header_len, raw.len()));
    };
    let mut raw_dims = [0_u32; N];
    for (dim, bytes) in raw_dims.iter_mut().zip(dims_bytes.chunks_exact(4)) {
        *dim = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    let too_large = || DataError::TooLarge {
        path: path.to_path_buf(),
        dims: raw_dims.to_vec(),
    };
    let mut dims = [0_usize; N];
    for (dim, &raw_dim) in dims.iter_mut().zip(&raw_dims) {
        *dim = usize::try_from(raw_dim).map_err(|_| too_large())?;
    }
    let expected = dims
        .iter()
        .try_fold(1_usize, |len, &dim| len.checked_mul(dim))
        .and_then(|data_len| data_len.checked_add(header_len))
        .ok_or_else(too_large)?;
    if raw.len() < expected {
        return Err(truncated(expected, raw.len()));
    }
    if raw.len() > expected {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected_bytes: expected as u64,
            actual_bytes: raw.len() as u64,
        });
    }
    raw.drain(..header_len);
    Ok((dims, raw))
}

/// Checks that `magic` is that of an unsigned-byte IDX file of `ndims` dimensions.
fn check_magic(path: &Path, magic: u32, ndims: usize) -> Result<(), DataError> {
    let [zero_0, zero_1, type_code, _] = magic.to_be_bytes();
    if [zero_0, zero_1] != [0, 0] {
        return Err(DataError::NotIdx {
            path: path.to_path_buf(),
            found: magic,
        });
    }
    if type_code != UNSIGNED_BYTE {
        return Err(DataError::UnsupportedType {
            path: path.to_path_buf(),
            type_code,
        });
    }
    // `ndims` is 1 or 3, from `read_images` or `read_labels`.
    let expected = u32::from(UNSIGNED_BYTE) << 8 | ndims as u32;
    if magic != expected {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
            expected,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
