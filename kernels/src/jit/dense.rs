//! Forward `Dense`: a register-blocked GEMM `y[n, d_out] = act(x[n, d_in] · w[d_in, d_out] +
//! bias)`, on the convolution's micro-kernel (`conv::tile`): a tile is 4 rows × 8 output
//! columns (8 `f32x4` accumulators), reduced over `d_in` with two weight vectors and a broadcast
//! of `x` per multiply-add — `w` is read in Keras's `[d_in, d_out]` order, no
//! repacking.
//!
//! Must not depend on anything of the `cnntui` crate.

use cranelift_codegen::ir::{InstBuilder, Value};

use super::conv::tile::{self as micro, Epilogue, Tile, channel_runs};
use super::{Emit, Jit, JitError};
use crate::reference::Activation;

/// Rows per tile.
const ROWS: usize = 4;

/// What one dense forward kernel computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DenseSpec {
    pub d_in: usize,
    pub d_out: usize,
    pub bias: bool,
    /// Linear, ReLU or ReLU6; the others are [`JitError::Unsupported`] (softmax belongs to
    /// the loss).
    pub activation: Activation,
}

/// How to call a kernel from [`emit_dense_forward`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenseKernel {
    /// Buffer names in call order: `x`, `w`, `bias` (when asked), `y`.
    pub buffers: Vec<&'static str>,
}

/// Emits the dense forward `spec` as kernel `name`.
///
/// # Buffers
/// `x`: `[n, d_in]`, `w`: `[d_in, d_out]`, `bias`: `[d_out]` (with `bias`), `y`: `[n, d_out]`,
/// all f32.
///
/// # Work items
/// One row (sample) per item; a call tiles its rows by 4 itself, so any split works. With
/// wide kernels the reduction is sliced and `y` holds partial sums between slices.
///
/// # Errors
/// [`JitError::Unsupported`] for zero sizes and activations other than Linear, ReLU, ReLU6.
pub fn emit_dense_forward(
    jit: &mut Jit,
    name: &str,
    spec: &DenseSpec,
) -> Result<DenseKernel, JitError> {
    if !micro::supported_activation(spec.activation) {
        return Err(JitError::Unsupported(format!(
            "dense {:?} epilogue",
            spec.activation
        )));
    }
    if spec.d_in == 0 || spec.d_out == 0 {
        return Err(JitError::Unsupported(format!("dense of {spec:?}")));
    }
    let mut buffers = vec!["x", "w"];
    if spec.bias {
        buffers.push("bias");
    }
    buffers.push("y");
    let y_buf = buffers.len() - 1;
    let epi = Epilogue {
        bias: spec.bias.then_some(2),
        scale_shift: None,
        activation: spec.activation,
        dead: None,
    };
    jit.define(name, |e| {
        let (start, end) = (e.start, e.end);
        let len = e.b.ins().isub(end, start);
        let tiles = e.b.ins().udiv_imm_u(len, ROWS as i64);
        let zero = e.iconst(0);
        e.for_range(zero, tiles, 1, |e, t| {
            let row = e.b.ins().imul_imm_s(t, ROWS as i64);
            let row = e.b.ins().iadd(start, row);
            k_slices(e, spec, &epi, y_buf, row, ROWS)
        })?;
        let first = e.b.ins().imul_imm_s(tiles, ROWS as i64);
        let first = e.b.ins().iadd(start, first);
        e.for_range(first, end, 1, |e, row| {
            k_slices(e, spec, &epi, y_buf, row, 1)
        })
    })?;
    Ok(DenseKernel { buffers })
}

/// Bytes of kernel rows one reduction slice may touch: small enough to stay in L2 while every
/// output-column block walks them, so each kernel cache line (and page) is used fully
/// before it is evicted — with wide outputs (`d_out = 4096`: 16 KiB per row) a whole-`d_in`
/// walk per column block would touch a new page at every step.
const SLICE_BYTES: usize = 256 * 1024;

/// A slice `[k0, k0 + len)` of the reduction: the first starts from zero, the others from
/// the partial sums in `y`; the last applies the epilogue, the others store raw sums.
#[derive(Clone, Copy)]
struct KSlice {
    k0: Value,
    len: usize,
    first: bool,
    last: bool,
}

/// Rows `row..row + count`, the reduction split into [`KSlice`]s when the kernel is wide.
fn k_slices(
    e: &mut Emit<'_, '_>,
    spec: &DenseSpec,
    epi: &Epilogue,
    y_buf: usize,
    row: Value,
    count: usize,
) -> Result<(), JitError> {
    let d_in = spec.d_in;
    let block = (SLICE_BYTES / (spec.d_out * 4)).max(16) / 4 * 4;
    let zero = e.iconst(0);
    if block >= d_in {
        let all = KSlice {
            k0: zero,
            len: d_in,
            first: true,
            last: true,
        };
        return rows(e, spec, epi, y_buf, row, count, all);
    }
    let first = KSlice {
        k0: zero,
        len: block,
        first: true,
        last: false,
    };
    rows(e, spec, epi, y_buf, row, count, first)?;
    // Middle slices run in a loop; the last (possibly short) one is emitted after it.
    let mid_end = if d_in.is_multiple_of(block) {
        d_in - block
    } else {
        d_in / block * block
    };
    if mid_end > block {
        let s = e.iconst(block as i64);
        let t = e.iconst(mid_end as i64);
        e.for_range(s, t, block as i64, |e, k0| {
            let mid = KSlice {
                k0,
                len: block,
                first: false,
                last: false,
            };
            rows(e, spec, epi, y_buf, row, count, mid)
        })?;
    }
    let k0 = e.iconst(mid_end as i64);
    let last = KSlice {
        k0,
        len: d_in - mid_end,
        first: false,
        last: true,
    };
    rows(e, spec, epi, y_buf, row, count, last)
}

