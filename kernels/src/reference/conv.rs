//! `Conv2D`: forward, input gradient and kernel gradient, NHWC activations, HWIO kernels.
//!
//! All three are the [`gemv`] micro-kernel over im2col rows. An HWIO kernel is already a
//! row-major `[k_h·k_w·c_in, c_out]` matrix, so the forward pass gathers each output pixel's
//! receptive field into one row (zeros for padding) and multiplies it by the kernel. The input
//! gradient multiplies `dy` by the transposed kernel and scatters the row back (col2im); the
//! kernel gradient multiplies blocks of transposed im2col rows by blocks of `dy`.

use super::gemv::{gemv, transpose};
use super::{Real, window_taps};
use crate::geom::Conv2dGeom;

/// Pixels per block of the kernel gradient: the transposed im2col block and the `dy` block stay
/// in cache while every kernel row is accumulated.
const PIXEL_BLOCK: usize = 64;

/// `y = conv(x, w) + bias`, zero padding; `y` is overwritten.
///
/// # Shapes
/// - `x`: `[n, h, w, c_in]`, `w`: `[k_h, k_w, c_in, c_out]`, `bias`: `[c_out]`
/// - `y`: `[n, out_h, out_w, c_out]`
pub fn conv2d_forward<T: Real>(g: &Conv2dGeom, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    let k_len = check_shapes(g, x.len(), w.len(), y.len());
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "conv2d bias must be [c_out]");
    }
    if y.is_empty() {
        return;
    }
    for y_px in y.chunks_exact_mut(g.c_out) {
        match bias {
            Some(b) => y_px.copy_from_slice(b),
            None => y_px.fill(T::zero()),
        }
    }
    if x.is_empty() || k_len == 0 {
        return;
    }
    let mut patch = vec![T::zero(); k_len];
    for (p, y_px) in y.chunks_exact_mut(g.c_out).enumerate() {
        im2col_row(g, x, p, &mut patch);
        gemv(y_px, &patch, w);
    }
}

/// `dx`: the gradient with respect to the input, from `dy` and the kernel; overwritten.
///
/// # Shapes
/// - `dy`: `[n, out_h, out_w, c_out]`, `w`: `[k_h, k_w, c_in, c_out]`
/// - `dx`: `[n, h, w, c_in]`
pub fn conv2d_backward_input<T: Real>(g: &Conv2dGeom, dy: &[T], w: &[T], dx: &mut [T]) {
    let k_len = check_shapes(g, dx.len(), w.len(), dy.len());
    dx.fill(T::zero());
    if dx.is_empty() || dy.is_empty() || k_len == 0 {
        return;
    }
    let mut w_t = vec![T::zero(); w.len()];
    transpose(k_len, g.c_out, w, &mut w_t);
    let mut patch = vec![T::zero(); k_len];
    for (p, dy_px) in dy.chunks_exact(g.c_out).enumerate() {
        patch.fill(T::zero());
        gemv(&mut patch, dy_px, &w_t);
        col2im_add(g, &patch, p, dx);
    }
}

/// `dw`: the gradient with respect to the kernel, from the input and `dy`; overwritten (the
/// caller sums the chunks of a split batch).
///
/// # Shapes
/// - `x`: `[n, h, w, c_in]`, `dy`: `[n, out_h, out_w, c_out]`
/// - `dw`: `[k_h, k_w, c_in, c_out]`
pub fn conv2d_backward_weight<T: Real>(g: &Conv2dGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    let k_len = check_shapes(g, x.len(), dw.len(), dy.len());
    dw.fill(T::zero());
    if x.is_empty() || dw.is_empty() || dy.is_empty() {
        return;
    }
    let pixels = g.n * g.out_h * g.out_w;
    let mut patch = vec![T::zero(); k_len];
    let mut cols = vec![T::zero(); k_len * PIXEL_BLOCK];
    for p0 in (0..pixels).step_by(PIXEL_BLOCK) {
        let block = PIXEL_BLOCK.min(pixels - p0);
        let cols = &mut cols[..k_len * block];
        // `cols` is the block's im2col matrix transposed: `[k_len, block]`.
        for j in 0..block {
            im2col_row(g, x, p0 + j, &mut patch);
            for (col, &v) in cols.iter_mut().skip(j).step_by(block).zip(&patch) {
                *col = v;
            }
        }
        let dy_block = &dy[p0 * g.c_out..(p0 + block) * g.c_out];
        for (dw_row, col) in dw.chunks_exact_mut(g.c_out).zip(cols.chunks_exact(block)) {
            gemv(dw_row, col, dy_block);
        }
    }
}

