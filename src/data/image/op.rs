//! [`ImageOp`]: one classic image operation with its parameters, as a model file's data section
//! lists preprocessing steps and as `cnntui image OP` runs them.
//!
//! In RON, each operation is written as its variant with named parameters; omitted ones take
//! the defaults documented on each field:
//!
//! ```ron
//! preprocess: [
//!     Grey,
//!     Resize(width: 150, height: 150, interpolation: "bilinear"),
//!     Gaussian(sigma: 1.0),
//!     TvDenoise(weight: 0.1),
//!     Sobel(direction: "magnitude"),
//!     Canny(sigma: 2.0, low_threshold: 20.0, high_threshold: 40.0),
//!     KMeans(k: 8, seed: 0),
//! ]
//! ```

use serde::{Deserialize, Deserializer};

use super::canny::{Canny, canny};
use super::gaussian::{Gaussian, gaussian};
use super::kmeans::{KMeans, kmeans};
use super::plane::Border;
use super::sobel::{SobelOutput, sobel};
use super::tv_denoise::{TvDenoise, tv_denoise};
use super::{Filter, Image, ImageError, Rounding, grey, resize};

/// An image operation and its parameters.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ImageOp {
    /// ITU-R 601 luma, as Pillow's `convert("L")`: one channel.
    Grey,
    /// Resampling to `width × height`, as Pillow's `resize` (8-bit arithmetic).
    Resize {
        width: usize,
        height: usize,
        /// nearest, bilinear (default), bicubic, lanczos or area.
        #[serde(default = "bilinear", deserialize_with = "by_name")]
        interpolation: Filter,
    },
    /// Gaussian blur, as scikit-image's `filters.gaussian` per channel.
    Gaussian {
        sigma: f32,
        /// Odd; default `2⌊4σ + 0.5⌋ + 1`.
        #[serde(default)]
        kernel_size: Option<usize>,
        /// nearest (default), reflect, mirror or constant.
        #[serde(default, deserialize_with = "by_name")]
        border: Border,
    },
    /// Total-variation denoising, as scikit-image's `denoise_tv_chambolle` per channel.
    TvDenoise {
        /// On the 0–1 scale; greater is smoother.
        weight: f64,
        #[serde(default = "tv_eps")]
        eps: f64,
        #[serde(default = "tv_max_num_iter")]
        max_num_iter: usize,
    },
    /// The lecture's Sobel kernels: one channel, unscaled.
    Sobel {
        /// vertical, horizontal or magnitude (default).
        #[serde(default, deserialize_with = "by_name")]
        direction: SobelOutput,
    },
    /// Canny's edge detector, as scikit-image's `feature.canny`: 255 on edges, else 0.
    Canny {
        #[serde(default = "canny_sigma")]
        sigma: f32,
        /// 0–255 scale; default 25.5.
        #[serde(default = "canny_low")]
        low_threshold: f64,
        /// 0–255 scale; default 51.
        #[serde(default = "canny_high")]
        high_threshold: f64,
    },
    /// Colour quantisation by k-means (k-means++ start).
    KMeans {
        k: usize,
        #[serde(default)]
        seed: u64,
        #[serde(default = "kmeans_iterations")]
        iterations: usize,
    },
}

fn bilinear() -> Filter {
    Filter::Bilinear
}
fn tv_eps() -> f64 {
    TvDenoise::default().eps
}
fn tv_max_num_iter() -> usize {
    TvDenoise::default().max_num_iter
}
fn canny_sigma() -> f32 {
    Canny::default().sigma
}
fn canny_low() -> f64 {
    Canny::default().low_threshold
}
fn canny_high() -> f64 {
    Canny::default().high_threshold
}
/// Default Lloyd iterations of `kmeans`.
pub const KMEANS_ITERATIONS: usize = 50;
fn kmeans_iterations() -> usize {
    KMEANS_ITERATIONS
}

/// A name parsed by the type's `FromStr`, whose error lists the valid names.
fn by_name<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = ImageError>,
{
    let name = String::deserialize(d)?;
    name.parse().map_err(serde::de::Error::custom)
}

impl ImageOp {
    /// The names of the operations, as `cnntui image` spells them.
    pub const NAMES: &'static str =
        "grey, resize, gaussian, tv-denoise, sobel, canny, kmeans, affine";

