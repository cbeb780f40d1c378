//! Unit tests of the IDX reader: tiny IDX files built in a temporary directory (raw, gzip,
//! and every way they can be wrong), the committed corrupt fixtures under
//! `tests/fixtures/idx/`, and the real MNIST training labels under `data/mnist/`.
//!
//! Depends only on the reader it tests (and `flate2` to make gzip files).

use std::env;
use std::error::Error as _;
use std::io::Write;
use std::process;
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::*;

/// A directory under the system temp dir, unique to one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = env::temp_dir().join(format!("cnntui-idx-{}-{n}-{test}", process::id()));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// An IDX file: type code, dimensions, data.
fn idx(type_code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, type_code, dims.len() as u8];
    for dim in dims {
        bytes.extend(dim.to_be_bytes());
    }
    bytes.extend(data);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Two 2×3 images, pixels 0..12.
fn two_images() -> Vec<u8> {
    idx(0x08, &[2, 2, 3], &(0..12).collect::<Vec<u8>>())
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/idx")
        .join(name)
}

const POINT: &str = "point `train.data` at a directory of MNIST-format IDX files";

#[test]
fn reads_raw_images() {
    let dir = TempDir::new("raw");
    let images = read_images(&dir.write("images", &two_images())).unwrap();
    assert_eq!((images.count, images.rows, images.cols), (2, 2, 3));
    assert_eq!(images.pixels, (0..12).collect::<Vec<u8>>());
}

#[test]
fn detects_gzip_by_magic_not_by_name() {
    let dir = TempDir::new("gzip");
    let labels = idx(0x08, &[3], &[7, 0, 9]);
    let unnamed_gzip = dir.write("labels.idx", &gzip(&labels));
    assert_eq!(read_labels(&unnamed_gzip).unwrap().labels, [7, 0, 9]);
    let misnamed_raw = dir.write("labels.gz", &labels);
    assert_eq!(read_labels(&misnamed_raw).unwrap().labels, [7, 0, 9]);
    let images = read_images(&dir.write("images.gz", &gzip(&two_images()))).unwrap();
    assert_eq!(images.pixels.len(), 12);
}

#[test]
fn reads_concatenated_gzip_members() {
    let dir = TempDir::new("members");
    let labels = idx(0x08, &[3], &[1, 2, 3]);
    let mut two_members = gzip(&labels[..5]);
    two_members.extend(gzip(&labels[5..]));
    let path = dir.write("labels", &two_members);
    assert_eq!(read_labels(&path).unwrap().labels, [1, 2, 3]);
}

#[test]
fn label_file_read_as_images_names_both_magics() {
    let dir = TempDir::new("magic");
    let path = dir.write(
        "train-images-idx3-ubyte.gz",
        &gzip(&idx(0x08, &[2], &[1, 2])),
    );
    assert_eq!(
        read_images(&path).unwrap_err().to_string(),
        format!(
            "{}: not an IDX image file: magic 0x00000801 (labels?), expected 0x00000803; \
             {POINT}",
            path.display()
        )
    );
}

#[test]
fn wrong_dimension_count_is_reported() {
    let dir = TempDir::new("ndims");
    let path = dir.write("labels", &idx(0x08, &[2, 2], &[0; 4]));
    let err = read_labels(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                found: 0x0802,
                expected: 0x0801,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not an IDX label file: magic 0x00000802 (2 dimensions), expected \
             0x00000801; {POINT}",
            path.display()
        )
    );
}

#[test]
fn unsupported_type_code_is_named() {
    let dir = TempDir::new("type");
    let path = dir.write("images", &idx(0x0d, &[1, 1, 1], &[0; 4]));
    assert_eq!(
        read_images(&path).unwrap_err().to_string(),
        format!(
            "{}: IDX type code 0x0d (32-bit float) is not supported, only 0x08 (unsigned \
             byte) is; convert the file to unsigned bytes",
            path.display()
        )
    );
}

#[test]
fn non_idx_file_is_rejected() {
    let dir = TempDir::new("png");
    let path = dir.write("images", b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        read_images(&path).unwrap_err().to_string(),
        format!(
            "{}: not an IDX file: it starts with 0x89504e47, but IDX files start with two \
             zero bytes; {POINT}",
            path.display()
        )
    );
}