/// Asserts the slice lengths against the geometry; returns the im2col row length.
fn check_shapes(g: &Conv2dGeom, x_len: usize, w_len: usize, y_len: usize) -> usize {
    let k_len = g.k_h * g.k_w * g.c_in;
    assert_eq!(x_len, g.input_len(), "conv2d input must be [n, h, w, c_in]");
    assert_eq!(
        w_len,
        k_len * g.c_out,
        "conv2d kernel must be [k_h, k_w, c_in, c_out]"
    );
    assert_eq!(
        y_len,
        g.output_len(),
        "conv2d output must be [n, out_h, out_w, c_out]"
    );
    k_len
}

/// The receptive field of output pixel `p` (flat over `n, out_h, out_w`) as one row
/// `[k_h, k_w, c_in]`, zeros where the window lies in padding.
fn im2col_row<T: Real>(g: &Conv2dGeom, x: &[T], p: usize, patch: &mut [T]) {
    let (img, oh, ow) = (p / (g.out_h * g.out_w), p / g.out_w % g.out_h, p % g.out_w);
    let x_img = &x[img * g.h * g.w * g.c_in..][..g.h * g.w * g.c_in];
    let (kh0, kh1, ih0) = window_taps(oh, g.stride_h, g.pad.top, g.h, g.k_h);
    let (kw0, kw1, iw0) = window_taps(ow, g.stride_w, g.pad.left, g.w, g.k_w);
    let seg_len = g.k_w * g.c_in;
    for (kh, seg) in patch.chunks_exact_mut(seg_len).enumerate() {
        if kh < kh0 || kh >= kh1 || kw0 == kw1 {
            seg.fill(T::zero());
            continue;
        }
        let ih = ih0 + kh - kh0;
        let src = &x_img[(ih * g.w + iw0) * g.c_in..][..(kw1 - kw0) * g.c_in];
        seg[..kw0 * g.c_in].fill(T::zero());
        seg[kw0 * g.c_in..kw1 * g.c_in].copy_from_slice(src);
        seg[kw1 * g.c_in..].fill(T::zero());
    }
}

