//! The one hot loop of the reference backend: a row vector times a row-major matrix, added into
//! an accumulator row. Convolutions (through im2col rows) and dense layers, forward and backward,
//! are all written as calls to [`gemv`].
//!
//! The accumulator is processed in column tiles held in a fixed-size array for the whole
//! reduction, so LLVM keeps it in vector registers (no store and reload per step) and the
//! innermost loop is a contiguous, fully unrolled multiply-add over the tile's columns. Tiles are
//! wide enough for eight independent vector chains, which hides the add latency.

use super::Real;

/// `acc[j] += Σ_k a[k] · b[k·acc.len() + j]`.
///
/// # Shapes
/// - `acc`: `[n]`, `a`: `[k]`, `b`: `[k, n]` row-major
pub(crate) fn gemv<T: Real>(acc: &mut [T], a: &[T], b: &[T]) {
    let n = acc.len();
    assert_eq!(b.len(), a.len() * n, "gemv: b must be [a.len(), acc.len()]");
    if n == 0 || a.is_empty() {
        return;
    }
    // 32 f32 or 16 f64 columns: eight 128-bit accumulators either way.
    if size_of::<T>() <= 4 {
        gemv_tiled::<T, 32>(acc, a, b);
    } else {
        gemv_tiled::<T, 16>(acc, a, b);
    }
}

fn gemv_tiled<T: Real, const W: usize>(acc: &mut [T], a: &[T], b: &[T]) {
    let n = acc.len();
    let wide = n - n % W;
    let narrow = wide + (n - wide) / 4 * 4;
    for (t, acc_t) in acc[..wide].chunks_exact_mut(W).enumerate() {
        tile::<T, W>(acc_t, a, b, n, t * W);
    }
    for (t, acc_t) in acc[wide..narrow].chunks_exact_mut(4).enumerate() {
        tile::<T, 4>(acc_t, a, b, n, wide + t * 4);
    }
    for (t, acc_t) in acc[narrow..].chunks_exact_mut(1).enumerate() {
        tile::<T, 1>(acc_t, a, b, n, narrow + t);
    }
}

/// Columns `j0..j0 + W` of the product, accumulated in registers.
#[inline(always)]
fn tile<T: Real, const W: usize>(acc: &mut [T], a: &[T], b: &[T], n: usize, j0: usize) {
    let mut r = [T::zero(); W];
    r.copy_from_slice(acc);
    for (&ak, row) in a.iter().zip(b.chunks_exact(n)) {
        let bt = &row[j0..j0 + W];
        for (rj, &bj) in r.iter_mut().zip(bt) {
            *rj += ak * bj;
        }
    }
    acc.copy_from_slice(&r);
}

/// `out = m^T` for a row-major `[rows, cols]` matrix `m`.
pub(crate) fn transpose<T: Real>(rows: usize, cols: usize, m: &[T], out: &mut [T]) {
    assert_eq!(m.len(), rows * cols);
    assert_eq!(out.len(), rows * cols);
    if rows == 0 || cols == 0 {
        return;
    }
    for (r, row) in m.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Rng;
    use super::*;

    #[test]
    fn gemv_matches_naive_product_for_every_tail_width() {
        let mut rng = Rng::new(7);
        for n in [1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 40, 64, 70] {
            for k in [1, 2, 9] {
                let a = rng.vec(k, -1.0, 1.0);
                let b = rng.vec(k * n, -1.0, 1.0);
                let init = rng.vec(n, -1.0, 1.0);
                let mut acc = init.clone();
                gemv(&mut acc, &a, &b);
                for j in 0..n {
                    let expect = init[j] + (0..k).map(|i| a[i] * b[i * n + j]).sum::<f64>();
                    assert!((acc[j] - expect).abs() < 1e-12, "n {n} k {k} j {j}");
                }
                let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
                let mut acc32: Vec<f32> = init.iter().map(|&v| v as f32).collect();
                gemv(&mut acc32, &a32, &b32);
                for (x, y) in acc32.iter().zip(&acc) {
                    assert!((f64::from(*x) - y).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut t = [0.0; 6];
        transpose(2, 3, &m, &mut t);
        assert_eq!(t, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
