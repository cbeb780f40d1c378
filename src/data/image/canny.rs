//! Canny's edge detector, as scikit-image 0.26.0's `feature.canny` (no mask, its default
//! `mode="constant"`, absolute thresholds).
//!
//! 1. Gaussian smoothing of the grey image on the 0–1 scale ([`Gaussian`], zero border),
//!    divided by the same smoothing of an all-ones image, so the dark border does not bleed in.
//! 2. Sobel gradients by cnntui's convolution kernel ([`sobel::gradients`], reflect border);
//!    magnitude `√(gy² + gx²)`.
//! 3. Non-maximum suppression along the gradient direction, comparing with the two neighbours
//!    interpolated linearly between the 8-neighbourhood's pixels; pixels below the low
//!    threshold and the one-pixel border are dropped.
//! 4. Hysteresis: a connected (8-neighbour) group of surviving pixels is kept if any of them
//!    reaches the high threshold.
//!
//! Thresholds are on the 0–255 scale of the image, as scikit-image's for an 8-bit image (it
//! divides them by 255); the defaults are its 10% and 20% of the range, 25.5 and 51. The
//! arithmetic is `f64`, as scikit-image's on an 8-bit image. A colour image is converted to
//! grey first. The output is one channel, 255 on edges and 0 elsewhere.

use super::gaussian::Gaussian;
use super::plane::{Border, Plane};
use super::sobel;
use super::{Image, ImageError, grey};

/// The parameters, with scikit-image's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Canny {
    /// σ of the Gaussian smoothing, in pixels; ≥ 0. Default 1.
    pub sigma: f32,
    /// Gradient magnitude (0–255 scale) below which nothing is an edge. Default 25.5.
    pub low_threshold: f64,
    /// Gradient magnitude that starts an edge; ≥ the low threshold. Default 51.
    pub high_threshold: f64,
}

impl Default for Canny {
    fn default() -> Canny {
        Canny {
            sigma: 1.0,
            low_threshold: 0.1 * 255.0,
            high_threshold: 0.2 * 255.0,
        }
    }
}

