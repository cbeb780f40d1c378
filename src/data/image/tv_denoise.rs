//! Total-variation denoising: Chambolle's projection algorithm for the isotropic 2-D ROF
//! problem, exactly as scikit-image 0.26.0's `restoration.denoise_tv_chambolle`.
//!
//! It minimises `½‖u − f‖² + weight · Σ |∇u|` (the lecture's fidelity + λ·variation, with
//! `weight` = 1/λ) by a fixed-point iteration on the dual field `p = (p_row, p_col)`:
//!
//! ```text
//! d   = −div p                  (0 on the first pass)
//! u   = f + d
//! g   = forward differences of u (0 on the last row / column)
//! p   = (p − τ g) / (1 + τ/weight · |g|),   τ = 1/4
//! E   = (Σ d² + weight · Σ |g|) / N
//! ```
//!
//! It stops at the pass where `|E(n−1) − E(n)| < eps · E(0)` and returns the `u` computed at
//! the start of that pass, or after `max_num_iter` passes. Each channel is denoised on its own
//! (scikit-image's `channel_axis=-1`). The arithmetic per pixel is `f32`, as scikit-image's on
//! a float32 image, with the energy summed in `f64`; `weight` and `eps` are on the 0–1 scale
//! of `img_as_float` (the image is divided by 255 for the solve and multiplied back).

use super::{Image, ImageError};

/// The parameters, with scikit-image's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TvDenoise {
    /// Greater is smoother (and less faithful): `1/λ`; > 0, on the 0–1 intensity scale.
    pub weight: f64,
    /// Relative change of the energy that stops the iteration; > 0. Default 2e-4.
    pub eps: f64,
    /// At most this many passes; ≥ 1. Default 200.
    pub max_num_iter: usize,
}

impl Default for TvDenoise {
    fn default() -> TvDenoise {
        TvDenoise {
            weight: 0.1,
            eps: 2e-4,
            max_num_iter: 200,
        }
    }
}

