//! Random augmentation as Keras's `ImageDataGenerator` does it, and the deterministic affine
//! warp underneath it (Keras 3's `apply_affine_transform`).
//!
//! Owns [`Affine`] (one warp's parameters and its pull matrix), [`FillMode`] (SciPy's edge
//! modes as Keras uses them), [`warp`] (the one bilinear resampling), [`Augment`] (the random
//! ranges a model file declares) and [`Transform`] (one sample's draw), and [`SampleRng`], the
//! generator each sample's draw comes from.
//!
//! # The warp
//!
//! Keras builds `M = R(θ) · T(tx, ty) · Sh(s) · Z(zx, zy)` (each factor only when it is not
//! the identity), centres it with `o = (h/2 − 0.5, w/2 − 0.5)`, swaps the first two rows and
//! columns (its matrices are in (x, y), arrays in (row, column)) and hands it to
//! `scipy.ndimage.affine_transform` as an output → input map, bilinear (`order=1`), each
//! channel alike. [`Affine::pull`] builds the same matrix in `f64`, operation for operation, so
//! non-square images get Keras's centre too (the swap moves `h/2 − 0.5` onto the column axis).
//! On a channels-last image `tx` moves content along columns and `ty` along rows (positive
//! values move it left / up), a positive `theta` turns it counter-clockwise on screen, `zx`
//! scales the column coordinate and `zy` the row coordinate (values below 1 enlarge).
//!
//! Edge modes are SciPy's for `order=1` ([`FillMode`]): `nearest` clamps the coordinate,
//! `reflect` is half-sample symmetric, `wrap` is SciPy's legacy wrap with period `n − 1`, and
//! `constant` gives `cval` wherever the coordinate lies outside `[0, n − 1]` on either axis.
//!
//! # Random draws
//!
//! Per sample, in Keras's order: θ ~ U(−rotation_range, rotation_range) degrees; the shifts;
//! shear ~ U(−shear_range, shear_range) **degrees**; `zx`, `zy` drawn independently from the
//! zoom interval; a horizontal and a vertical flip with probability ½ each; a brightness factor
//! ~ U(lo, hi). Flips are applied after the warp, as Keras does, by mirroring the output
//! coordinate — so the warp and the flips are still one resampling.
//!
//! **One departure, on purpose:** Keras 3.15 draws `tx` from `height_shift_range` (scaled by
//! the row count) and `ty` from `width_shift_range`, so its random shifts move along the swapped
//! axes. Here `width_shift_range` shifts horizontally and `height_shift_range` vertically, as
//! Keras's documentation says; a range below 1 is a fraction of the axis it moves along, a range
//! of 1 or more is pixels (drawn uniformly; Keras draws integers from an integer range).
//!
//! Brightness follows Keras's `apply_brightness_shift(x, b, scale=False)` on values in 0–255:
//! the image becomes 8-bit (truncated), PIL's `ImageEnhance.Brightness` multiplies by `b` and
//! truncates, saturating at 255.
//!
//! Each sample's generator is derived from `(seed, epoch, index)` ([`SampleRng::for_sample`]),
//! never from the order in which threads reach it, so a pipeline gives the same images whatever
//! its thread count. The generator is not NumPy's: the same seed gives other draws than Keras.
//!
//! Must not depend on `ir`, `runtime` or `tui`.

use std::str::FromStr;

use super::image::{Image, ImageError};

/// How samples outside the image are filled (SciPy's `mode`, Keras's `fill_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FillMode {
    /// Clamp the coordinate to the nearest edge (Keras's default).
    #[default]
    Nearest,
    /// `cval` wherever the coordinate lies outside `[0, n − 1]`.
    Constant,
    /// Half-sample symmetric: `d c b a | a b c d | d c b a`.
    Reflect,
    /// SciPy's legacy wrap, period `n − 1` (the first and last samples coincide).
    Wrap,
}

impl FillMode {
    /// The names accepted on the command line and in model files.
    pub const NAMES: &'static str = "nearest, constant, reflect, wrap";
}

