//! Sobel edge filters: the lecture's two 3×3 kernels and the gradient magnitude, computed by
//! cnntui's own convolution kernel (`cnntui_kernels::reference::conv2d_forward`, the kernel the
//! runtime's `--backend reference` runs) as one `Conv2D` with two output channels.
//!
//! ```text
//! vertical   [[-1, 0, 1],      horizontal  [[-1, -2, -1],
//!             [-2, 0, 2],                   [ 0,  0,  0],
//!             [-1, 0, 1]]                   [ 1,  2,  1]]
//! ```
//!
//! As in Keras, a convolution is a correlation (the kernel is not flipped): `vertical` is large
//! and positive where the picture gets brighter to the right (it finds vertical edges), and
//! equals SciPy's `ndimage.sobel(axis=1)`; `horizontal` is positive where it gets brighter
//! downwards and equals `ndimage.sobel(axis=0)`. The image is padded by one pixel with SciPy's
//! default `reflect` border before a `valid` convolution, so the edge of the picture is not
//! mistaken for an edge in it. A colour image is converted to grey ([`grey`](super::grey))
//! first. Values are not rescaled: on 0–255 input a response lies in ±1020 and the magnitude
//! in 0–1443.

use std::str::FromStr;

use cnntui_kernels::reference::conv2d_forward;
use cnntui_kernels::{Conv2dGeom, Padding2d};

use super::plane::{Border, Plane};
use super::{Image, ImageError, grey};

/// Which Sobel output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SobelOutput {
    /// The vertical-edge kernel's response (brighter to the right: positive).
    Vertical,
    /// The horizontal-edge kernel's response (brighter downwards: positive).
    Horizontal,
    /// `√(vertical² + horizontal²)`.
    #[default]
    Magnitude,
}

impl SobelOutput {
    /// The names accepted on the command line and in model files.
    pub const NAMES: &'static str = "vertical, horizontal, magnitude";
}

impl FromStr for SobelOutput {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<SobelOutput, ImageError> {
        Ok(match s {
            "vertical" => SobelOutput::Vertical,
            "horizontal" => SobelOutput::Horizontal,
            "magnitude" => SobelOutput::Magnitude,
            _ => {
                return Err(ImageError::UnknownName {
                    what: "sobel output",
                    given: s.to_string(),
                    valid: SobelOutput::NAMES,
                });
            }
        })
    }
}

/// The vertical kernel `[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`, row by row.
pub const VERTICAL: [[f64; 3]; 3] = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]];

/// Both Sobel responses of one plane, `(vertical, horizontal)`, by one 3×3 `Conv2D` with
/// `c_in = 1`, `c_out = 2` over the plane padded with `border`.
pub fn gradients(plane: &Plane, border: Border) -> (Plane, Plane) {
    let (h, w) = (plane.height, plane.width);
    if h == 0 || w == 0 {
        return (plane.clone(), plane.clone());
    }
    let padded = plane.padded(1, border);
    // HWIO: [k_h, k_w, c_in = 1, c_out = 2]; output channel 0 vertical, 1 horizontal (the
    // transpose).
    let mut kernel = vec![0.0f64; 3 * 3 * 2];
    for ky in 0..3 {
        for kx in 0..3 {
            kernel[(ky * 3 + kx) * 2] = VERTICAL[ky][kx];
            kernel[(ky * 3 + kx) * 2 + 1] = VERTICAL[kx][ky];
        }
    }
    let geom = Conv2dGeom::new(
        1,
        (padded.height, padded.width, 1),
        (3, 3),
        2,
        (1, 1),
        Padding2d::default(),
    )
    .expect("a plane padded by 1 fits a 3×3 window");
    let mut y = vec![0.0f64; geom.output_len()];
    conv2d_forward(&geom, &padded.data, &kernel, None, &mut y);
    let split = |c: usize| Plane {
        width: w,
        height: h,
        data: y.iter().skip(c).step_by(2).copied().collect(),
    };
    (split(0), split(1))
}

/// The Sobel response `output` of `image` (grey first if it has colour): one channel.
pub fn sobel(image: &Image, output: SobelOutput) -> Image {
    let plane = Plane::channel(&grey(image), 0);
    let (v, h) = gradients(&plane, Border::Reflect);
    let out = match output {
        SobelOutput::Vertical => v,
        SobelOutput::Horizontal => h,
        SobelOutput::Magnitude => Plane {
            data: v
                .data
                .iter()
                .zip(&h.data)
                .map(|(a, b)| a.hypot(*b))
                .collect(),
            ..v
        },
    };
    Plane::stack(&[out])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 5×4 grey image that is 0 left of column 2 and 100 from it on.
    fn step() -> Image {
        Image {
            width: 5,
            height: 4,
            channels: 1,
            data: (0..20)
                .map(|k| if k % 5 >= 2 { 100.0 } else { 0.0 })
                .collect(),
        }
    }

    #[test]
    fn vertical_kernel_finds_a_vertical_edge_brighter_to_the_right() {
        let v = sobel(&step(), SobelOutput::Vertical);
        // Columns 1 and 2 straddle the edge: (−1−2−1)·0 + (1+2+1)·100 = 400.
        assert_eq!(&v.data[0..5], &[0.0, 400.0, 400.0, 0.0, 0.0]);
        let h = sobel(&step(), SobelOutput::Horizontal);
        assert!(h.data.iter().all(|&x| x == 0.0));
        let m = sobel(&step(), SobelOutput::Magnitude);
        assert_eq!(m.data, v.data);
    }

    #[test]
    fn horizontal_kernel_is_the_transpose() {
        let t = step();
        let transposed = Image {
            width: 4,
            height: 5,
            channels: 1,
            data: (0..20).map(|k| t.at(k % 4, k / 4, 0)).collect(),
        };
        let h = sobel(&transposed, SobelOutput::Horizontal);
        let v = sobel(&t, SobelOutput::Vertical);
        for y in 0..5 {
            for x in 0..4 {
                assert_eq!(h.at(y, x, 0), v.at(x, y, 0));
            }
        }
    }

    #[test]
    fn unknown_output_names_the_valid_ones() {
        let err = "diagonal".parse::<SobelOutput>().unwrap_err().to_string();
        assert!(err.contains("vertical, horizontal, magnitude"), "{err}");
    }
}