/// Rows `row..row + count` of `y`, every output column, over one slice of the reduction.
fn rows(
    e: &mut Emit<'_, '_>,
    spec: &DenseSpec,
    epi: &Epilogue,
    y_buf: usize,
    row: Value,
    count: usize,
    ks: KSlice,
) -> Result<(), JitError> {
    for run in channel_runs(spec.d_out, true) {
        let body = |e: &mut Emit<'_, '_>, co: Value| {
            let mut r = 0;
            while r < count {
                let pixels = run.group.pixels.min(count - r);
                tile(e, spec, epi, y_buf, row, r, pixels, run.group, co, ks);
                r += pixels;
            }
            Ok(())
        };
        if run.count == 1 {
            let co = e.iconst(run.start as i64);
            body(e, co)?;
        } else {
            let s = e.iconst(run.start as i64);
            let t = e.iconst((run.start + run.count * run.group.width) as i64);
            e.for_range(s, t, run.group.width as i64, body)?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn tile(
    e: &mut Emit<'_, '_>,
    spec: &DenseSpec,
    epi: &Epilogue,
    y_buf: usize,
    row: Value,
    r: usize,
    pixels: usize,
    group: micro::Group,
    co: Value,
    ks: KSlice,
) {
    let (d_in, d_out) = (spec.d_in, spec.d_out);
    let y = e.buffer(y_buf);
    let y = e.addr(y, row, (d_out * 4) as i64);
    let y = e.b.ins().iadd_imm_s(y, (r * d_out * 4) as i64);
    let y = e.addr(y, co, 4);
    let y_px = (d_out * 4) as i32;
    let t = if ks.first {
        Tile::zeroed(e, group, pixels)
    } else {
        Tile::loaded(e, group, pixels, y, y_px)
    };
    let x = e.buffer(0);
    let x = e.addr(x, row, (d_in * 4) as i64);
    let x = e.b.ins().iadd_imm_s(x, (r * d_in * 4) as i64);
    let x = e.addr(x, ks.k0, 4);
    let w = e.buffer(1);
    let w = e.addr(w, co, 4);
    let w = e.addr(w, ks.k0, (d_out * 4) as i64);
    t.reduce(e, x, (d_in * 4) as i32, w, (d_out * 4) as i32, ks.len);
    if ks.last {
        epi.emit(e, &t, co, y, y_px, None);
    } else {
        t.store(e, y, y_px);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::jit::conv::tests::{Guarded, Rng, assert_close, run_split};
    use crate::reference;

    fn check(n: usize, spec: DenseSpec, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(n * spec.d_in, -1.0, 1.0);
        let w = rng.vec(spec.d_in * spec.d_out, -1.0, 1.0);
        let b = rng.vec(spec.d_out, -1.0, 1.0);
        let mut jit = Jit::new().expect("JIT");
        let k = emit_dense_forward(&mut jit, "dense_under_test", &spec).expect("emits");
        let kernel = jit.finish().expect("compiles").remove(0);
        let mut bufs: Vec<Guarded> = k
            .buffers
            .iter()
            .map(|name| match *name {
                "x" => Guarded::input(&x),
                "w" => Guarded::input(&w),
                "bias" => Guarded::input(&b),
                _ => Guarded::output(n * spec.d_out),
            })
            .collect();
        run_split(&kernel, &k.buffers, &mut bufs, n);
        let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let mut want = vec![0.0; n * spec.d_out];
        let bias = f(&b);
        reference::dense_forward(
            n,
            spec.d_in,
            spec.d_out,
            &f(&x),
            &f(&w),
            spec.bias.then_some(&bias[..]),
            &mut want,
        );
        reference::activation_in_place(spec.activation, spec.d_out, &mut want);
        let got = bufs.last().expect("y").f32s();
        assert_close("dense y", &got, &want, 1e-5, 2e-6 * spec.d_in as f64 + 1e-6);
    }

    #[test]
    fn mnist_dense_layers_match_the_reference() {
        let relu = DenseSpec {
            d_in: 576,
            d_out: 64,
            bias: true,
            activation: Activation::ReLU,
        };
        check(64, relu, 1);
        let logits = DenseSpec {
            d_in: 64,
            d_out: 10,
            bias: true,
            activation: Activation::Linear,
        };
        check(7, logits, 2);
    }

    #[test]
    fn wide_layers_slice_the_reduction_and_match_the_reference() {
        // d_out = 2048: 8 KiB kernel rows, slices of 32 rows; d_in leaves a short last slice
        // and, at 64, no middle slices.
        for (n, d_in, seed) in [(5, 150, 3), (2, 70, 4), (3, 64, 5)] {
            let spec = DenseSpec {
                d_in,
                d_out: 2048,
                bias: true,
                activation: Activation::ReLU6,
            };
            check(n, spec, seed);
        }
    }

    #[test]
    fn softmax_and_sigmoid_are_unsupported() {
        for activation in [Activation::Softmax, Activation::Sigmoid] {
            let mut jit = Jit::new().expect("JIT");
            let spec = DenseSpec {
                d_in: 4,
                d_out: 4,
                bias: true,
                activation,
            };
            assert!(matches!(
                emit_dense_forward(&mut jit, "d", &spec),
                Err(JitError::Unsupported(_))
            ));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn dense_matches_the_reference_over_random_shapes(
            n in 1usize..13, d_in in 1usize..40, d_out in 1usize..30, bias in any::<bool>(),
            activation in prop::sample::select(vec![
                Activation::Linear, Activation::ReLU, Activation::ReLU6,
            ]),
            seed in any::<u64>(),
        ) {
            check(n, DenseSpec { d_in, d_out, bias, activation }, seed);
        }
    }
}
