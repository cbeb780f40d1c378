//! Resampling as Pillow's `Image.resize` does it, for every filter cnntui names.
//!
//! One mechanism for all filters but `nearest`: a separable convolution whose kernel is the
//! filter stretched by the scale factor when downsampling — which is what makes Pillow's
//! bilinear downsampling antialiased, and what torchvision's `Resize` and Keras's `load_img`
//! inherit. Each output sample `x` is centred at `(x + 0.5) · in / out` in input coordinates;
//! its taps are the input samples within the (stretched) support, weighted by the filter and
//! normalised to sum to one. The horizontal pass runs first, then the vertical pass, each only
//! when its size changes.
//!
//! With [`Rounding::Bytes`] the arithmetic is Pillow's on 8-bit images exactly: coefficients
//! in 22-bit fixed point, each pass rounded and clamped to 0–255 — so a resize of a decoded
//! file gives Pillow's bytes. [`Rounding::None`] keeps `f32` values (Pillow's mode `F`).
//! `nearest` samples `floor((x + 0.5) · in / out)`, as Pillow's affine nearest transform.

use std::f64::consts::PI;
use std::str::FromStr;

use super::{Image, ImageError};

/// A resampling filter, named as in Keras (`load_img(interpolation=…)`) and Pillow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    Nearest,
    Bilinear,
    Bicubic,
    Lanczos,
    /// Averaging over the covered input area: Pillow's `BOX` filter.
    Area,
}

impl Filter {
    /// The names accepted on the command line and in model files.
    pub const NAMES: &'static str = "nearest, bilinear, bicubic, lanczos, area";

    /// Half the filter's width in input samples at scale 1.
    fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Area => 0.5,
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Nearest | Filter::Area => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => (1.0 - x.abs()).max(0.0),
            Filter::Bicubic => {
                // Keys' cubic with a = −0.5, as Pillow.
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        (x * PI).sin() / (x * PI)
    }
}

impl FromStr for Filter {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Filter, ImageError> {
        Ok(match s {
            "nearest" => Filter::Nearest,
            "bilinear" => Filter::Bilinear,
            "bicubic" => Filter::Bicubic,
            "lanczos" => Filter::Lanczos,
            "area" | "box" => Filter::Area,
            _ => {
                return Err(ImageError::UnknownName {
                    what: "interpolation",
                    given: s.to_string(),
                    valid: Filter::NAMES,
                });
            }
        })
    }
}

/// How intermediate and final values are rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Keep `f32` values (Pillow's mode `F`).
    None,
    /// Pillow's 8-bit arithmetic: fixed-point coefficients, each pass rounded to 0–255.
    Bytes,
}