impl FromStr for FillMode {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<FillMode, ImageError> {
        Ok(match s {
            "nearest" => FillMode::Nearest,
            "constant" => FillMode::Constant,
            "reflect" => FillMode::Reflect,
            "wrap" => FillMode::Wrap,
            _ => {
                return Err(ImageError::UnknownName {
                    what: "fill mode",
                    given: s.to_string(),
                    valid: FillMode::NAMES,
                });
            }
        })
    }
}

/// One affine warp in Keras's `apply_affine_transform` terms: degrees for `theta` and
/// `shear`, pixels for `tx` (along columns) and `ty` (along rows), zoom factors `zx`, `zy`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub theta: f64,
    pub tx: f64,
    pub ty: f64,
    pub shear: f64,
    pub zx: f64,
    pub zy: f64,
}

impl Default for Affine {
    /// The identity.
    fn default() -> Affine {
        Affine {
            theta: 0.0,
            tx: 0.0,
            ty: 0.0,
            shear: 0.0,
            zx: 1.0,
            zy: 1.0,
        }
    }
}

type M3 = [[f64; 3]; 3];

fn mul(a: &M3, b: &M3) -> M3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

impl Affine {
    /// The output → input map for an `h × w` image, as SciPy receives it from Keras:
    /// `[row, col] of the input = A · [row, col] of the output + offset`, returned as
    /// `[[a00, a01, offset_row], [a10, a11, offset_col]]`; `None` for the identity, which Keras
    /// returns untouched (no resampling).
    pub fn pull(&self, h: usize, w: usize) -> Option<[[f64; 3]; 2]> {
        let mut m: Option<M3> = None;
        let mut then = |f: M3| m = Some(m.map_or(f, |m| mul(&m, &f)));
        if self.theta != 0.0 {
            let t = self.theta.to_radians();
            then([
                [t.cos(), -t.sin(), 0.0],
                [t.sin(), t.cos(), 0.0],
                [0.0, 0.0, 1.0],
            ]);
        }
        if self.tx != 0.0 || self.ty != 0.0 {
            then([[1.0, 0.0, self.tx], [0.0, 1.0, self.ty], [0.0, 0.0, 1.0]]);
        }
        if self.shear != 0.0 {
            let s = self.shear.to_radians();
            then([[1.0, -s.sin(), 0.0], [0.0, s.cos(), 0.0], [0.0, 0.0, 1.0]]);
        }
        if self.zx != 1.0 || self.zy != 1.0 {
            then([[self.zx, 0.0, 0.0], [0.0, self.zy, 0.0], [0.0, 0.0, 1.0]]);
        }
        let m = m?;
        // transform_matrix_offset_center(m, h, w): o_x from h, o_y from w.
        let (ox, oy) = (h as f64 / 2.0 - 0.5, w as f64 / 2.0 - 0.5);
        let offset = [[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]];
        let reset = [[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]];
        let m = mul(&mul(&offset, &m), &reset);
        // Swap columns 0 and 1, then rows 0 and 1.
        Some([[m[1][1], m[1][0], m[1][2]], [m[0][1], m[0][0], m[0][2]]])
    }
}

/// SciPy's `map_coordinate` for one axis of length `n`: the coordinate moved into the image
/// by the edge mode, or `None` where `constant` fills.
fn map_coordinate(x: f64, n: usize, mode: FillMode) -> Option<f64> {
    let len = n as f64;
    if x < 0.0 {
        Some(match mode {
            FillMode::Nearest => 0.0,
            FillMode::Constant => return None,
            _ if n <= 1 => 0.0,
            FillMode::Reflect => {
                let sz2 = 2.0 * len;
                let mut x = x;
                if x < -sz2 {
                    x += sz2 * (-x / sz2).trunc();
                }
                if x < -len { x + sz2 } else { -x - 1.0 }
            }
            FillMode::Wrap => {
                let sz = len - 1.0;
                x + sz * ((-x / sz).trunc() + 1.0)
            }
        })
    } else if x > len - 1.0 {
        Some(match mode {
            FillMode::Nearest => len - 1.0,
            FillMode::Constant => return None,
            _ if n <= 1 => 0.0,
            FillMode::Reflect => {
                let sz2 = 2.0 * len;
                let x = x - sz2 * (x / sz2).trunc();
                if x >= len { sz2 - x - 1.0 } else { x }
            }
            FillMode::Wrap => {
                let sz = len - 1.0;
                x - sz * (x / sz).trunc()
            }
        })
    } else {
        Some(x)
    }
}

