//! Kernel geometries: the constant shapes a kernel is specialised on.
//!
//! All shape arithmetic of windows (convolution and pooling output sizes, padding) lives here,
//! in one place. Activations are NHWC; the batch `n` is part of the geometry so a kernel call
//! covers a whole batch (or a chunk of it).

/// Explicit zero padding on each side of the two spatial axes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Padding2d {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Padding2d {
    /// Keras's `same` padding for one axis: the total is split with the smaller half before
    /// (TensorFlow's convention), so that `out = ceil(input / stride)`.
    pub fn same_1d(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
        let out = input.div_ceil(stride);
        let total = ((out - 1) * stride + kernel).saturating_sub(input);
        (total / 2, total - total / 2)
    }

    /// Keras's `same` padding on both axes.
    pub fn same(h: usize, w: usize, k_h: usize, k_w: usize, s_h: usize, s_w: usize) -> Self {
        let (top, bottom) = Self::same_1d(h, k_h, s_h);
        let (left, right) = Self::same_1d(w, k_w, s_w);
        Padding2d {
            top,
            bottom,
            left,
            right,
        }
    }

    /// The same padding on every side (torchvision's `padding=p`).
    pub fn symmetric(p: usize) -> Self {
        Padding2d {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }
}

/// Output length of a window of `kernel` moved by `stride` over `input + pad` elements, or
/// `None` when the window does not fit even once.
pub fn window_out(
    input: usize,
    pad_before: usize,
    pad_after: usize,
    kernel: usize,
    stride: usize,
) -> Option<usize> {
    let padded = input + pad_before + pad_after;
    if kernel == 0 || stride == 0 || padded < kernel {
        None
    } else {
        Some((padded - kernel) / stride + 1)
    }
}

/// Geometry of a 2-D convolution (`Conv2D`, and `DepthwiseConv2D` with `depth_multiplier`).
///
/// # Shapes
/// - input `x`: `[n, h, w, c_in]`
/// - kernel (`Conv2D`): `[k_h, k_w, c_in, c_out]` (HWIO)
/// - kernel (`DepthwiseConv2D`): `[k_h, k_w, c_in, depth_multiplier]`, and
///   `c_out = c_in * depth_multiplier`; output channel `ci * depth_multiplier + m`
/// - output `y`: `[n, out_h, out_w, c_out]`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dGeom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c_in: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub c_out: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad: Padding2d,
    pub out_h: usize,
    pub out_w: usize,
}

impl Conv2dGeom {
    /// Builds the geometry, computing the output size; `None` when the window does not fit.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: usize,
        (h, w, c_in): (usize, usize, usize),
        (k_h, k_w): (usize, usize),
        c_out: usize,
        (stride_h, stride_w): (usize, usize),
        pad: Padding2d,
    ) -> Option<Self> {
        let out_h = window_out(h, pad.top, pad.bottom, k_h, stride_h)?;
        let out_w = window_out(w, pad.left, pad.right, k_w, stride_w)?;
        Some(Conv2dGeom {
            n,
            h,
            w,
            c_in,
            k_h,
            k_w,
            c_out,
            stride_h,
            stride_w,
            pad,
            out_h,
            out_w,
        })
    }

    /// The same geometry for a different batch size (used to split a batch across threads).
    pub fn with_batch(self, n: usize) -> Self {
        Conv2dGeom { n, ..self }
    }

    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.c_in
    }

    pub fn output_len(&self) -> usize {
        self.n * self.out_h * self.out_w * self.c_out
    }

    /// Multiply-adds of the forward pass (`Conv2D`; for depthwise, divide by `c_in`).
    pub fn macs(&self) -> usize {
        self.n * self.out_h * self.out_w * self.c_out * self.k_h * self.k_w * self.c_in
    }
}

/// Geometry of a 2-D pooling window over `[n, h, w, c]`, output `[n, out_h, out_w, c]`.
///
/// Padded positions never win a max-pool and are not counted by an average pool (Keras).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dGeom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad: Padding2d,
    pub out_h: usize,
    pub out_w: usize,
}

impl Pool2dGeom {
    /// Builds the geometry, computing the output size; `None` when the window does not fit.
    pub fn new(
        n: usize,
        (h, w, c): (usize, usize, usize),
        (k_h, k_w): (usize, usize),
        (stride_h, stride_w): (usize, usize),
        pad: Padding2d,
    ) -> Option<Self> {
        let out_h = window_out(h, pad.top, pad.bottom, k_h, stride_h)?;
        let out_w = window_out(w, pad.left, pad.right, k_w, stride_w)?;
        Some(Pool2dGeom {
            n,
            h,
            w,
            c,
            k_h,
            k_w,
            stride_h,
            stride_w,
            pad,
            out_h,
            out_w,
        })
    }

    pub fn with_batch(self, n: usize) -> Self {
        Pool2dGeom { n, ..self }
    }

    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    pub fn output_len(&self) -> usize {
        self.n * self.out_h * self.out_w * self.c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_keeps_height_and_width_at_stride_one() {
        let g = Conv2dGeom::new(
            1,
            (28, 28, 1),
            (3, 3),
            8,
            (1, 1),
            Padding2d::same(28, 28, 3, 3, 1, 1),
        )
        .unwrap();
        assert_eq!((g.out_h, g.out_w), (28, 28));
        assert_eq!(g.pad, Padding2d::symmetric(1));
    }

    #[test]
    fn same_padding_at_stride_two_pads_after_more_than_before() {
        assert_eq!(Padding2d::same_1d(224, 3, 2), (0, 1));
        assert_eq!(Padding2d::same_1d(7, 2, 2), (0, 1));
    }

    #[test]
    fn valid_window_larger_than_input_does_not_fit() {
        assert_eq!(window_out(2, 0, 0, 3, 1), None);
        assert_eq!(window_out(26, 0, 0, 2, 2), Some(13));
        assert_eq!(window_out(13, 0, 0, 2, 2), Some(6));
    }
}