    /// The operation's name, as `cnntui image` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            ImageOp::Grey => "grey",
            ImageOp::Resize { .. } => "resize",
            ImageOp::Gaussian { .. } => "gaussian",
            ImageOp::TvDenoise { .. } => "tv-denoise",
            ImageOp::Sobel { .. } => "sobel",
            ImageOp::Canny { .. } => "canny",
            ImageOp::KMeans { .. } => "kmeans",
        }
    }

    /// Checks the parameters without touching an image, so a model file's steps can be
    /// refused before any data is read.
    ///
    /// # Errors
    /// [`ImageError::Parameter`] or [`ImageError::EmptySize`] naming the parameter and the
    /// valid range.
    pub fn validate(&self) -> Result<(), ImageError> {
        match *self {
            ImageOp::Grey | ImageOp::Sobel { .. } => Ok(()),
            ImageOp::Resize { width, height, .. } => {
                if width == 0 || height == 0 {
                    Err(ImageError::EmptySize { width, height })
                } else {
                    Ok(())
                }
            }
            ImageOp::Gaussian {
                sigma,
                kernel_size,
                border,
            } => Gaussian {
                sigma,
                kernel_size,
                border,
            }
            .validate(),
            ImageOp::TvDenoise {
                weight,
                eps,
                max_num_iter,
            } => TvDenoise {
                weight,
                eps,
                max_num_iter,
            }
            .validate(),
            ImageOp::Canny {
                sigma,
                low_threshold,
                high_threshold,
            } => Canny {
                sigma,
                low_threshold,
                high_threshold,
            }
            .validate(),
            ImageOp::KMeans {
                k,
                seed,
                iterations,
            } => KMeans {
                k,
                seed,
                iterations,
            }
            .validate(),
        }
    }

    /// Applies the operation to `image` (0–255 values, any channel count the operation takes).
    ///
    /// # Errors
    /// As [`ImageOp::validate`].
    pub fn apply(&self, image: &Image) -> Result<Image, ImageError> {
        self.validate()?;
        match *self {
            ImageOp::Grey => Ok(grey(image)),
            ImageOp::Resize {
                width,
                height,
                interpolation,
            } => resize(image, width, height, interpolation, Rounding::Bytes),
            ImageOp::Gaussian {
                sigma,
                kernel_size,
                border,
            } => gaussian(
                image,
                &Gaussian {
                    sigma,
                    kernel_size,
                    border,
                },
            ),
            ImageOp::TvDenoise {
                weight,
                eps,
                max_num_iter,
            } => tv_denoise(
                image,
                &TvDenoise {
                    weight,
                    eps,
                    max_num_iter,
                },
            ),
            ImageOp::Sobel { direction } => Ok(sobel(image, direction)),
            ImageOp::Canny {
                sigma,
                low_threshold,
                high_threshold,
            } => canny(
                image,
                &Canny {
                    sigma,
                    low_threshold,
                    high_threshold,
                },
            ),
            ImageOp::KMeans {
                k,
                seed,
                iterations,
            } => Ok(kmeans(
                image,
                &KMeans {
                    k,
                    seed,
                    iterations,
                },
            )?
            .image),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<ImageOp>, ron::error::SpannedError> {
        ron::from_str(s)
    }

    #[test]
    fn a_list_of_steps_parses_from_ron_with_defaults() {
        let ops = parse(
            r#"[Grey, Gaussian(sigma: 1.5), TvDenoise(weight: 0.1),
                Resize(width: 32, height: 16, interpolation: "area"),
                Sobel(), Canny(sigma: 2.0), KMeans(k: 4)]"#,
        )
        .unwrap();
        assert_eq!(ops[0], ImageOp::Grey);
        assert_eq!(
            ops[1],
            ImageOp::Gaussian {
                sigma: 1.5,
                kernel_size: None,
                border: Border::Nearest
            }
        );
        assert_eq!(
            ops[2],
            ImageOp::TvDenoise {
                weight: 0.1,
                eps: 2e-4,
                max_num_iter: 200
            }
        );
        assert_eq!(
            ops[3],
            ImageOp::Resize {
                width: 32,
                height: 16,
                interpolation: Filter::Area
            }
        );
        assert_eq!(
            ops[4],
            ImageOp::Sobel {
                direction: SobelOutput::Magnitude
            }
        );
        assert_eq!(
            ops[5],
            ImageOp::Canny {
                sigma: 2.0,
                low_threshold: 25.5,
                high_threshold: 51.0
            }
        );
        assert_eq!(
            ops[6],
            ImageOp::KMeans {
                k: 4,
                seed: 0,
                iterations: KMEANS_ITERATIONS
            }
        );
    }

    #[test]
    fn an_unknown_interpolation_in_ron_lists_the_valid_ones() {
        let err = parse(r#"[Resize(width: 3, height: 3, interpolation: "cubic")]"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("nearest, bilinear, bicubic, lanczos, area"),
            "{err}"
        );
        let err = parse("[Gaussian(sigma: 1.0, size: 3)]").unwrap_err();
        assert!(err.to_string().contains("size"), "{err}");
    }

    #[test]
    fn apply_checks_parameters_and_runs_the_operation() {
        let img = Image::filled(8, 6, 3, 50.0);
        let out = ImageOp::Resize {
            width: 4,
            height: 3,
            interpolation: Filter::Bilinear,
        }
        .apply(&img)
        .unwrap();
        assert_eq!((out.width, out.height, out.channels), (4, 3, 3));
        assert_eq!(ImageOp::Grey.apply(&img).unwrap().channels, 1);
        let err = ImageOp::KMeans {
            k: 0,
            seed: 0,
            iterations: 5,
        }
        .apply(&img)
        .unwrap_err();
        assert!(err.to_string().contains("k = 0"));
        for op in parse(
            "[Grey, Gaussian(sigma: 1.0), TvDenoise(weight: 0.1), Sobel(), Canny(), KMeans(k: 2)]",
        )
        .unwrap()
        {
            let out = op.apply(&img).unwrap();
            assert_eq!((out.width, out.height), (8, 6), "{}", op.name());
        }
    }
}