/// The two taps and the weight of the second for a coordinate on an axis of length `n`.
/// Taps that fall just outside (reflect's `(−1, 0)` and `(n − 1, n)`, or the zero-weight tap
/// at `n − 1`) are the edge sample, as SciPy's half-sample edge handling gives.
fn taps(x: f64, n: usize, mode: FillMode) -> Option<(usize, usize, f64)> {
    let x = map_coordinate(x, n, mode)?;
    let start = x.floor();
    let t = x - start;
    let last = n as i64 - 1;
    let i0 = (start as i64).clamp(0, last) as usize;
    let i1 = (start as i64 + 1).clamp(0, last) as usize;
    Some((i0, i1, t))
}

/// Warps `src` by `affine` into `out` (same size and channels), then mirrors the result
/// horizontally and/or vertically. One bilinear resampling; values stay on `src`'s scale.
///
/// # Shapes
/// `out.len() == src.data.len()`.
///
/// # Panics
/// If `out` has the wrong length (a caller's mistake, not a user's).
pub fn warp(
    src: &Image,
    affine: &Affine,
    fill: FillMode,
    cval: f32,
    flip: (bool, bool),
    out: &mut [f32],
) {
    let (h, w, c) = (src.height, src.width, src.channels);
    assert_eq!(out.len(), src.data.len(), "warp: output length");
    let (flip_h, flip_v) = flip;
    let pull = affine.pull(h, w);
    for r in 0..h {
        let rr = if flip_v { h - 1 - r } else { r };
        for col in 0..w {
            let cc = if flip_h { w - 1 - col } else { col };
            let px = &mut out[(r * w + col) * c..][..c];
            let Some(m) = pull else {
                px.copy_from_slice(&src.data[(rr * w + cc) * c..][..c]);
                continue;
            };
            let (fr, fc) = (rr as f64, cc as f64);
            let y = m[0][0] * fr + m[0][1] * fc + m[0][2];
            let x = m[1][0] * fr + m[1][1] * fc + m[1][2];
            match (taps(y, h, fill), taps(x, w, fill)) {
                (Some((y0, y1, ty)), Some((x0, x1, tx))) => {
                    let at = |yy: usize, xx: usize, ch: usize| {
                        f64::from(src.data[(yy * w + xx) * c + ch])
                    };
                    for (ch, v) in px.iter_mut().enumerate() {
                        let top = at(y0, x0, ch) * (1.0 - tx) + at(y0, x1, ch) * tx;
                        let bottom = at(y1, x0, ch) * (1.0 - tx) + at(y1, x1, ch) * tx;
                        *v = (top * (1.0 - ty) + bottom * ty) as f32;
                    }
                }
                _ => px.fill(cval),
            }
        }
    }
}

/// `src` warped by `affine`, as Keras's `apply_affine_transform(x, ...)` on a channels-last
/// array with `order=1`.
pub fn apply_affine_transform(src: &Image, affine: &Affine, fill: FillMode, cval: f32) -> Image {
    let mut out = src.clone();
    warp(src, affine, fill, cval, (false, false), &mut out.data);
    out
}

/// The per-sample random generator: SplitMix64 over a key mixed from `(seed, epoch, index)`.
#[derive(Clone, Debug)]
pub struct SampleRng(u64);

