//! The im2col baseline: convolutions as one im2col buffer per sample and `ndarray`'s GEMM
//! (`general_mat_mul`, which uses AVX through `matrixmultiply`), rayon over the batch. It is
//! what `cnntui bench --baselines` compares the JIT with — the honest way most frameworks
//! without a direct-convolution kernel do it — and is tested against the reference kernels.

use cnntui_kernels::Conv2dGeom;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// Rows of the im2col matrix are output pixels; columns are `(kh, kw, ci)`, matching an HWIO
/// kernel reshaped to `[k_h * k_w * c_in, c_out]`.
fn im2col(g: &Conv2dGeom, x: &[f32], col: &mut [f32]) {
    let patch = g.k_h * g.k_w * g.c_in;
    for oh in 0..g.out_h {
        for ow in 0..g.out_w {
            let row = &mut col[(oh * g.out_w + ow) * patch..][..patch];
            for kh in 0..g.k_h {
                let ih = (oh * g.stride_h + kh) as isize - g.pad.top as isize;
                for kw in 0..g.k_w {
                    let iw = (ow * g.stride_w + kw) as isize - g.pad.left as isize;
                    let dst = &mut row[(kh * g.k_w + kw) * g.c_in..][..g.c_in];
                    if ih < 0 || iw < 0 || ih as usize >= g.h || iw as usize >= g.w {
                        dst.fill(0.0);
                    } else {
                        dst.copy_from_slice(
                            &x[(ih as usize * g.w + iw as usize) * g.c_in..][..g.c_in],
                        );
                    }
                }
            }
        }
    }
}

/// Adds the columns back into the image they came from (the adjoint of [`im2col`]).
fn col2im(g: &Conv2dGeom, col: &[f32], dx: &mut [f32]) {
    dx.fill(0.0);
    let patch = g.k_h * g.k_w * g.c_in;
    for oh in 0..g.out_h {
        for ow in 0..g.out_w {
            let row = &col[(oh * g.out_w + ow) * patch..][..patch];
            for kh in 0..g.k_h {
                let ih = (oh * g.stride_h + kh) as isize - g.pad.top as isize;
                for kw in 0..g.k_w {
                    let iw = (ow * g.stride_w + kw) as isize - g.pad.left as isize;
                    if ih < 0 || iw < 0 || ih as usize >= g.h || iw as usize >= g.w {
                        continue;
                    }
                    let src = &row[(kh * g.k_w + kw) * g.c_in..][..g.c_in];
                    let dst = &mut dx[(ih as usize * g.w + iw as usize) * g.c_in..][..g.c_in];
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                }
            }
        }
    }
}

fn view(data: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), data).unwrap_or_else(|_| {
        panic!(
            "a {rows}×{cols} matrix needs {} values, got {}",
            rows * cols,
            data.len()
        )
    })
}

fn view_mut(data: &mut [f32], rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    let len = data.len();
    ArrayViewMut2::from_shape((rows, cols), data).unwrap_or_else(|_| {
        panic!(
            "a {rows}×{cols} matrix needs {} values, got {len}",
            rows * cols
        )
    })
}

fn add_bias(y: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        y.chunks_exact_mut(b.len())
            .for_each(|row| row.iter_mut().zip(b).for_each(|(y, b)| *y += b));
    }
}

/// `Conv2D` forward over the batch of `g`.
pub fn conv_forward(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (pixels, patch) = (g.out_h * g.out_w, g.k_h * g.k_w * g.c_in);
    let wv = view(w, patch, g.c_out);
    y[..g.n * pixels * g.c_out]
        .par_chunks_mut(pixels * g.c_out)
        .zip(x.par_chunks(g.h * g.w * g.c_in))
        .for_each_init(
            || vec![0.0; pixels * patch],
            |col, (ys, xs)| {
                im2col(g, xs, col);
                general_mat_mul(
                    1.0,
                    &view(col, pixels, patch),
                    &wv,
                    0.0,
                    &mut view_mut(ys, pixels, g.c_out),
                );
                add_bias(ys, bias);
            },
        );
}

/// `Conv2D` input gradient: `dcol = dy · wᵀ`, then col2im.
pub fn conv_backward_input(g: &Conv2dGeom, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let (pixels, patch) = (g.out_h * g.out_w, g.k_h * g.k_w * g.c_in);
    let wt = view(w, patch, g.c_out).reversed_axes();
    dx[..g.n * g.h * g.w * g.c_in]
        .par_chunks_mut(g.h * g.w * g.c_in)
        .zip(dy.par_chunks(pixels * g.c_out))
        .for_each_init(
            || vec![0.0; pixels * patch],
            |col, (dxs, dys)| {
                general_mat_mul(
                    1.0,
                    &view(dys, pixels, g.c_out),
                    &wt,
                    0.0,
                    &mut view_mut(col, pixels, patch),
                );
                col2im(g, col, dxs);
            },
        );
}

/// `Conv2D` weight gradient `Σ colᵀ · dy` over the batch (overwrites `dw`); partial sums are
/// added in batch order, so the result does not depend on scheduling.
pub fn conv_backward_weight(g: &Conv2dGeom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (pixels, patch) = (g.out_h * g.out_w, g.k_h * g.k_w * g.c_in);
    let chunk = g.n.div_ceil(rayon::current_num_threads()).max(1);
    let parts: Vec<Vec<f32>> = x[..g.n * g.h * g.w * g.c_in]
        .par_chunks(chunk * g.h * g.w * g.c_in)
        .zip(dy.par_chunks(chunk * pixels * g.c_out))
        .map(|(xc, dc)| {
            let mut part = vec![0.0; patch * g.c_out];
            let mut col = vec![0.0; pixels * patch];
            for (xs, ds) in xc
                .chunks_exact(g.h * g.w * g.c_in)
                .zip(dc.chunks_exact(pixels * g.c_out))
            {
                im2col(g, xs, &mut col);
                general_mat_mul(
                    1.0,
                    &view(&col, pixels, patch).reversed_axes(),
                    &view(ds, pixels, g.c_out),
                    1.0,
                    &mut view_mut(&mut part, patch, g.c_out),
                );
            }
            part
        })
        .collect();
    dw.fill(0.0);
    for part in parts {
        dw.iter_mut().zip(&part).for_each(|(d, p)| *d += p);
    }
}