impl TvDenoise {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ImageError::Parameter`] for a weight or eps that is not a positive number, or zero
    /// iterations.
    pub fn validate(&self) -> Result<(), ImageError> {
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(ImageError::parameter(
                "tv-denoise",
                "weight",
                self.weight,
                "give a positive number on the 0–1 intensity scale (e.g. 0.1; greater is smoother)",
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(ImageError::parameter(
                "tv-denoise",
                "eps",
                self.eps,
                "give a positive relative tolerance (default 2e-4)",
            ));
        }
        if self.max_num_iter == 0 {
            return Err(ImageError::parameter(
                "tv-denoise",
                "max iterations",
                0,
                "give at least 1 (default 200)",
            ));
        }
        Ok(())
    }

    /// Denoises one `h × w` plane (row-major, any scale the weight is meant for); returns the
    /// result and the number of passes made.
    ///
    /// # Shapes
    /// `f`: `[h, w]`, `h · w ≥ 1`.
    pub fn denoise_plane(&self, f: &[f32], h: usize, w: usize) -> (Vec<f32>, usize) {
        let n = h * w;
        assert_eq!(f.len(), n, "tv-denoise plane must be h × w");
        let tau = 0.25f32;
        let scale = (0.25 / self.weight) as f32;
        let (mut p_row, mut p_col) = (vec![0.0f32; n], vec![0.0f32; n]);
        let (mut g_row, mut g_col) = (vec![0.0f32; n], vec![0.0f32; n]);
        let mut d = vec![0.0f32; n];
        let mut out = f.to_vec();
        let (mut e_init, mut e_prev) = (0.0f64, 0.0f64);
        let mut passes = 0;
        for i in 0..self.max_num_iter {
            passes = i + 1;
            if i > 0 {
                // d = −(p_row + p_col) + p_row shifted down + p_col shifted right: −div p.
                for k in 0..n {
                    d[k] = -(p_row[k] + p_col[k]);
                }
                for k in w..n {
                    d[k] += p_row[k - w];
                }
                for y in 0..h {
                    for x in 1..w {
                        d[y * w + x] += p_col[y * w + x - 1];
                    }
                }
                for k in 0..n {
                    out[k] = f[k] + d[k];
                }
            }
            let mut energy: f64 = d.iter().map(|&v| f64::from(v * v)).sum();
            // Forward differences; the last row of g_row and last column of g_col stay 0.
            for y in 0..h {
                for x in 0..w {
                    let k = y * w + x;
                    if y + 1 < h {
                        g_row[k] = out[k + w] - out[k];
                    }
                    if x + 1 < w {
                        g_col[k] = out[k + 1] - out[k];
                    }
                }
            }
            let mut tv = 0.0f64;
            for k in 0..n {
                let norm = (g_row[k] * g_row[k] + g_col[k] * g_col[k]).sqrt();
                tv += f64::from(norm);
                let denom = norm * scale + 1.0;
                p_row[k] = (p_row[k] - tau * g_row[k]) / denom;
                p_col[k] = (p_col[k] - tau * g_col[k]) / denom;
            }
            energy = (energy + self.weight * tv) / n as f64;
            if i == 0 {
                e_init = energy;
                e_prev = energy;
            } else if (e_prev - energy).abs() < self.eps * e_init {
                break;
            } else {
                e_prev = energy;
            }
        }
        (out, passes)
    }
}

/// Denoises every channel of `image` (0–255 values) with `tv`.
///
/// # Errors
/// As [`TvDenoise::validate`].
pub fn tv_denoise(image: &Image, tv: &TvDenoise) -> Result<Image, ImageError> {
    tv.validate()?;
    let c = image.channels;
    let (h, w) = (image.height, image.width);
    let mut data = vec![0.0f32; image.data.len()];
    for ch in 0..c {
        let plane: Vec<f32> = image
            .data
            .iter()
            .skip(ch)
            .step_by(c)
            .map(|&v| v / 255.0)
            .collect();
        if plane.is_empty() {
            continue;
        }
        let (out, _) = tv.denoise_plane(&plane, h, w);
        for (k, v) in out.into_iter().enumerate() {
            data[k * c + ch] = v * 255.0;
        }
    }
    Ok(Image { data, ..*image })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_image_is_a_fixed_point() {
        let img = Image::filled(6, 5, 3, 80.0);
        assert_eq!(tv_denoise(&img, &TvDenoise::default()).unwrap(), img);
    }

    #[test]
    fn it_reduces_total_variation_and_keeps_the_mean() {
        // A step edge with alternating ±20 noise.
        let (h, w) = (16, 16);
        let f: Vec<f32> = (0..h * w)
            .map(|k| {
                let base = if k % w < w / 2 { 0.2 } else { 0.8 };
                base + if (k * 7919) % 3 == 0 { 0.08 } else { -0.04 }
            })
            .collect();
        let tv = |v: &[f32]| -> f32 {
            let mut s = 0.0;
            for y in 0..h {
                for x in 0..w {
                    if x + 1 < w {
                        s += (v[y * w + x + 1] - v[y * w + x]).abs();
                    }
                    if y + 1 < h {
                        s += (v[(y + 1) * w + x] - v[y * w + x]).abs();
                    }
                }
            }
            s
        };
        let (u, passes) = TvDenoise::default().denoise_plane(&f, h, w);
        assert!(passes > 1 && passes <= 200);
        assert!(tv(&u) < 0.5 * tv(&f), "{} vs {}", tv(&u), tv(&f));
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        // The divergence sums to zero: the mean is kept.
        assert!((mean(&u) - mean(&f)).abs() < 1e-5);
    }

    #[test]
    fn max_num_iter_bounds_the_passes() {
        let f: Vec<f32> = (0..64).map(|k| (k % 5) as f32 / 5.0).collect();
        let tv = TvDenoise {
            eps: 1e-12,
            max_num_iter: 3,
            ..TvDenoise::default()
        };
        assert_eq!(tv.denoise_plane(&f, 8, 8).1, 3);
    }

    #[test]
    fn bad_parameters_say_the_valid_range() {
        for (tv, needle) in [
            (
                TvDenoise {
                    weight: 0.0,
                    ..TvDenoise::default()
                },
                "weight = 0",
            ),
            (
                TvDenoise {
                    eps: -1.0,
                    ..TvDenoise::default()
                },
                "eps = -1",
            ),
            (
                TvDenoise {
                    max_num_iter: 0,
                    ..TvDenoise::default()
                },
                "max iterations = 0",
            ),
        ] {
            let err = tv.validate().unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("give"), "{err}");
        }
    }
}
