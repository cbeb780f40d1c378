//! [`ImageError`]: everything that can go wrong reading, writing or transforming an image.

use std::path::PathBuf;

/// An image could not be read, decoded, written or transformed. Each message names the file
/// or the parameter and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: cannot read the file ({source}); check that it exists and is readable", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a readable image ({reason}); use a JPEG, PNG, BMP, GIF or WebP file", path.display())]
    Decode { path: PathBuf, reason: String },
    #[error("{}: cannot write the image ({reason})", path.display())]
    Write { path: PathBuf, reason: String },
    #[error(
        "an image with {channels} channels cannot be written; use 1 (grey), 3 (RGB) or 4 (RGBA)"
    )]
    Channels { channels: usize },
    #[error(
        "crop box (left {left}, top {top}, right {right}, bottom {bottom}) does not lie inside \
         the {width}×{height} image; give left < right ≤ width and top < bottom ≤ height"
    )]
    Crop {
        left: usize,
        top: usize,
        right: usize,
        bottom: usize,
        width: usize,
        height: usize,
    },
    #[error("cannot resize to {width}×{height}; both sides must be at least 1 pixel")]
    EmptySize { width: usize, height: usize },
    #[error("unknown {what} `{given}`; use one of: {valid}")]
    UnknownName {
        what: &'static str,
        given: String,
        valid: &'static str,
    },
    #[error("{op}: {parameter} = {value} is out of range; {valid}")]
    Parameter {
        op: &'static str,
        parameter: &'static str,
        value: String,
        valid: String,
    },
}

impl ImageError {
    /// An out-of-range parameter of operation `op`; `valid` says what is accepted.
    pub fn parameter(
        op: &'static str,
        parameter: &'static str,
        value: impl std::fmt::Display,
        valid: impl Into<String>,
    ) -> ImageError {
        ImageError::Parameter {
            op,
            parameter,
            value: value.to_string(),
            valid: valid.into(),
        }
    }
}
