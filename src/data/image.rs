//! Images in memory and the classic image operations on them.
//!
//! Owns [`Image`] — an owned, row-major, channels-last `f32` picture whose values are on the
//! 0–255 scale of the 8-bit file it came from, as a Keras image array is — reading and writing
//! it through the `image` crate (JPEG, PNG, BMP, GIF, WebP), and the operations the image
//! pipeline and `cnntui image` share, each in its own file: resampling ([`resize`]), grey
//! conversion ([`grey`]), Gaussian blur ([`gaussian`]), total-variation denoising
//! ([`tv_denoise`]), Sobel filters ([`sobel`]), Canny edges ([`canny`]) and k-means colour
//! segmentation ([`kmeans`]); [`ImageOp`] names any of them with its parameters, for model
//! files and the command line. [`Plane`] is the filters' one-channel `f64` working form.
//!
//! Must not depend on `ir`, `runtime` or `tui`: an image operation knows nothing of the model
//! that consumes its output.

mod canny;
mod error;
mod gaussian;
mod grey;
mod kmeans;
mod op;
mod plane;
mod resize;
mod sobel;
mod tv_denoise;

use std::path::Path;

pub use canny::{Canny, canny};
pub use error::ImageError;
pub use gaussian::{Gaussian, MAX_SIGMA, gaussian};
pub use grey::grey;
pub use kmeans::{Cluster, KMeans, Segmentation, TOLERANCE as KMEANS_TOLERANCE, kmeans};
pub use op::{ImageOp, KMEANS_ITERATIONS};
pub use plane::{Border, Plane};
pub use resize::{Filter, Rounding, resize};
pub use sobel::{SobelOutput, sobel};
pub use tv_denoise::{TvDenoise, tv_denoise};

/// A picture: `height × width × channels` values, row-major, channels last (HWC).
///
/// Values are on the 0–255 scale of an 8-bit file (a Keras image array's scale); operations
/// may leave them fractional or outside that range, and [`Image::save`] rounds and clamps.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// 1 (grey), 3 (RGB) or 4 (RGBA).
    pub channels: usize,
    /// `height * width * channels` values.
    pub data: Vec<f32>,
}

impl Image {
    /// An image of the given size filled with `value`.
    pub fn filled(width: usize, height: usize, channels: usize, value: f32) -> Image {
        Image {
            width,
            height,
            channels,
            data: vec![value; width * height * channels],
        }
    }

    /// Reads and decodes an image file. Grey files (with or without alpha) give one channel,
    /// everything else three (RGB; alpha is dropped, as Keras's `load_img` does for `rgb`).
    ///
    /// # Errors
    /// [`ImageError::Read`] if the file cannot be read, [`ImageError::Decode`] if it is not an
    /// image the `image` crate can decode (named with the decoder's reason).
    pub fn open(path: &Path) -> Result<Image, ImageError> {
        let bytes = std::fs::read(path).map_err(|source| ImageError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Image::decode(&bytes).map_err(|reason| ImageError::Decode {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Decodes an encoded image held in memory; the error is the decoder's reason.
    pub fn decode(bytes: &[u8]) -> Result<Image, String> {
        let decoded = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
        Ok(Image::from_dynamic(&decoded))
    }

    /// Converts a decoded `image` crate picture: grey (±alpha) to one channel, else RGB.
    pub fn from_dynamic(decoded: &image::DynamicImage) -> Image {
        let (width, height) = (decoded.width() as usize, decoded.height() as usize);
        if decoded.color().has_color() {
            let rgb = decoded.to_rgb8();
            Image {
                width,
                height,
                channels: 3,
                data: rgb.into_raw().into_iter().map(f32::from).collect(),
            }
        } else {
            let grey = decoded.to_luma8();
            Image {
                width,
                height,
                channels: 1,
                data: grey.into_raw().into_iter().map(f32::from).collect(),
            }
        }
    }

    /// The image rounded to the nearest integer and clamped to 0–255, as 8-bit samples.
    pub fn to_u8(&self) -> Vec<u8> {
        self.data
            .iter()
            .map(|&v| v.round().clamp(0.0, 255.0) as u8)
            .collect()
    }

    /// Writes the image (rounded and clamped to 8 bits); the format follows the extension.
    /// The file is written to a temporary name beside it and renamed, so a failed write never
    /// leaves half a picture under the requested name.
    ///
    /// # Errors
    /// [`ImageError::Write`] naming the file and the reason; [`ImageError::Channels`] for a
    /// channel count no file format holds.
    pub fn save(&self, path: &Path) -> Result<(), ImageError> {
        let (w, h) = (self.width as u32, self.height as u32);
        let bytes = self.to_u8();
        let color = match self.channels {
            1 => image::ExtendedColorType::L8,
            3 => image::ExtendedColorType::Rgb8,
            4 => image::ExtendedColorType::Rgba8,
            channels => return Err(ImageError::Channels { channels }),
        };
        let format = image::ImageFormat::from_path(path).map_err(|e| ImageError::Write {
            path: path.to_path_buf(),
            reason: format!("{e}; use an extension such as .png or .jpg"),
        })?;
        let tmp = path.with_extension(format!(
            "{}.tmp",
            path.extension().and_then(|e| e.to_str()).unwrap_or("img")
        ));
        let write = || -> Result<(), String> {
            image::save_buffer_with_format(&tmp, &bytes, w, h, color, format)
                .map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, path).map_err(|e| e.to_string())
        };
        write().map_err(|reason| {
            let _ = std::fs::remove_file(&tmp);
            ImageError::Write {
                path: path.to_path_buf(),
                reason,
            }
        })
    }

    /// The value at row `y`, column `x`, channel `c`.
    pub fn at(&self, y: usize, x: usize, c: usize) -> f32 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// A sub-rectangle: columns `left..right`, rows `top..bottom` (PIL's `crop` box).
    ///
    /// # Errors
    /// [`ImageError::Crop`] if the box is empty or reaches outside the image.
    pub fn crop(
        &self,
        left: usize,
        top: usize,
        right: usize,
        bottom: usize,
    ) -> Result<Image, ImageError> {
        if left >= right || top >= bottom || right > self.width || bottom > self.height {
            return Err(ImageError::Crop {
                left,
                top,
                right,
                bottom,
                width: self.width,
                height: self.height,
            });
        }
        let c = self.channels;
        let mut data = Vec::with_capacity((right - left) * (bottom - top) * c);
        for y in top..bottom {
            let row = (y * self.width + left) * c;
            data.extend_from_slice(&self.data[row..row + (right - left) * c]);
        }
        Ok(Image {
            width: right - left,
            height: bottom - top,
            channels: c,
            data,
        })
    }
}