/// The taps of one output sample: the first input index and the normalised weights.
struct Taps {
    start: usize,
    weights: Vec<f64>,
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn taps(in_size: usize, out_size: usize, filter: Filter) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..out_size)
        .map(|x| {
            let centre = (x as f64 + 0.5) * scale;
            // Pillow truncates towards zero after adding 0.5; negatives clamp to 0 anyway.
            let start = ((centre - support + 0.5) as i64).max(0) as usize;
            let end = ((centre + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut weights: Vec<f64> = (start..end)
                .map(|i| filter.weight((i as f64 - centre + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            Taps { start, weights }
        })
        .collect()
}

/// Fixed-point weights as Pillow's `normalize_coeffs_8bpc`.
fn fixed(weights: &[f64]) -> Vec<i64> {
    let one = f64::from(1u32 << PRECISION_BITS);
    weights
        .iter()
        .map(|&w| {
            if w < 0.0 {
                (-0.5 + w * one) as i64
            } else {
                (0.5 + w * one) as i64
            }
        })
        .collect()
}

/// Resamples along one axis. `len` samples of `stride` apart form a line; `lines` lines start
/// at `line_start(i)` in the input and are written in order to the output.
fn pass(
    src: &Image,
    out_w: usize,
    out_h: usize,
    horizontal: bool,
    filter: Filter,
    rounding: Rounding,
) -> Image {
    let c = src.channels;
    let (in_len, out_len) = if horizontal {
        (src.width, out_w)
    } else {
        (src.height, out_h)
    };
    let taps = taps(in_len, out_len, filter);
    let fixed: Vec<Vec<i64>> = match rounding {
        Rounding::Bytes => taps.iter().map(|t| fixed(&t.weights)).collect(),
        Rounding::None => Vec::new(),
    };
    let mut out = Image::filled(out_w, out_h, c, 0.0);
    for y in 0..out_h {
        for x in 0..out_w {
            let (o, fixed_o) = if horizontal { (x, y) } else { (y, x) };
            let t = &taps[o];
            for ch in 0..c {
                let sample = |i: usize| {
                    let (sy, sx) = if horizontal {
                        (fixed_o, t.start + i)
                    } else {
                        (t.start + i, fixed_o)
                    };
                    src.data[(sy * src.width + sx) * c + ch]
                };
                let value = match rounding {
                    Rounding::None => t
                        .weights
                        .iter()
                        .enumerate()
                        .map(|(i, &w)| f64::from(sample(i)) * w)
                        .sum::<f64>() as f32,
                    Rounding::Bytes => {
                        let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                        // Samples are already whole bytes: `resize` rounds the source and
                        // every pass writes integers in 0–255.
                        for (i, &w) in fixed[o].iter().enumerate() {
                            acc += sample(i) as i64 * w;
                        }
                        (acc >> PRECISION_BITS).clamp(0, 255) as f32
                    }
                };
                out.data[(y * out_w + x) * c + ch] = value;
            }
        }
    }
    out
}

fn nearest(src: &Image, out_w: usize, out_h: usize) -> Image {
    let c = src.channels;
    // Pillow's `ImagingScaleAffine`: the coordinate is accumulated step by step, so where
    // `(x + 0.5) · scale` is an exact integer the sum can fall just short of it; follow it.
    let indices = |in_len: usize, out_len: usize| {
        let step = in_len as f64 / out_len as f64;
        let mut at = step * 0.5;
        (0..out_len)
            .map(|_| {
                let i = (at as usize).min(in_len - 1);
                at += step;
                i
            })
            .collect::<Vec<_>>()
    };
    let (rows, cols) = (indices(src.height, out_h), indices(src.width, out_w));
    let mut out = Image::filled(out_w, out_h, c, 0.0);
    for (y, &sy) in rows.iter().enumerate() {
        for (x, &sx) in cols.iter().enumerate() {
            let from = (sy * src.width + sx) * c;
            out.data[(y * out_w + x) * c..][..c].copy_from_slice(&src.data[from..from + c]);
        }
    }
    out
}

/// Resizes `src` to `width × height` with `filter`, as Pillow's `Image.resize`.
///
/// # Errors
/// [`ImageError::EmptySize`] if either side of the source or the target is zero.
pub fn resize(
    src: &Image,
    width: usize,
    height: usize,
    filter: Filter,
    rounding: Rounding,
) -> Result<Image, ImageError> {
    if width == 0 || height == 0 || src.width == 0 || src.height == 0 {
        return Err(ImageError::EmptySize { width, height });
    }
    if filter == Filter::Nearest {
        return Ok(nearest(src, width, height));
    }
    let mut out = src.clone();
    if rounding == Rounding::Bytes {
        out.data
            .iter_mut()
            .for_each(|v| *v = v.round().clamp(0.0, 255.0));
    }
    if width != src.width {
        out = pass(&out, width, out.height, true, filter, rounding);
    }
    if height != src.height {
        out = pass(&out, width, height, false, filter, rounding);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(width: usize, height: usize) -> Image {
        let data = (0..width * height).map(|i| (i % 251) as f32).collect();
        Image {
            width,
            height,
            channels: 1,
            data,
        }
    }

    #[test]
    fn same_size_is_the_identity_for_every_filter() {
        let img = ramp(7, 5);
        for f in [
            Filter::Bilinear,
            Filter::Bicubic,
            Filter::Lanczos,
            Filter::Area,
            Filter::Nearest,
        ] {
            assert_eq!(resize(&img, 7, 5, f, Rounding::None).unwrap(), img);
        }
    }

    #[test]
    fn area_downsampling_by_two_averages_pairs() {
        let img = Image {
            width: 4,
            height: 1,
            channels: 1,
            data: vec![0.0, 10.0, 20.0, 40.0],
        };
        let out = resize(&img, 2, 1, Filter::Area, Rounding::None).unwrap();
        assert_eq!(out.data, vec![5.0, 30.0]);
    }

    #[test]
    fn bilinear_downsampling_is_antialiased() {
        // A one-pixel checkerboard shrunk 4× must come out nearly flat grey (a point-sampling
        // bilinear would keep the extremes).
        let data = (0..64 * 64)
            .map(|i| {
                if (i / 64 + i % 64) % 2 == 0 {
                    0.0
                } else {
                    255.0
                }
            })
            .collect();
        let img = Image {
            width: 64,
            height: 64,
            channels: 1,
            data,
        };
        let out = resize(&img, 16, 16, Filter::Bilinear, Rounding::None).unwrap();
        for v in out.data {
            assert!((v - 127.5).abs() < 20.0, "{v}");
        }
    }

    #[test]
    fn constant_images_stay_constant_under_every_filter() {
        let img = Image::filled(13, 9, 3, 77.0);
        for f in [
            Filter::Bilinear,
            Filter::Bicubic,
            Filter::Lanczos,
            Filter::Area,
            Filter::Nearest,
        ] {
            for (w, h) in [(5, 4), (31, 20)] {
                for r in [Rounding::None, Rounding::Bytes] {
                    let out = resize(&img, w, h, f, r).unwrap();
                    assert!(
                        out.data.iter().all(|&v| (v - 77.0).abs() < 1e-3),
                        "{f:?} {r:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn nearest_picks_the_covering_sample() {
        let img = ramp(6, 1);
        let out = resize(&img, 3, 1, Filter::Nearest, Rounding::None).unwrap();
        assert_eq!(out.data, vec![1.0, 3.0, 5.0]);
        let up = resize(&img, 12, 1, Filter::Nearest, Rounding::None).unwrap();
        assert_eq!(up.data[..4], [0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn unknown_interpolation_lists_the_valid_ones() {
        let err = "cubic".parse::<Filter>().unwrap_err().to_string();
        assert!(
            err.contains("nearest, bilinear, bicubic, lanczos, area"),
            "{err}"
        );
    }
}