#[test]
fn truncated_data_gives_expected_and_actual_bytes() {
    let dir = TempDir::new("truncated");
    let mut bytes = two_images();
    bytes.truncate(bytes.len() - 5);
    let path = dir.write("images.gz", &gzip(&bytes));
    let err = read_images(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected_bytes: 28,
                actual_bytes: 23,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: truncated IDX file: expected 28 bytes (uncompressed), found 23; \
             re-download or re-extract it",
            path.display()
        )
    );
}

#[test]
fn truncated_header_is_reported() {
    let dir = TempDir::new("header");
    for (bytes, expected, actual) in [(&[0_u8, 0][..], 16, 2), (&two_images()[..9], 16, 9)] {
        let err = read_images(&dir.write("images", bytes)).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated { expected_bytes, actual_bytes, .. }
                    if (expected_bytes, actual_bytes) == (expected, actual)
            ),
            "{err:?}"
        );
    }
}

#[test]
fn trailing_bytes_are_reported() {
    let dir = TempDir::new("trailing");
    let path = dir.write("labels", &idx(0x08, &[2], &[1, 2, 3]));
    assert_eq!(
        read_labels(&path).unwrap_err().to_string(),
        format!(
            "{}: 11 bytes (uncompressed) where the IDX header describes 10; the header or \
             the file is damaged, re-download it",
            path.display()
        )
    );
}

#[test]
fn dimensions_beyond_memory_are_reported() {
    let dir = TempDir::new("huge");
    let path = dir.write("images", &idx(0x08, &[u32::MAX; 3], &[]));
    assert_eq!(
        read_images(&path).unwrap_err().to_string(),
        format!(
            "{}: IDX dimensions 4294967295×4294967295×4294967295 describe more data than \
             fits in memory; the header is damaged, re-download the file",
            path.display()
        )
    );
}

#[test]
fn corrupt_and_cut_gzip_are_reported() {
    let dir = TempDir::new("corrupt");
    let good = gzip(&two_images());
    let mut flipped = good.clone();
    flipped[12] ^= 0xff;
    flipped[13] ^= 0xff;
    let mut bad_crc = good.clone();
    let crc_at = bad_crc.len() - 8;
    bad_crc[crc_at] ^= 0xff;
    let cut = &good[..good.len() - 6];
    for (name, bytes) in [("flipped", &flipped[..]), ("crc", &bad_crc), ("cut", cut)] {
        let path = dir.write(name, bytes);
        let err = read_images(&path).unwrap_err();
        assert!(matches!(err, DataError::Gzip { .. }), "{name}: {err:?}");
        assert!(
            err.source().is_some(),
            "{name}: the deflate error is the source"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: corrupt gzip data; re-download the file (or check it with `gzip -t`)",
                path.display()
            )
        );
    }
}

#[test]
fn unreadable_file_is_reported_with_its_cause() {
    let path = env::temp_dir().join(format!("cnntui-idx-{}-absent", process::id()));
    let err = read_labels(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cannot read the file; check that it exists and is readable",
            path.display()
        )
    );
    assert!(err.source().is_some());
}

/// Writes an MNIST-format directory: 3 training and 2 test images of 2×2, some files raw,
/// some gzip.
fn write_idx_dir(dir: &TempDir, train_labels: &[u8]) {
    let train_x = idx(0x08, &[3, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]);
    let n = train_labels.len() as u32;
    dir.write("train-images-idx3-ubyte.gz", &gzip(&train_x));
    dir.write("train-labels-idx1-ubyte", &idx(0x08, &[n], train_labels));
    dir.write("t10k-images-idx3-ubyte", &idx(0x08, &[2, 2, 2], &[9; 8]));
    dir.write(
        "t10k-labels-idx1-ubyte.gz",
        &gzip(&idx(0x08, &[2], &[3, 6])),
    );
}