/// Adds an im2col row of output pixel `p` back onto the input positions it was gathered from.
fn col2im_add<T: Real>(g: &Conv2dGeom, patch: &[T], p: usize, dx: &mut [T]) {
    let (img, oh, ow) = (p / (g.out_h * g.out_w), p / g.out_w % g.out_h, p % g.out_w);
    let dx_img = &mut dx[img * g.h * g.w * g.c_in..][..g.h * g.w * g.c_in];
    let (kh0, kh1, ih0) = window_taps(oh, g.stride_h, g.pad.top, g.h, g.k_h);
    let (kw0, kw1, iw0) = window_taps(ow, g.stride_w, g.pad.left, g.w, g.k_w);
    if kw0 == kw1 {
        return;
    }
    let seg_len = g.k_w * g.c_in;
    for (kh, seg) in patch.chunks_exact(seg_len).enumerate().take(kh1).skip(kh0) {
        let ih = ih0 + kh - kh0;
        let dst = &mut dx_img[(ih * g.w + iw0) * g.c_in..][..(kw1 - kw0) * g.c_in];
        for (d, &s) in dst.iter_mut().zip(&seg[kw0 * g.c_in..kw1 * g.c_in]) {
            *d += s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::bias_backward;
    use super::super::testing::{Rng, assert_close, assert_grad, dot};
    use super::*;
    use crate::geom::Padding2d;
    use proptest::prelude::*;

    fn geom(
        n: usize,
        hwc: (usize, usize, usize),
        k: (usize, usize),
        c_out: usize,
        s: (usize, usize),
        pad: Padding2d,
    ) -> Conv2dGeom {
        Conv2dGeom::new(n, hwc, k, c_out, s, pad).expect("window fits")
    }

    fn forward(g: &Conv2dGeom, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let mut y = vec![f64::NAN; g.output_len()];
        conv2d_forward(g, x, w, b, &mut y);
        y
    }

    /// The textbook seven-loop convolution, the oracle of the oracle.
    fn direct(g: &Conv2dGeom, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let mut y = vec![0.0; g.output_len()];
        for n in 0..g.n {
            for oh in 0..g.out_h {
                for ow in 0..g.out_w {
                    for co in 0..g.c_out {
                        let mut s = b.map_or(0.0, |b| b[co]);
                        for kh in 0..g.k_h {
                            for kw in 0..g.k_w {
                                for ci in 0..g.c_in {
                                    let ih = (oh * g.stride_h + kh) as isize - g.pad.top as isize;
                                    let iw = (ow * g.stride_w + kw) as isize - g.pad.left as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let (ih, iw) = (ih as usize, iw as usize);
                                    s += x[((n * g.h + ih) * g.w + iw) * g.c_in + ci]
                                        * w[((kh * g.k_w + kw) * g.c_in + ci) * g.c_out + co];
                                }
                            }
                        }
                        y[((n * g.out_h + oh) * g.out_w + ow) * g.c_out + co] = s;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn valid_conv_of_a_3x3_input_matches_hand_computation() {
        let g = geom(1, (3, 3, 1), (2, 2), 1, (1, 1), Padding2d::default());
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        // y[i][j] = 1·x[i][j] + 2·x[i][j+1] + 3·x[i+1][j] + 4·x[i+1][j+1], plus the bias 0.5.
        let y = forward(&g, &x, &[1.0, 2.0, 3.0, 4.0], Some(&[0.5]));
        assert_eq!(y, [37.5, 47.5, 67.5, 77.5]);
    }

    #[test]
    fn same_conv_pads_with_zeros_and_keeps_the_size() {
        let g = geom(
            1,
            (3, 3, 1),
            (3, 3),
            1,
            (1, 1),
            Padding2d::same(3, 3, 3, 3, 1, 1),
        );
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        // An all-ones kernel sums each 3x3 neighbourhood that lies inside the image.
        let y = forward(&g, &x, &[1.0; 9], None);
        assert_eq!(y, [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]);
    }

    #[test]
    fn same_conv_at_stride_two_pads_only_after() {
        let pad = Padding2d::same(4, 4, 3, 3, 2, 2);
        assert_eq!(
            pad,
            Padding2d {
                top: 0,
                bottom: 1,
                left: 0,
                right: 1
            }
        );
        let g = geom(1, (4, 4, 1), (3, 3), 1, (2, 2), pad);
        let x: Vec<f64> = (1..=16).map(f64::from).collect();
        // Windows start at rows/cols 0 and 2; the second runs one past the edge.
        let y = forward(&g, &x, &[1.0; 9], None);
        assert_eq!(y, [54.0, 45.0, 72.0, 54.0]);
    }

    #[test]
    fn pointwise_conv_reads_the_kernel_as_hwio() {
        let g = geom(1, (1, 1, 2), (1, 1), 3, (1, 1), Padding2d::default());
        // w[ci][co]: y[co] = 1·w[0][co] + 10·w[1][co].
        let y = forward(&g, &[1.0, 10.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], None);
        assert_eq!(y, [41.0, 52.0, 63.0]);
    }

    fn check_gradients(g: Conv2dGeom, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let w = rng.vec(g.k_h * g.k_w * g.c_in * g.c_out, -1.0, 1.0);
        let b = rng.vec(g.c_out, -1.0, 1.0);
        let r = rng.vec(g.output_len(), -1.0, 1.0);
        assert_close(
            "forward",
            &forward(&g, &x, &w, Some(&b)),
            &direct(&g, &x, &w, Some(&b)),
            1e-12,
            1e-12,
        );

        let mut dx = vec![f64::NAN; x.len()];
        conv2d_backward_input(&g, &r, &w, &mut dx);
        assert_grad("dx", &x, &dx, |x| dot(&r, &forward(&g, x, &w, Some(&b))));

        let mut dw = vec![f64::NAN; w.len()];
        conv2d_backward_weight(&g, &x, &r, &mut dw);
        assert_grad("dw", &w, &dw, |w| dot(&r, &forward(&g, &x, w, Some(&b))));

        let mut db = vec![f64::NAN; b.len()];
        bias_backward(&r, g.c_out, &mut db);
        assert_grad("db", &b, &db, |b| dot(&r, &forward(&g, &x, &w, Some(b))));
    }

    #[test]
    fn gradients_match_finite_differences_for_odd_sizes_and_batch_one() {
        check_gradients(
            geom(1, (5, 7, 3), (3, 3), 5, (1, 1), Padding2d::default()),
            1,
        );
    }

    #[test]
    fn gradients_match_finite_differences_for_same_padding_at_stride_two() {
        let pad = Padding2d::same(7, 6, 3, 2, 2, 2);
        check_gradients(geom(3, (7, 6, 2), (3, 2), 3, (2, 2), pad), 2);
    }

    #[test]
    fn gradients_match_finite_differences_for_asymmetric_padding_and_wide_outputs() {
        let pad = Padding2d {
            top: 2,
            bottom: 0,
            left: 1,
            right: 2,
        };
        check_gradients(geom(2, (4, 5, 3), (3, 3), 37, (1, 2), pad), 3);
    }

    #[test]
    fn gradients_match_finite_differences_across_pixel_blocks() {
        // 2·9·9 = 162 output pixels: three blocks of the kernel gradient, the last one short.
        check_gradients(
            geom(2, (9, 9, 2), (1, 1), 3, (1, 1), Padding2d::default()),
            4,
        );
    }

    #[test]
    fn an_empty_input_leaves_only_the_bias() {
        let g = geom(1, (0, 2, 1), (1, 1), 2, (1, 1), Padding2d::symmetric(1));
        let y = forward(&g, &[], &[1.0, 1.0], Some(&[3.0, 4.0]));
        assert!(y.chunks_exact(2).all(|px| px == [3.0, 4.0]));
        let mut dx: Vec<f64> = vec![];
        conv2d_backward_input(&g, &y, &[1.0, 1.0], &mut dx);
        let mut dw = vec![f64::NAN; 2];
        conv2d_backward_weight(&g, &[], &y, &mut dw);
        assert_eq!(dw, [0.0, 0.0]);
    }

    prop_compose! {
        fn conv_geom()(
            n in 1usize..4, h in 1usize..9, w in 1usize..9, c_in in 1usize..6,
            k_h in 1usize..4, k_w in 1usize..4, c_out in 1usize..42,
            s_h in 1usize..4, s_w in 1usize..4,
            pad in (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        ) -> Option<Conv2dGeom> {
            let pad = Padding2d { top: pad.0, bottom: pad.1, left: pad.2, right: pad.3 };
            Conv2dGeom::new(n, (h, w, c_in), (k_h, k_w), c_out, (s_h, s_w), pad)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn forward_equals_the_direct_seven_loop_convolution(
            g in conv_geom(),
            seed in any::<u64>(),
        ) {
            let Some(g) = g else { return Ok(()) };
            let mut rng = Rng::new(seed);
            let x = rng.vec(g.input_len(), -1.0, 1.0);
            let w = rng.vec(g.k_h * g.k_w * g.c_in * g.c_out, -1.0, 1.0);
            let b = rng.vec(g.c_out, -1.0, 1.0);
            let expect = direct(&g, &x, &w, Some(&b));
            assert_close("y", &forward(&g, &x, &w, Some(&b)), &expect, 1e-12, 1e-12);
        }

        #[test]
        fn backward_input_is_the_adjoint_of_forward(g in conv_geom(), seed in any::<u64>()) {
            let Some(g) = g else { return Ok(()) };
            let mut rng = Rng::new(seed);
            let x = rng.vec(g.input_len(), -1.0, 1.0);
            let w = rng.vec(g.k_h * g.k_w * g.c_in * g.c_out, -1.0, 1.0);
            let dy = rng.vec(g.output_len(), -1.0, 1.0);
            let mut dx = vec![f64::NAN; x.len()];
            conv2d_backward_input(&g, &dy, &w, &mut dx);
            let lhs = dot(&direct(&g, &x, &w, None), &dy);
            assert_close("<conv(x), dy> vs <x, dx>", &[lhs], &[dot(&x, &dx)], 1e-12, 1e-12);
        }

        #[test]
        fn backward_weight_is_the_adjoint_of_forward_in_the_kernel(
            g in conv_geom(),
            seed in any::<u64>(),
        ) {
            let Some(g) = g else { return Ok(()) };
            let mut rng = Rng::new(seed);
            let x = rng.vec(g.input_len(), -1.0, 1.0);
            let w = rng.vec(g.k_h * g.k_w * g.c_in * g.c_out, -1.0, 1.0);
            let dy = rng.vec(g.output_len(), -1.0, 1.0);
            let mut dw = vec![f64::NAN; w.len()];
            conv2d_backward_weight(&g, &x, &dy, &mut dw);
            let lhs = dot(&direct(&g, &x, &w, None), &dy);
            assert_close("<conv_x(w), dy> vs <w, dw>", &[lhs], &[dot(&w, &dw)], 1e-12, 1e-12);
        }
    }
}