impl Canny {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ImageError::Parameter`] for a bad σ (as [`Gaussian::validate`]), a negative or
    /// non-finite threshold, or a low threshold above the high one.
    pub fn validate(&self) -> Result<(), ImageError> {
        Gaussian::new(self.sigma).validate().map_err(|_| {
            ImageError::parameter(
                "canny",
                "sigma",
                self.sigma,
                format!(
                    "give a standard deviation in pixels from 0 to {}",
                    super::gaussian::MAX_SIGMA
                ),
            )
        })?;
        for (name, t) in [
            ("low threshold", self.low_threshold),
            ("high threshold", self.high_threshold),
        ] {
            if !(t.is_finite() && t >= 0.0) {
                return Err(ImageError::parameter(
                    "canny",
                    name,
                    t,
                    "give a gradient magnitude ≥ 0 on the 0–255 scale",
                ));
            }
        }
        if self.low_threshold > self.high_threshold {
            return Err(ImageError::parameter(
                "canny",
                "low threshold",
                self.low_threshold,
                format!(
                    "it must not exceed the high threshold ({}); give low ≤ high",
                    self.high_threshold
                ),
            ));
        }
        Ok(())
    }
}

/// The Canny edge map of `image` (grey first if it has colour).
///
/// # Errors
/// As [`Canny::validate`].
pub fn canny(image: &Image, params: &Canny) -> Result<Image, ImageError> {
    params.validate()?;
    let mut plane = Plane::channel(&grey(image), 0);
    // img_as_float of an 8-bit image multiplies by 1/255.
    plane.data.iter_mut().for_each(|v| *v *= 1.0 / 255.0);
    let edges = edge_map(&plane, params);
    Ok(Image {
        width: image.width,
        height: image.height,
        channels: 1,
        data: edges
            .into_iter()
            .map(|e| if e { 255.0 } else { 0.0 })
            .collect(),
    })
}

/// The edge map of a plane on the 0–1 scale, row-major.
fn edge_map(image: &Plane, params: &Canny) -> Vec<bool> {
    let (h, w) = (image.height, image.width);
    if h == 0 || w == 0 {
        return vec![];
    }
    let g = Gaussian {
        border: Border::Constant,
        ..Gaussian::new(params.sigma)
    };
    let ones = Plane {
        data: vec![1.0; h * w],
        ..image.clone()
    };
    let bleed = g.blur_plane(&ones);
    let mut smoothed = g.blur_plane(image);
    for (s, b) in smoothed.data.iter_mut().zip(&bleed.data) {
        *s /= b + f64::EPSILON;
    }
    let (jsobel, isobel) = sobel::gradients(&smoothed, Border::Reflect);
    let magnitude: Vec<f64> = isobel
        .data
        .iter()
        .zip(&jsobel.data)
        .map(|(i, j)| (i * i + j * j).sqrt())
        .collect();
    // scikit-image passes the low threshold through a C `float`.
    let mut low = f64::from((params.low_threshold / 255.0) as f32);
    if low == 0.0 {
        low = 1e-14;
    }
    let high = params.high_threshold / 255.0;
    let kept = suppress_non_maxima(&isobel.data, &jsobel.data, &magnitude, h, w, low);
    hysteresis(&kept, h, w, high)
}

/// Non-maximum suppression (scikit-image's `_nonmaximum_suppression_bilinear`): the magnitude
/// where it is at least `low`, not on the image border, and no smaller than both neighbours
/// along the gradient (interpolated); 0 elsewhere.
fn suppress_non_maxima(
    isobel: &[f64],
    jsobel: &[f64],
    mag: &[f64],
    h: usize,
    w: usize,
    low: f64,
) -> Vec<f64> {
    let mut out = vec![0.0; h * w];
    for x in 1..h.saturating_sub(1) {
        for y in 1..w.saturating_sub(1) {
            let k = x * w + y;
            let m = mag[k];
            if m < low {
                continue;
            }
            let at = |dx: isize, dy: isize| {
                mag[(x as isize + dx) as usize * w + (y as isize + dy) as usize]
            };
            let (gi, gj) = (isobel[k], jsobel[k]);
            let is_down = gi <= 0.0;
            let is_left = gj <= 0.0;
            let (ai, aj) = (gi.abs(), gj.abs());
            // cond1: both gradients of one sign; otherwise of opposite signs.
            let (wt, n11, n12, n21, n22) = if is_down == is_left {
                if ai > aj {
                    (aj / ai, at(1, 0), at(1, 1), at(-1, 0), at(-1, -1))
                } else {
                    (ai / aj, at(0, 1), at(1, 1), at(0, -1), at(-1, -1))
                }
            } else if ai < aj {
                (ai / aj, at(0, 1), at(-1, 1), at(0, -1), at(1, -1))
            } else {
                (aj / ai, at(-1, 0), at(-1, 1), at(1, 0), at(1, -1))
            };
            if n12 * wt + n11 * (1.0 - wt) <= m && n22 * wt + n21 * (1.0 - wt) <= m {
                out[k] = m;
            }
        }
    }
    out
}

/// Keeps the 8-connected groups of nonzero `kept` pixels that hold a pixel ≥ `high`.
fn hysteresis(kept: &[f64], h: usize, w: usize, high: f64) -> Vec<bool> {
    let mut edge = vec![false; h * w];
    let mut stack: Vec<usize> = (0..h * w)
        .filter(|&k| kept[k] > 0.0 && kept[k] >= high)
        .collect();
    for &k in &stack {
        edge[k] = true;
    }
    while let Some(k) = stack.pop() {
        let (y, x) = (k / w, k % w);
        for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
            for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                let n = ny * w + nx;
                if !edge[n] && kept[n] > 0.0 {
                    edge[n] = true;
                    stack.push(n);
                }
            }
        }
    }
    edge
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20×20 grey image: a bright square (rows and columns 6..14) on black.
    fn square() -> Image {
        Image {
            width: 20,
            height: 20,
            channels: 1,
            data: (0..400)
                .map(|k| {
                    let (y, x) = (k / 20, k % 20);
                    if (6..14).contains(&y) && (6..14).contains(&x) {
                        200.0
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn a_square_gives_a_thin_closed_outline() {
        let e = canny(&square(), &Canny::default()).unwrap();
        let on = |y: usize, x: usize| e.at(y, x, 0) == 255.0;
        // The outline runs along the step, one pixel wide, and the inside stays empty.
        for i in 7..13 {
            assert!(on(5, i) ^ on(6, i), "row of the top edge at column {i}");
            assert!(on(i, 5) ^ on(i, 6), "column of the left edge at row {i}");
        }
        assert!(!on(10, 10) && !on(0, 0) && !on(19, 19));
    }

    #[test]
    fn high_threshold_above_every_gradient_leaves_no_edges() {
        let params = Canny {
            low_threshold: 10.0,
            high_threshold: 10_000.0,
            ..Canny::default()
        };
        let e = canny(&square(), &params).unwrap();
        assert!(e.data.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn low_above_high_is_refused_with_both_values() {
        let params = Canny {
            low_threshold: 60.0,
            high_threshold: 20.0,
            ..Canny::default()
        };
        let err = canny(&square(), &params).unwrap_err().to_string();
        assert!(
            err.contains("low threshold = 60") && err.contains("(20)"),
            "{err}"
        );
        let neg = Canny {
            sigma: -2.0,
            ..Canny::default()
        };
        assert!(
            neg.validate()
                .unwrap_err()
                .to_string()
                .contains("sigma = -2")
        );
    }
}