#[test]
fn loads_a_directory_as_rescaled_nhwc_datasets() {
    let dir = TempDir::new("dir");
    write_idx_dir(&dir, &[1, 0, 4]);
    // Never read: the raw t10k-images-idx3-ubyte beside it is preferred.
    dir.write("t10k-images-idx3-ubyte.gz", b"not gzip, not IDX");
    let IdxSplits { train, test } = load_idx_dir(&dir.0, 0.5).unwrap();
    assert_eq!((train.shape, train.len(), train.classes), ([2, 2, 1], 3, 7));
    assert_eq!(train.image(2), &[4.0, 4.5, 5.0, 127.5]);
    assert_eq!(train.labels, [1, 0, 4]);
    assert_eq!((test.shape, test.len(), test.classes), ([2, 2, 1], 2, 7));
    assert_eq!(test.labels, [3, 6]);
}

#[test]
fn missing_files_are_listed_with_the_directory() {
    let dir = TempDir::new("missing");
    dir.write("train-images-idx3-ubyte", &two_images());
    dir.write("t10k-images-idx3-ubyte.gz", &gzip(&two_images()));
    assert_eq!(
        load_idx_dir(&dir.0, 1.0).unwrap_err().to_string(),
        format!(
            "{}: missing train-labels-idx1-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]; put the \
             four MNIST-format IDX files (raw or .gz) there, or {POINT}",
            dir.0.display()
        )
    );
}

#[test]
fn a_missing_directory_is_reported() {
    let path = env::temp_dir().join(format!("cnntui-idx-{}-no-dir", process::id()));
    assert_eq!(
        load_idx_dir(&path, 1.0).unwrap_err().to_string(),
        format!("{}: not a directory; {POINT}", path.display())
    );
}

#[test]
fn image_and_label_counts_must_agree() {
    let dir = TempDir::new("count");
    write_idx_dir(&dir, &[1, 0]);
    let err = load_idx_dir(&dir.0, 1.0).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{} holds 3 images but {} holds 2 labels; use an image file and the label file \
             that belongs to it",
            dir.0.join("train-images-idx3-ubyte.gz").display(),
            dir.0.join("train-labels-idx1-ubyte").display()
        )
    );
}

#[test]
fn test_images_must_match_training_images_in_size() {
    let dir = TempDir::new("shape");
    write_idx_dir(&dir, &[1, 0, 4]);
    dir.write("t10k-images-idx3-ubyte", &idx(0x08, &[2, 1, 2], &[9; 4]));
    assert_eq!(
        load_idx_dir(&dir.0, 1.0).unwrap_err().to_string(),
        format!(
            "{}: images are 1×2 but the training images in {} are 2×2; use a training and a \
             test set of the same dataset",
            dir.0.join("t10k-images-idx3-ubyte").display(),
            dir.0.join("train-images-idx3-ubyte.gz").display()
        )
    );
}

#[test]
fn fixture_truncated_images_gives_byte_counts() {
    let path = fixture("truncated-images-idx3-ubyte");
    assert_eq!(
        read_images(&path).unwrap_err().to_string(),
        format!(
            "{}: truncated IDX file: expected 800 bytes (uncompressed), found 216; \
             re-download or re-extract it",
            path.display()
        )
    );
}

#[test]
fn fixture_image_file_named_as_labels_has_wrong_magic() {
    let path = fixture("wrong-magic-labels-idx1-ubyte");
    assert_eq!(
        read_labels(&path).unwrap_err().to_string(),
        format!(
            "{}: not an IDX label file: magic 0x00000803 (images?), expected 0x00000801; \
             {POINT}",
            path.display()
        )
    );
}

#[test]
fn fixture_corrupt_gzip_is_reported() {
    let path = fixture("corrupt-labels-idx1-ubyte.gz");
    assert_eq!(
        read_labels(&path).unwrap_err().to_string(),
        format!(
            "{}: corrupt gzip data; re-download the file (or check it with `gzip -t`)",
            path.display()
        )
    );
}

#[test]
fn reads_the_mnist_training_labels() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist/train-labels-idx1-ubyte.gz");
    let labels = read_labels(&path).unwrap().labels;
    assert_eq!(labels.len(), 60_000);
    assert_eq!(labels[..5], [5, 0, 4, 1, 9]);
}