impl SampleRng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> SampleRng {
        SampleRng(seed)
    }

    /// The generator of sample `index` in epoch `epoch` of a run seeded with `seed`.
    pub fn for_sample(seed: u64, epoch: u64, index: u64) -> SampleRng {
        let mut key = SampleRng(seed ^ 0x5851_f42d_4c95_7f2d);
        let a = key.next_u64() ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut key = SampleRng(a);
        let b = key.next_u64() ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03);
        SampleRng(SampleRng(b).next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = ((self.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
            items.swap(i, j);
        }
    }
}

/// The random augmentation a model file declares (`train.augment`), with Keras's
/// `ImageDataGenerator` names and meanings (see the module docs for the shift departure).
#[derive(Clone, Debug, PartialEq)]
pub struct Augment {
    /// Degrees.
    pub rotation_range: f64,
    /// A fraction of the width (< 1) or pixels (≥ 1); moves content horizontally.
    pub width_shift_range: f64,
    /// A fraction of the height (< 1) or pixels (≥ 1); moves content vertically.
    pub height_shift_range: f64,
    /// Degrees.
    pub shear_range: f64,
    /// `(lo, hi)`: `zx` and `zy` are drawn independently from U(lo, hi).
    pub zoom_range: (f64, f64),
    pub horizontal_flip: bool,
    pub vertical_flip: bool,
    pub fill_mode: FillMode,
    /// The fill value for [`FillMode::Constant`], on the 0–255 scale of the images.
    pub cval: f64,
    /// `(lo, hi)`: brightness factor drawn from U(lo, hi).
    pub brightness_range: Option<(f64, f64)>,
}

impl Default for Augment {
    /// No augmentation at all.
    fn default() -> Augment {
        Augment {
            rotation_range: 0.0,
            width_shift_range: 0.0,
            height_shift_range: 0.0,
            shear_range: 0.0,
            zoom_range: (1.0, 1.0),
            horizontal_flip: false,
            vertical_flip: false,
            fill_mode: FillMode::Nearest,
            cval: 0.0,
            brightness_range: None,
        }
    }
}

/// A parameter of [`Augment`] outside its range: the field (as written in a model file), the
/// value and what it must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadParameter {
    pub field: &'static str,
    pub value: String,
    pub constraint: &'static str,
}

/// One sample's draw: the warp, the flips and the brightness factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform {
    pub affine: Affine,
    pub flip_horizontal: bool,
    pub flip_vertical: bool,
    pub brightness: Option<f64>,
}

impl Augment {
    /// Keras's float `zoom_range`: `z` means `(1 − z, 1 + z)`.
    pub fn zoom(z: f64) -> (f64, f64) {
        (1.0 - z, 1.0 + z)
    }

