//! [`Plane`]: one channel of an image in `f64`, the working form of the filters (Gaussian,
//! Sobel, Canny), and [`Border`], how a filter reads beyond the edge — SciPy's `ndimage`
//! modes, which scikit-image's filters inherit.

use std::str::FromStr;

use super::{Image, ImageError};

/// One channel, row-major, in `f64`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f64>,
}

/// How samples beyond the edge are read, as SciPy's `ndimage` `mode`, for a row `a b c d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Border {
    /// `a a | a b c d | d d` — scikit-image's `gaussian` default.
    #[default]
    Nearest,
    /// `b a | a b c d | d c` — half-sample symmetric; SciPy's default.
    Reflect,
    /// `c b | a b c d | c b` — whole-sample symmetric.
    Mirror,
    /// `0 0 | a b c d | 0 0`.
    Constant,
}

impl Border {
    /// The names accepted on the command line and in model files.
    pub const NAMES: &'static str = "nearest, reflect, mirror, constant";

    /// The input index read for position `i` of a line of `n` samples; `None` for a constant 0.
    pub fn index(self, i: isize, n: usize) -> Option<usize> {
        let n_i = n as isize;
        if (0..n_i).contains(&i) {
            return Some(i as usize);
        }
        match self {
            Border::Nearest => Some(i.clamp(0, n_i - 1) as usize),
            Border::Constant => None,
            Border::Reflect => {
                let m = i.rem_euclid(2 * n_i);
                Some(if m < n_i { m } else { 2 * n_i - 1 - m } as usize)
            }
            Border::Mirror if n == 1 => Some(0),
            Border::Mirror => {
                let period = 2 * n_i - 2;
                let m = i.rem_euclid(period);
                Some(if m < n_i { m } else { period - m } as usize)
            }
        }
    }
}

impl FromStr for Border {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Border, ImageError> {
        Ok(match s {
            "nearest" => Border::Nearest,
            "reflect" => Border::Reflect,
            "mirror" => Border::Mirror,
            "constant" => Border::Constant,
            _ => {
                return Err(ImageError::UnknownName {
                    what: "border mode",
                    given: s.to_string(),
                    valid: Border::NAMES,
                });
            }
        })
    }
}

impl Plane {
    /// Channel `c` of `image`, in `f64`.
    pub fn channel(image: &Image, c: usize) -> Plane {
        Plane {
            width: image.width,
            height: image.height,
            data: image
                .data
                .iter()
                .skip(c)
                .step_by(image.channels)
                .map(|&v| f64::from(v))
                .collect(),
        }
    }

    /// An image whose channels are `planes` (all of one size, at least one).
    pub fn stack(planes: &[Plane]) -> Image {
        let (width, height) = (planes[0].width, planes[0].height);
        let channels = planes.len();
        let mut data = vec![0.0f32; width * height * channels];
        for (c, p) in planes.iter().enumerate() {
            for (i, &v) in p.data.iter().enumerate() {
                data[i * channels + c] = v as f32;
            }
        }
        Image {
            width,
            height,
            channels,
            data,
        }
    }

    /// The image split into planes, `f` applied to each, and stacked again.
    pub fn per_channel(image: &Image, mut f: impl FnMut(Plane) -> Plane) -> Image {
        let planes: Vec<Plane> = (0..image.channels)
            .map(|c| f(Plane::channel(image, c)))
            .collect();
        Plane::stack(&planes)
    }

    pub fn at(&self, y: usize, x: usize) -> f64 {
        self.data[y * self.width + x]
    }

    /// SciPy's `correlate1d(self, weights, axis, mode=border)`: `out[i] = Σ_k weights[k] ·
    /// in[i + k − origin]` along the axis, `origin = len / 2` (odd lengths centre the window).
    pub fn correlate1d(&self, weights: &[f64], vertical: bool, border: Border) -> Plane {
        let (w, h) = (self.width, self.height);
        let half = (weights.len() / 2) as isize;
        let (n, lines, step, line_step) = if vertical { (h, w, w, 1) } else { (w, h, 1, w) };
        let mut out = vec![0.0; self.data.len()];
        for line in 0..lines {
            let base = line * line_step;
            for i in 0..n {
                let mut acc = 0.0;
                for (k, &wk) in weights.iter().enumerate() {
                    if let Some(j) = border.index(i as isize + k as isize - half, n) {
                        acc += wk * self.data[base + j * step];
                    }
                }
                out[base + i * step] = acc;
            }
        }
        Plane {
            width: w,
            height: h,
            data: out,
        }
    }

    /// The plane padded by `p` samples on every side, read with `border`.
    pub fn padded(&self, p: usize, border: Border) -> Plane {
        let (w, h) = (self.width + 2 * p, self.height + 2 * p);
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            let sy = border.index(y as isize - p as isize, self.height);
            for x in 0..w {
                let sx = border.index(x as isize - p as isize, self.width);
                data.push(match (sy, sx) {
                    (Some(sy), Some(sx)) => self.at(sy, sx),
                    _ => 0.0,
                });
            }
        }
        Plane {
            width: w,
            height: h,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(border: Border, range: std::ops::Range<isize>, n: usize) -> Vec<Option<usize>> {
        range.map(|i| border.index(i, n)).collect()
    }

    #[test]
    fn border_modes_read_as_scipy_documents() {
        // a b c d = 0 1 2 3, two samples beyond each side.
        let s = Some;
        assert_eq!(
            read(Border::Nearest, -2..6, 4),
            vec![s(0), s(0), s(0), s(1), s(2), s(3), s(3), s(3)]
        );
        assert_eq!(
            read(Border::Reflect, -2..6, 4),
            vec![s(1), s(0), s(0), s(1), s(2), s(3), s(3), s(2)]
        );
        assert_eq!(
            read(Border::Mirror, -2..6, 4),
            vec![s(2), s(1), s(0), s(1), s(2), s(3), s(2), s(1)]
        );
        assert_eq!(read(Border::Constant, -1..1, 4), vec![None, s(0)]);
        // Windows wider than the line keep reflecting: b a | a b | b a a b …
        assert_eq!(
            read(Border::Reflect, -6..-2, 2),
            vec![s(1), s(0), s(0), s(1)]
        );
        assert_eq!(read(Border::Mirror, -3..0, 1), vec![s(0), s(0), s(0)]);
    }

    #[test]
    fn correlation_is_not_flipped_and_runs_along_the_axis() {
        let p = Plane {
            width: 3,
            height: 2,
            data: vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
        };
        let dx = p.correlate1d(&[-1.0, 0.0, 1.0], false, Border::Constant);
        assert_eq!(dx.data, vec![2.0, 3.0, -2.0, 16.0, 24.0, -16.0]);
        let dy = p.correlate1d(&[-1.0, 0.0, 1.0], true, Border::Nearest);
        assert_eq!(dy.data, vec![7.0, 14.0, 28.0, 7.0, 14.0, 28.0]);
    }

    #[test]
    fn channels_round_trip_through_planes() {
        let img = Image {
            width: 2,
            height: 1,
            channels: 3,
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        assert_eq!(Plane::per_channel(&img, |p| p), img);
        assert_eq!(Plane::channel(&img, 1).data, vec![2.0, 5.0]);
    }
}
