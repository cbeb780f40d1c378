//! [`DataError`]: everything that can go wrong loading or splitting a dataset.
//!
//! Each variant carries the file (or directory) and the numbers a person needs to fix the
//! problem, and its message ends with what to do. An underlying cause (an OS error, a deflate
//! error) is the error's `source`, not part of its message, so that printing the chain shows it
//! once.
//!
//! Must not depend on `ir` or `tui`, nor on the other `data` modules (they depend on it).

use std::io;
use std::path::PathBuf;

/// The advice for a data directory or file that is not what an IDX loader expects.
const POINT_AT_IDX_DIR: &str = "point `train.data` at a directory of MNIST-format IDX files";

/// An error loading or splitting a dataset.
///
/// Byte counts in IDX errors are of the uncompressed file (for a raw file, its size on disk).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The dataset directory does not exist or is not a directory.
    #[error("{}: not a directory; {}", dir.display(), POINT_AT_IDX_DIR)]
    NotADirectory {
        /// The directory as given.
        dir: PathBuf,
    },

    /// Files a dataset needs are not in its directory.
    #[error(
        "{}: missing {}; put the four MNIST-format IDX files (raw or .gz) there, or {}",
        dir.display(),
        missing.join(", "),
        POINT_AT_IDX_DIR
    )]
    Missing {
        /// The directory searched.
        dir: PathBuf,
        /// The files not found, each written as `name[.gz]` when either form would do.
        missing: Vec<String>,
    },

    /// The file could not be read.
    #[error("{}: cannot read the file; check that it exists and is readable", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// The file starts with the gzip magic (1f 8b) but does not decompress.
    #[error(
        "{}: corrupt gzip data; re-download the file (or check it with `gzip -t`)",
        path.display()
    )]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decompressor said.
        #[source]
        source: io::Error,
    },

    /// The first two bytes are not the zeros every IDX file starts with.
    #[error(
        "{}: not an IDX file: it starts with {found:#010x}, but IDX files start with two zero \
         bytes; {}",
        path.display(),
        POINT_AT_IDX_DIR
    )]
    NotIdx {
        /// The file.
        path: PathBuf,
        /// The first four bytes, big-endian.
        found: u32,
    },

    /// The IDX type code (third byte) is not 0x08, unsigned byte — the only type read.
    #[error(
        "{}: IDX type code {type_code:#04x} ({}) is not supported, only 0x08 (unsigned byte) \
         is; convert the file to unsigned bytes",
        path.display(),
        idx_type_name(*type_code)
    )]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The type code found.
        type_code: u8,
    },

    /// An unsigned-byte IDX file with the wrong number of dimensions (images have 3, labels 1),
    /// typically a label file where an image file belongs or the other way round.
    #[error(
        "{}: not an IDX {} file: magic {found:#010x}{}, expected {expected:#010x}; {}",
        path.display(),
        idx_kind(*expected),
        idx_kind_hint(*found),
        POINT_AT_IDX_DIR
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number found (big-endian; its low byte is the dimension count).
        found: u32,
        /// The magic number expected.
        expected: u32,
    },

    /// The file is shorter than its header says it should be.
    #[error(
        "{}: truncated IDX file: expected {expected_bytes} bytes (uncompressed), found \
         {actual_bytes}; re-download or re-extract it",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Header plus the data the header describes.
        expected_bytes: u64,
        /// What the file holds.
        actual_bytes: u64,
    },

    /// The file is longer than its header says it should be.
    #[error(
        "{}: {actual_bytes} bytes (uncompressed) where the IDX header describes \
         {expected_bytes}; the header or the file is damaged, re-download it",
        path.display()
    )]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Header plus the data the header describes.
        expected_bytes: u64,
        /// What the file holds.
        actual_bytes: u64,
    },

    /// The header's dimensions multiply to more bytes than this machine can address.
    #[error(
        "{}: IDX dimensions {} describe more data than fits in memory; the header is damaged, \
         re-download the file",
        path.display(),
        dims.iter().map(u32::to_string).collect::<Vec<_>>().join("×")
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The dimensions in the header.
        dims: Vec<u32>,
    },

    /// An image file and its label file disagree on the number of samples.
    #[error(
        "{} holds {images} images but {} holds {labels} labels; use an image file and the \
         label file that belongs to it",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// The label file.
        labels_path: PathBuf,
        /// Images in the image file.
        images: usize,
        /// Labels in the label file.
        labels: usize,
    },

    /// The test images are not the size of the training images.
    #[error(
        "{}: images are {}×{} but the training images in {} are {}×{}; use a training and a \
         test set of the same dataset",
        test_path.display(),
        test[0],
        test[1],
        train_path.display(),
        train[0],
        train[1]
    )]
    ShapeMismatch {
        /// The training image file.
        train_path: PathBuf,
        /// The test image file.
        test_path: PathBuf,
        /// Training image rows and columns.
        train: [usize; 2],
        /// Test image rows and columns.
        test: [usize; 2],
    },

    /// An image-folder dataset's directory does not exist or is not a directory.
    #[error(
        "{}: not a directory; point `train.data: Folder(dir: ...)` at a directory with one \
         subdirectory of images per class",
        dir.display()
    )]
    NotAFolderDataset {
        /// The directory as given.
        dir: PathBuf,
    },

    /// An image-folder dataset's directory has no subdirectories.
    #[error(
        "{}: no class folders; put the images of each class in a subdirectory named after the \
         class (e.g. cats/ and dogs/)",
        dir.display()
    )]
    NoClassFolders {
        /// The directory.
        dir: PathBuf,
    },

    /// A class folder without one readable image.
    #[error(
        "{}: the class folder `{class}` holds no readable image; add images (JPEG, PNG, BMP, \
         GIF or WebP) or remove the folder",
        dir.display()
    )]
    EmptyClass {
        /// The class folder.
        dir: PathBuf,
        /// The class name.
        class: String,
    },

    /// A validation or test directory whose classes are not the training directory's.
    #[error(
        "{}: class folders [{}] differ from the training directory's [{}]; give every split \
         the same class folders",
        dir.display(),
        found.join(", "),
        expected.join(", ")
    )]
    ClassesDiffer {
        /// The validation or test directory.
        dir: PathBuf,
        /// The training classes.
        expected: Vec<String>,
        /// This directory's classes.
        found: Vec<String>,
    },

    /// A file `data: Features(file: ...)` names that is not what `cnntui extract` writes.
    #[error(
        "{}: not a features file written by `cnntui extract` ({reason}); make one with \
         `cnntui extract MODEL --out FILE`",
        path.display()
    )]
    Features { path: PathBuf, reason: String },

    /// A validation fraction outside `[0, 1)`.
    #[error("validation split {fraction} is outside [0, 1); use a fraction such as 0.1")]
    BadFraction {
        /// The fraction given.
        fraction: f64,
    },

    /// A validation fraction that leaves the training or the validation set empty.
    #[error(
        "validation split {fraction} of {samples} samples leaves an empty training or \
         validation set; use more data or a different fraction"
    )]
    EmptySplit {
        /// The fraction given.
        fraction: f64,
        /// The samples there were to split.
        samples: usize,
    },
}

/// What the IDX type code `code` stores.
fn idx_type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0b => "16-bit integer",
        0x0c => "32-bit integer",
        0x0d => "32-bit float",
        0x0e => "64-bit float",
        _ => "not an IDX type",
    }
}

/// "image" or "label", for the file an expected magic number belongs to.
fn idx_kind(magic: u32) -> &'static str {
    match magic & 0xff {
        1 => "label",
        3 => "image",
        _ => "data",
    }
}

/// A guess at what a file with magic `found` is, to follow the magic in a message.
fn idx_kind_hint(found: u32) -> String {
    match found & 0xff {
        1 => " (labels?)".to_owned(),
        3 => " (images?)".to_owned(),
        n => format!(" ({n} dimensions)"),
    }
}