    /// Checks every range before training starts.
    ///
    /// # Errors
    /// The first parameter out of range: negative or non-finite ranges, a rotation above 180°,
    /// a shear of 90° or more, a zoom interval that is empty or reaches 0, a brightness interval
    /// that is reversed or negative, a non-finite `cval`.
    pub fn validate(&self) -> Result<(), BadParameter> {
        let bad = |field, value: String, constraint| {
            Err(BadParameter {
                field,
                value,
                constraint,
            })
        };
        let ranges = [
            (
                "augment.rotation_range",
                self.rotation_range,
                180.0,
                "in [0, 180] degrees",
            ),
            (
                "augment.width_shift_range",
                self.width_shift_range,
                f64::MAX,
                "0 or more (a fraction of the width below 1, pixels from 1)",
            ),
            (
                "augment.height_shift_range",
                self.height_shift_range,
                f64::MAX,
                "0 or more (a fraction of the height below 1, pixels from 1)",
            ),
        ];
        for (field, v, max, constraint) in ranges {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return bad(field, v.to_string(), constraint);
            }
        }
        if !(self.shear_range.is_finite() && (0.0..90.0).contains(&self.shear_range)) {
            return bad(
                "augment.shear_range",
                self.shear_range.to_string(),
                "in [0, 90) degrees",
            );
        }
        let (lo, hi) = self.zoom_range;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return bad(
                "augment.zoom_range",
                format!("({lo}, {hi})"),
                "a fraction in [0, 1) or a pair (lo, hi) with 0 < lo ≤ hi",
            );
        }
        if let Some((lo, hi)) = self.brightness_range
            && !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo <= hi)
        {
            return bad(
                "augment.brightness_range",
                format!("({lo}, {hi})"),
                "a pair (lo, hi) with 0 ≤ lo ≤ hi",
            );
        }
        if !self.cval.is_finite() {
            return bad("augment.cval", self.cval.to_string(), "a finite number");
        }
        Ok(())
    }

    /// Draws one sample's transform for an `h × w` image, in Keras's order.
    pub fn draw(&self, rng: &mut SampleRng, h: usize, w: usize) -> Transform {
        let symmetric =
            |rng: &mut SampleRng, r: f64| if r > 0.0 { rng.uniform(-r, r) } else { 0.0 };
        let theta = symmetric(rng, self.rotation_range);
        let shift = |rng: &mut SampleRng, r: f64, axis: usize| {
            let s = symmetric(rng, r);
            if r < 1.0 { s * axis as f64 } else { s }
        };
        let tx = shift(rng, self.width_shift_range, w);
        let ty = shift(rng, self.height_shift_range, h);
        let shear = symmetric(rng, self.shear_range);
        let (lo, hi) = self.zoom_range;
        let (zx, zy) = if lo == 1.0 && hi == 1.0 {
            (1.0, 1.0)
        } else {
            (rng.uniform(lo, hi), rng.uniform(lo, hi))
        };
        let flip_horizontal = self.horizontal_flip && rng.unit() < 0.5;
        let flip_vertical = self.vertical_flip && rng.unit() < 0.5;
        let brightness = self.brightness_range.map(|(lo, hi)| rng.uniform(lo, hi));
        Transform {
            affine: Affine {
                theta,
                tx,
                ty,
                shear,
                zx,
                zy,
            },
            flip_horizontal,
            flip_vertical,
            brightness,
        }
    }

    /// Applies `t` to `src` (values on the 0–255 scale) and writes the result into `out`.
    ///
    /// # Shapes
    /// `out.len() == src.data.len()`.
    pub fn apply(&self, t: &Transform, src: &Image, out: &mut [f32]) {
        warp(
            src,
            &t.affine,
            self.fill_mode,
            self.cval as f32,
            (t.flip_horizontal, t.flip_vertical),
            out,
        );
        if let Some(b) = t.brightness {
            let b = b as f32;
            for v in out.iter_mut() {
                *v = (v.clamp(0.0, 255.0).trunc() * b).trunc().min(255.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×4 one-channel image whose value at (r, c) is 10·r + c.
    fn grid() -> Image {
        Image {
            width: 4,
            height: 3,
            channels: 1,
            data: (0..12).map(|i| (10 * (i / 4) + i % 4) as f32).collect(),
        }
    }

    #[test]
    fn identity_leaves_the_image_untouched() {
        let img = grid();
        let out = apply_affine_transform(&img, &Affine::default(), FillMode::Constant, -1.0);
        assert_eq!(out, img);
    }

    #[test]
    fn positive_shifts_move_content_left_and_up() {
        // out[r, c] = in[r + ty, c + tx].
        let shift = Affine {
            tx: 1.0,
            ty: 1.0,
            ..Affine::default()
        };
        let out = apply_affine_transform(&grid(), &shift, FillMode::Constant, -1.0);
        assert_eq!(
            out.data,
            [
                11.0, 12.0, 13.0, -1.0, 21.0, 22.0, 23.0, -1.0, -1.0, -1.0, -1.0, -1.0
            ]
        );
    }

    #[test]
    fn edge_modes_follow_scipy() {
        // Values from scipy.ndimage.affine_transform(a, eye(2), [0, off], order=1, mode=m) on
        // the row [0, 10, 20, 40] (SciPy 1.17.1).
        let row = Image {
            width: 4,
            height: 1,
            channels: 1,
            data: vec![0.0, 10.0, 20.0, 40.0],
        };
        let cases: [(FillMode, f64, [f32; 4]); 8] = [
            (FillMode::Reflect, -1.5, [5.0, 0.0, 5.0, 15.0]),
            (FillMode::Reflect, 0.75, [7.5, 17.5, 35.0, 40.0]),
            (FillMode::Reflect, 5.0, [20.0, 10.0, 0.0, 0.0]),
            (FillMode::Wrap, -0.25, [35.0, 7.5, 17.5, 35.0]),
            (FillMode::Wrap, 5.0, [20.0, 0.0, 10.0, 20.0]),
            (FillMode::Nearest, 1.5, [15.0, 30.0, 40.0, 40.0]),
            (FillMode::Constant, -0.25, [-1.0, 7.5, 17.5, 35.0]),
            (FillMode::Constant, 0.75, [7.5, 17.5, 35.0, -1.0]),
        ];
        for (mode, off, want) in cases {
            let shift = Affine {
                tx: off,
                ..Affine::default()
            };
            let out = apply_affine_transform(&row, &shift, mode, -1.0);
            assert_eq!(out.data, want, "{mode:?} {off}");
        }
    }

    #[test]
    fn flips_mirror_the_warped_image() {
        let mut out = vec![0.0; 12];
        warp(
            &grid(),
            &Affine::default(),
            FillMode::Nearest,
            0.0,
            (true, false),
            &mut out,
        );
        assert_eq!(out[..4], [3.0, 2.0, 1.0, 0.0]);
        warp(
            &grid(),
            &Affine::default(),
            FillMode::Nearest,
            0.0,
            (false, true),
            &mut out,
        );
        assert_eq!(out[..4], [20.0, 21.0, 22.0, 23.0]);
    }

    #[test]
    fn draws_depend_only_on_seed_epoch_and_index() {
        let aug = Augment {
            rotation_range: 40.0,
            width_shift_range: 0.2,
            zoom_range: Augment::zoom(0.2),
            horizontal_flip: true,
            ..Augment::default()
        };
        let a = aug.draw(&mut SampleRng::for_sample(7, 2, 13), 150, 150);
        let b = aug.draw(&mut SampleRng::for_sample(7, 2, 13), 150, 150);
        let c = aug.draw(&mut SampleRng::for_sample(7, 2, 14), 150, 150);
        let d = aug.draw(&mut SampleRng::for_sample(7, 3, 13), 150, 150);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert!(a.affine.theta.abs() <= 40.0 && a.affine.tx.abs() <= 30.0);
        assert!((0.8..1.2).contains(&a.affine.zx) && (0.8..1.2).contains(&a.affine.zy));
    }

    #[test]
    fn brightness_truncates_to_bytes_and_saturates() {
        let aug = Augment::default();
        let t = Transform {
            affine: Affine::default(),
            flip_horizontal: false,
            flip_vertical: false,
            brightness: Some(1.5),
        };
        let img = Image {
            width: 3,
            height: 1,
            channels: 1,
            data: vec![10.7, 100.0, 200.0],
        };
        let mut out = vec![0.0; 3];
        aug.apply(&t, &img, &mut out);
        assert_eq!(out, [15.0, 150.0, 255.0]);
    }

    #[test]
    fn validate_names_the_parameter_out_of_range() {
        let err = Augment {
            zoom_range: Augment::zoom(1.5),
            ..Augment::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "augment.zoom_range");
        let err = Augment {
            rotation_range: -3.0,
            ..Augment::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "augment.rotation_range");
        assert!(Augment::default().validate().is_ok());
    }

    #[test]
    fn unknown_fill_mode_lists_the_valid_ones() {
        let err = "mirror".parse::<FillMode>().unwrap_err().to_string();
        assert!(err.contains("nearest, constant, reflect, wrap"), "{err}");
    }
}