/// Splits `n` rows into one contiguous chunk per thread.
fn row_chunk(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads()).max(1)
}

/// `Dense` forward `y = x · w + b`.
pub fn dense_forward(
    n: usize,
    d_in: usize,
    d_out: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let wv = view(w, d_in, d_out);
    let rows = row_chunk(n);
    y[..n * d_out]
        .par_chunks_mut(rows * d_out)
        .zip(x[..n * d_in].par_chunks(rows * d_in))
        .for_each(|(yc, xc)| {
            let m = xc.len() / d_in;
            general_mat_mul(
                1.0,
                &view(xc, m, d_in),
                &wv,
                0.0,
                &mut view_mut(yc, m, d_out),
            );
            add_bias(yc, bias);
        });
}

/// `Dense` input gradient `dx = dy · wᵀ`.
pub fn dense_backward_input(
    n: usize,
    d_in: usize,
    d_out: usize,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    let wt = view(w, d_in, d_out).reversed_axes();
    let rows = row_chunk(n);
    dx[..n * d_in]
        .par_chunks_mut(rows * d_in)
        .zip(dy[..n * d_out].par_chunks(rows * d_out))
        .for_each(|(xc, dc)| {
            let m = xc.len() / d_in;
            general_mat_mul(
                1.0,
                &view(dc, m, d_out),
                &wt,
                0.0,
                &mut view_mut(xc, m, d_in),
            );
        });
}

/// `Dense` weight gradient `dw = xᵀ · dy` (overwrites `dw`).
pub fn dense_backward_weight(
    n: usize,
    d_in: usize,
    d_out: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) {
    general_mat_mul(
        1.0,
        &view(&x[..n * d_in], n, d_in).reversed_axes(),
        &view(&dy[..n * d_out], n, d_out),
        0.0,
        &mut view_mut(dw, d_in, d_out),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnntui_kernels::reference as k;
    use cnntui_kernels::{Conv2dGeom, Padding2d};

    fn close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{x} vs {y}");
        }
    }

    #[test]
    fn im2col_convolution_matches_the_reference_forward_and_backward() {
        let pad = Padding2d::same(7, 6, 3, 3, 2, 2);
        let g = Conv2dGeom::new(3, (7, 6, 5), (3, 3), 6, (2, 2), pad).unwrap();
        let val = |i: usize| ((i * 7919 % 97) as f32 / 97.0) - 0.5;
        let x: Vec<f32> = (0..g.input_len()).map(val).collect();
        let w: Vec<f32> = (0..9 * 5 * 6).map(|i| val(i + 3)).collect();
        let b: Vec<f32> = (0..6).map(|i| val(i + 11)).collect();
        let dy: Vec<f32> = (0..g.output_len()).map(|i| val(i + 5)).collect();
        let (mut y1, mut y2) = (vec![0.0; g.output_len()], vec![0.0; g.output_len()]);
        k::conv2d_forward(&g, &x, &w, Some(&b), &mut y1);
        conv_forward(&g, &x, &w, Some(&b), &mut y2);
        close(&y1, &y2);
        let (mut dx1, mut dx2) = (vec![0.0; x.len()], vec![1.0; x.len()]);
        k::conv2d_backward_input(&g, &dy, &w, &mut dx1);
        conv_backward_input(&g, &dy, &w, &mut dx2);
        close(&dx1, &dx2);
        let (mut dw1, mut dw2) = (vec![0.0; w.len()], vec![1.0; w.len()]);
        k::conv2d_backward_weight(&g, &x, &dy, &mut dw1);
        conv_backward_weight(&g, &x, &dy, &mut dw2);
        close(&dw1, &dw2);
    }

    #[test]
    fn gemm_dense_matches_the_reference() {
        let (n, d_in, d_out) = (5, 7, 3);
        let val = |i: usize| ((i * 31 % 17) as f32 / 17.0) - 0.5;
        let x: Vec<f32> = (0..n * d_in).map(val).collect();
        let w: Vec<f32> = (0..d_in * d_out).map(|i| val(i + 1)).collect();
        let dy: Vec<f32> = (0..n * d_out).map(|i| val(i + 2)).collect();
        let (mut a, mut b) = (vec![0.0; n * d_out], vec![0.0; n * d_out]);
        k::dense_forward(n, d_in, d_out, &x, &w, None, &mut a);
        dense_forward(n, d_in, d_out, &x, &w, None, &mut b);
        close(&a, &b);
        let (mut a, mut b) = (vec![0.0; n * d_in], vec![0.0; n * d_in]);
        k::dense_backward_input(n, d_in, d_out, &dy, &w, &mut a);
        dense_backward_input(n, d_in, d_out, &dy, &w, &mut b);
        close(&a, &b);
        let (mut a, mut b) = (vec![0.0; d_in * d_out], vec![0.0; d_in * d_out]);
        k::dense_backward_weight(n, d_in, d_out, &x, &dy, &mut a);
        dense_backward_weight(n, d_in, d_out, &x, &dy, &mut b);
        close(&a, &b);
    }
}
