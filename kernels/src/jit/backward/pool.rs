//! Pooling backward: max-pool through the recorded argmax, the fused ReLU + max-pool backward
//! of the forward's fused convolution kernel, average pool, and global average pool.
//!
//! Every kernel here owns one sample per work item: it overwrites the sample's whole input
//! gradient, so items write disjoint regions and windows that overlap or share a winner
//! accumulate within one item. The argmax backward has two forms: with non-overlapping
//! windows and no padding (stride = window, the usual `MaxPooling2D`) every input vector is
//! computed directly by comparing the window's argmax with its index (no zeroing pass, no
//! branches); otherwise the sample is zeroed and each `dy` scattered to its winner.
//!
//! Must not depend on anything of the `cnntui` crate.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};

use super::{c64, for_strided, for_vectors};
use crate::geom::{Padding2d, Pool2dGeom};
use crate::jit::builder::F32X4;
use crate::jit::{Emit, Jit, JitError};
use crate::reference::Activation;

/// What an argmax entry indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgmaxIndex {
    /// A flat element index into the input-gradient buffer as passed to the kernel
    /// (`reference::max_pool_forward` and the standalone JIT pool on the whole batch).
    Buffer,
    /// A flat element index into the sample's own `[h, w, c]` tensor (the fused convolution
    /// kernel's argmax into its pre-pool activation).
    Sample,
}

fn check(g: &Pool2dGeom) -> Result<(), JitError> {
    let dims = [g.n, g.h, g.w, g.c, g.k_h, g.k_w, g.out_h, g.out_w];
    if dims.contains(&0) || g.h * g.w * g.c >= u32::MAX as usize {
        return Err(JitError::Unsupported(format!(
            "pool backward geometry {g:?}"
        )));
    }
    Ok(())
}

/// Emits the max-pool input gradient: `dx` zeroed, then each `dy` added at its argmax
/// (entries `u32::MAX`, windows wholly in padding, are skipped). Returns the number of work
/// items, `n`.
///
/// # Buffers
/// `argmax`: `[n, out_h, out_w, c]` u32 (see [`ArgmaxIndex`]); `dy`: `[n, out_h, out_w, c]`;
/// `dx`: `[n, h, w, c]`, overwritten.
///
/// # Work items
/// One sample per item.
///
/// # Errors
/// [`JitError::Unsupported`] for zero-sized geometries; [`JitError::Codegen`].
pub fn emit_max_pool_backward(
    jit: &mut Jit,
    name: &str,
    g: &Pool2dGeom,
    index: ArgmaxIndex,
) -> Result<usize, JitError> {
    emit_scatter(jit, name, g, index, None)
}

/// Emits the backward of the fused convolution → activation → max-pool epilogue: the
/// gradient `dz` of the pre-activation, zero except at each window's argmax, where it is
/// `dy · act'(y)` computed from the pooled output `y` (ReLU: `y > 0`; ReLU6: `0 < y < 6`;
/// Linear: 1) — the activation is monotone, so the pooled output is the activation of the
/// winner. Shared winners accumulate. Returns the number of work items, `n`.
///
/// # Buffers
/// `argmax`: `[n, out_h, out_w, c]` u32, per-sample indices ([`ArgmaxIndex::Sample`], what
/// the fused forward records); `y`, `dy`: `[n, out_h, out_w, c]`; `dz`: `[n, h, w, c]` (the
/// convolution's output shape), overwritten.
///
/// # Work items
/// One sample per item.
///
/// # Errors
/// [`JitError::Unsupported`] for activations other than ReLU, ReLU6 and Linear, and zero-sized
/// geometries; [`JitError::Codegen`].
pub fn emit_pool_relu_backward(
    jit: &mut Jit,
    name: &str,
    g: &Pool2dGeom,
    act: Activation,
) -> Result<usize, JitError> {
    if !matches!(
        act,
        Activation::ReLU | Activation::ReLU6 | Activation::Linear
    ) {
        return Err(JitError::Unsupported(format!(
            "fused pool backward of {act:?}"
        )));
    }
    emit_scatter(jit, name, g, ArgmaxIndex::Sample, Some(act))
}

fn emit_scatter(
    jit: &mut Jit,
    name: &str,
    g: &Pool2dGeom,
    index: ArgmaxIndex,
    act: Option<Activation>,
) -> Result<usize, JitError> {
    check(g)?;
    let g = *g;
    if g.stride_h == g.k_h && g.stride_w == g.k_w && g.pad == Padding2d::default() {
        return emit_tiled(jit, name, &g, index, act);
    }
    let in_len = g.h * g.w * g.c;
    let out_len = g.out_h * g.out_w * g.c;
    jit.define(name, |e| {
        let arg = e.buffer(0);
        let y = act.map(|_| e.buffer(1));
        let shift = usize::from(act.is_some());
        let (dy, dx) = (e.buffer(1 + shift), e.buffer(2 + shift));
        let mut u32_flags = MemFlagsData::new();
        let _ = u32_flags.set_by_name("notrap");
        e.for_items(|e, s| {
            let dx_img = e.addr(dx, s, (in_len * 4) as i64);
            let zero = e.splat(0.0);
            for_vectors(e, in_len, &[dx_img], |e, p, lanes| {
                e.store_partial(zero, p[0], 0, lanes);
                Ok(())
            })?;
            let base = match index {
                ArgmaxIndex::Buffer => dx,
                ArgmaxIndex::Sample => dx_img,
            };
            let off = e.b.ins().imul_imm_s(s, (out_len * 4) as i64);
            let mut bases = vec![(e.b.ins().iadd(arg, off), 4), (e.b.ins().iadd(dy, off), 4)];
            if let Some(y) = y {
                bases.push((e.b.ins().iadd(y, off), 4));
            }
            let (z, m) = (c64(e, 0), c64(e, out_len));
            for_strided(e, z, m, &bases, |e, p| {
                let a = e.b.ins().uload32(u32_flags, p[0], 0);
                let some = e.b.ins().icmp_imm_s(IntCC::NotEqual, a, u32::MAX as i64);
                e.if_then(some, |e| {
                    let mut d = e.load_f32(p[1], 0);
                    if let Some(act) = act {
                        d = gate(e, act, p[2], d);
                    }
                    let t = e.addr(base, a, 4);
                    let old = e.load_f32(t, 0);
                    let new = e.b.ins().fadd(old, d);
                    e.store(new, t, 0);
                    Ok(())
                })
            })
        })
    })?;
    Ok(g.n)
}

/// Non-overlapping windows without padding (stride = window, the usual `MaxPooling2D`): every
/// input position lies in at most one window, so each `dx` vector is computed directly —
/// the window's gated `dy` where the argmax equals the position's index, else 0 — with no
/// zeroing pass and no branches. Positions past the last whole window are zeroed.
fn emit_tiled(
    jit: &mut Jit,
    name: &str,
    g: &Pool2dGeom,
    index: ArgmaxIndex,
    act: Option<Activation>,
) -> Result<usize, JitError> {
    let g = *g;
    let c = g.c;
    let in_len = g.h * g.w * c;
    let out_len = g.out_h * g.out_w * c;
    let (cov_h, cov_w) = (g.out_h * g.k_h, g.out_w * g.k_w);
    jit.define(name, |e| {
        let arg = e.buffer(0);
        let y = act.map(|_| e.buffer(1));
        let shift = usize::from(act.is_some());
        let (dy, dx) = (e.buffer(1 + shift), e.buffer(2 + shift));
        let zero = e.splat(0.0);
        let mut iota = e.b.ins().iconst(types::I32, 0);
        iota = e.b.ins().splat(types::I32X4, iota);
        for lane in 1..4u8 {
            let v = e.b.ins().iconst(types::I32, i64::from(lane));
            iota = e.b.ins().insertlane(iota, v, lane);
        }
        e.for_items(|e, s| {
            let dx_img = e.addr(dx, s, (in_len * 4) as i64);
            let base = match index {
                ArgmaxIndex::Buffer => e.b.ins().imul_imm_s(s, in_len as i64),
                ArgmaxIndex::Sample => c64(e, 0),
            };
            let base = e.b.ins().ireduce(types::I32, base);
            let off = e.b.ins().imul_imm_s(s, (out_len * 4) as i64);
            let (arg_s, dy_s) = (e.b.ins().iadd(arg, off), e.b.ins().iadd(dy, off));
            let y_s = y.map(|y| e.b.ins().iadd(y, off));
            let (z, oh_n) = (c64(e, 0), c64(e, g.out_h));
            e.for_range(z, oh_n, 1, |e, oh| {
                let ow_n = c64(e, g.out_w);
                e.for_range(z, ow_n, 1, |e, ow| {
                    let p = e.b.ins().imul_imm_s(oh, g.out_w as i64);
                    let p = e.b.ins().iadd(p, ow);
                    let p = e.b.ins().imul_imm_s(p, (c * 4) as i64);
                    let (a_px, d_px) = (e.b.ins().iadd(arg_s, p), e.b.ins().iadd(dy_s, p));
                    let y_px = y_s.map(|y| e.b.ins().iadd(y, p));
                    // Flat index of window tap (0, 0), channel 0.
                    let q0 = e.b.ins().imul_imm_s(oh, (g.k_h * g.w) as i64);
                    let t = e.b.ins().imul_imm_s(ow, g.k_w as i64);
                    let q0 = e.b.ins().iadd(q0, t);
                    let q0 = e.b.ins().imul_imm_s(q0, c as i64);
                    let q0_32 = e.b.ins().ireduce(types::I32, q0);
                    let q0_32 = e.b.ins().iadd(q0_32, base);
                    let dx_q0 = e.addr(dx_img, q0, 4);
                    let mut ptrs = vec![a_px, d_px, dx_q0];
                    ptrs.extend(y_px);
                    for_vectors(e, c, &ptrs, |e, v, lanes| {
                        let a = e.load_partial(v[0], 0, lanes);
                        let mut little = MemFlagsData::new();
                        let _ = little.set_by_name("little");
                        let a = e.b.ins().bitcast(types::I32X4, little, a);
                        let mut d = e.load_partial(v[1], 0, lanes);
                        if let (Some(act), Some(&yp)) = (act, v.get(3)) {
                            d = gate_vec(e, act, yp, d, lanes);
                        }
                        // The channel offset of this vector, from the moving pointer.
                        let ch = e.b.ins().isub(v[1], d_px);
                        let ch = e.b.ins().ushr_imm_s(ch, 2);
                        let ch = e.b.ins().ireduce(types::I32, ch);
                        for kh in 0..g.k_h {
                            for kw in 0..g.k_w {
                                let tap = ((kh * g.w + kw) * c) as i64;
                                let idx = e.b.ins().iadd_imm_s(q0_32, tap);
                                let idx = e.b.ins().iadd(idx, ch);
                                let idx = e.b.ins().splat(types::I32X4, idx);
                                let idx = e.b.ins().iadd(idx, iota);
                                let hit = e.b.ins().icmp(IntCC::Equal, a, idx);
                                let hit = e.b.ins().bitcast(F32X4, little, hit);
                                let out = e.b.ins().bitselect(hit, d, zero);
                                e.store_partial(out, v[2], (tap * 4) as i32, lanes);
                            }
                        }
                        Ok(())
                    })
                })
            })?;
            // Rows and columns no whole window covers.
            for ih in 0..g.h {
                let cols = if ih >= cov_h { 0..g.w } else { cov_w..g.w };
                if cols.is_empty() {
                    continue;
                }
                let start =
                    e.b.ins()
                        .iadd_imm_s(dx_img, (((ih * g.w) + cols.start) * c * 4) as i64);
                for_vectors(e, cols.len() * c, &[start], |e, v, lanes| {
                    e.store_partial(zero, v[0], 0, lanes);
                    Ok(())
                })?;
            }
            Ok(())
        })
    })?;
    Ok(g.n)
}

/// `d` lane-wise where the activation's derivative at the outputs `*y_ptr` is 1, else 0.
fn gate_vec(e: &mut Emit<'_, '_>, act: Activation, y_ptr: Value, d: Value, lanes: usize) -> Value {
    let y = e.load_partial(y_ptr, 0, lanes);
    let zero = e.splat(0.0);
    let on = match act {
        Activation::ReLU => e.mask(FloatCC::GreaterThan, y, zero),
        Activation::ReLU6 => {
            let six = e.splat(6.0);
            let above = e.mask(FloatCC::GreaterThan, y, zero);
            let below = e.mask(FloatCC::LessThan, y, six);
            e.b.ins().band(above, below)
        }
        _ => return d,
    };
    e.b.ins().bitselect(on, d, zero)
}

/// `d` where the activation's derivative at output `*y_ptr` is 1, else 0.
fn gate(e: &mut Emit<'_, '_>, act: Activation, y_ptr: Value, d: Value) -> Value {
    let y = e.load_f32(y_ptr, 0);
    let zero = e.f32const(0.0);
    let on = match act {
        Activation::ReLU => e.b.ins().fcmp(FloatCC::GreaterThan, y, zero),
        Activation::ReLU6 => {
            let six = e.f32const(6.0);
            let above = e.b.ins().fcmp(FloatCC::GreaterThan, y, zero);
            let below = e.b.ins().fcmp(FloatCC::LessThan, y, six);
            e.b.ins().band(above, below)
        }
        _ => return d,
    };
    e.b.ins().select(on, d, zero)
}

/// Emits the average-pool input gradient: each `dy` spread evenly over the input positions
/// its window counted (padding excluded, as Keras). Returns the number of work items, `n`.
///
/// # Buffers
/// `dy`: `[n, out_h, out_w, c]`; `dx`: `[n, h, w, c]`, overwritten.
///
/// # Work items
/// One sample per item.
///
/// # Errors
/// [`JitError::Unsupported`] for zero-sized geometries; [`JitError::Codegen`].
pub fn emit_avg_pool_backward(
    jit: &mut Jit,
    name: &str,
    g: &Pool2dGeom,
) -> Result<usize, JitError> {
    check(g)?;
    let g = *g;
    let in_len = g.h * g.w * g.c;
    jit.define(name, |e| {
        let (dy, dx) = (e.buffer(0), e.buffer(1));
        e.for_items(|e, s| {
            let dx_img = e.addr(dx, s, (in_len * 4) as i64);
            let dy_img = e.addr(dy, s, (g.out_h * g.out_w * g.c * 4) as i64);
            let zero = e.splat(0.0);
            for_vectors(e, in_len, &[dx_img], |e, p, lanes| {
                e.store_partial(zero, p[0], 0, lanes);
                Ok(())
            })?;
            let (z, oh_n) = (c64(e, 0), c64(e, g.out_h));
            e.for_range(z, oh_n, 1, |e, oh| {
                let (h0, h1) = window(e, oh, g.stride_h, g.pad.top, g.k_h, g.h);
                let ow_n = c64(e, g.out_w);
                e.for_range(z, ow_n, 1, |e, ow| {
                    let (w0, w1) = window(e, ow, g.stride_w, g.pad.left, g.k_w, g.w);
                    let rows = e.b.ins().isub(h1, h0);
                    let cols = e.b.ins().isub(w1, w0);
                    let count = e.b.ins().imul(rows, cols);
                    let some = e.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, count, 0);
                    e.if_then(some, |e| {
                        let cnt = e.b.ins().fcvt_from_sint(types::F32, count);
                        let one = e.f32const(1.0);
                        let scale = e.b.ins().fdiv(one, cnt);
                        let scale = e.b.ins().splat(F32X4, scale);
                        let p = e.b.ins().imul_imm_s(oh, g.out_w as i64);
                        let p = e.b.ins().iadd(p, ow);
                        let dy_px = e.addr(dy_img, p, (g.c * 4) as i64);
                        e.for_range(h0, h1, 1, |e, ih| {
                            let q = e.b.ins().imul_imm_s(ih, g.w as i64);
                            let q = e.b.ins().iadd(q, w0);
                            let row = e.addr(dx_img, q, (g.c * 4) as i64);
                            let px = (g.c * 4) as i64;
                            for_strided(e, w0, w1, &[(row, px)], |e, r| {
                                for_vectors(e, g.c, &[dy_px, r[0]], |e, v, lanes| {
                                    let d = e.load_partial(v[0], 0, lanes);
                                    let d = e.b.ins().fmul(d, scale);
                                    let old = e.load_partial(v[1], 0, lanes);
                                    let new = e.b.ins().fadd(old, d);
                                    e.store_partial(new, v[1], 0, lanes);
                                    Ok(())
                                })
                            })
                        })
                    })
                })
            })
        })
    })?;
    Ok(g.n)
}

/// The input range `[lo, hi)` of output position `o`'s window along one axis (runtime).
fn window(
    e: &mut Emit<'_, '_>,
    o: Value,
    stride: usize,
    pad: usize,
    k: usize,
    input: usize,
) -> (Value, Value) {
    let a = e.b.ins().imul_imm_s(o, stride as i64);
    let a = e.b.ins().iadd_imm_s(a, -(pad as i64));
    let zero = c64(e, 0);
    let lo = e.imax(a, zero);
    let b = e.b.ins().iadd_imm_s(a, k as i64);
    let n = c64(e, input);
    let hi = e.imin(b, n);
    (lo, hi)
}

/// Emits the global-average-pool input gradient `dx[s, ·, ch] = dy[s, ch] / hw` (overwritten).
/// Returns the number of work items, `n`.
///
/// # Buffers
/// `dy`: `[n, c]`; `dx`: `[n, hw, c]`.
///
/// # Work items
/// One sample per item.
///
/// # Errors
/// [`JitError::Unsupported`] when `hw` or `c` is zero; [`JitError::Codegen`].
pub fn emit_global_avg_pool_backward(
    jit: &mut Jit,
    name: &str,
    n: usize,
    hw: usize,
    c: usize,
) -> Result<usize, JitError> {
    if hw == 0 || c == 0 {
        return Err(JitError::Unsupported(format!(
            "global average pool over {hw}×{c}"
        )));
    }
    jit.define(name, |e| {
        let (dy, dx) = (e.buffer(0), e.buffer(1));
        let scale = e.splat(1.0 / hw as f32);
        e.for_items(|e, s| {
            let dy_s = e.addr(dy, s, (c * 4) as i64);
            let dx_s = e.addr(dx, s, (hw * c * 4) as i64);
            let (z, m) = (c64(e, 0), c64(e, hw));
            for_strided(e, z, m, &[(dx_s, (c * 4) as i64)], |e, p| {
                for_vectors(e, c, &[dy_s, p[0]], |e, v, lanes| {
                    let d = e.load_partial(v[0], 0, lanes);
                    let d = e.b.ins().fmul(d, scale);
                    e.store_partial(d, v[1], 0, lanes);
                    Ok(())
                })
            })
        })
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Guarded, Rng, assert_close, compile, run};
    use super::*;
    use crate::geom::Padding2d;
    use crate::reference;
    use proptest::prelude::*;

    /// A random pool: windows 1–3, strides 1–3 (overlapping and gapped), valid, `same` or
    /// asymmetric padding, channels not multiples of 4.
    fn pool_geom() -> impl Strategy<Value = Option<Pool2dGeom>> {
        (
            1usize..=3,
            (1usize..=9, 1usize..=9, 1usize..=9),
            (1usize..=3, 1usize..=3),
            (1usize..=3, 1usize..=3),
            (0usize..3, any::<[u8; 4]>()),
        )
            .prop_map(|(n, (h, w, c), (k_h, k_w), (s_h, s_w), (kind, p))| {
                let pad = match kind {
                    0 => Padding2d::default(),
                    1 => Padding2d::same(h, w, k_h, k_w, s_h, s_w),
                    _ => Padding2d {
                        top: p[0] as usize % k_h,
                        bottom: p[1] as usize % k_h,
                        left: p[2] as usize % k_w,
                        right: p[3] as usize % k_w,
                    },
                };
                Pool2dGeom::new(n, (h, w, c), (k_h, k_w), (s_h, s_w), pad)
            })
    }

    fn per_sample_argmax(g: &Pool2dGeom, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
        let (mut y, mut arg) = (vec![0.0; g.output_len()], vec![0; g.output_len()]);
        let one = g.with_batch(1);
        let (i, o) = (one.input_len(), one.output_len());
        for s in 0..g.n {
            let (ys, args) = (&mut y[s * o..][..o], &mut arg[s * o..][..o]);
            reference::max_pool_forward(&one, &x[s * i..][..i], ys, Some(args));
        }
        (y, arg)
    }

    fn check_max(g: &Pool2dGeom, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let dy = rng.vec(g.output_len(), -1.0, 1.0);
        let (mut y, mut arg) = (vec![0.0; g.output_len()], vec![0; g.output_len()]);
        reference::max_pool_forward(g, &x, &mut y, Some(&mut arg));
        let mut want = vec![0.0; g.input_len()];
        reference::max_pool_backward(g, &arg, &dy, &mut want);

        let (k, items) = compile(|j| emit_max_pool_backward(j, "max", g, ArgmaxIndex::Buffer));
        let (mut a, mut d, mut dx) = (
            Guarded::from_u32(&arg),
            Guarded::new(&dy),
            Guarded::output(g.input_len()),
        );
        run(&k, &mut [&mut a, &mut d, &mut dx], items);
        assert_close("max dx", dx.get(), &want, 1e-6, 0.0);

        let (_, arg) = per_sample_argmax(g, &x);
        let (k, items) = compile(|j| emit_max_pool_backward(j, "max", g, ArgmaxIndex::Sample));
        let (mut a, mut dx) = (Guarded::from_u32(&arg), Guarded::output(g.input_len()));
        run(&k, &mut [&mut a, &mut d, &mut dx], items);
        assert_close("max dx per sample", dx.get(), &want, 1e-6, 0.0);
    }

    fn check_pool_relu(g: &Pool2dGeom, act: Activation, seed: u64) {
        let mut rng = Rng::new(seed);
        // Pre-activations around the kinks, some exactly 0 and 6.
        let mut z = rng.vec(g.input_len(), -3.0, 9.0);
        z.iter_mut().step_by(6).for_each(|v| *v = 0.0);
        z.iter_mut().skip(3).step_by(11).for_each(|v| *v = 6.0);
        let dy = rng.vec(g.output_len(), -1.0, 1.0);
        // The unfused oracle: activation, max-pool, max-pool backward, activation backward.
        let mut a = vec![0.0; z.len()];
        reference::activation_forward(act, g.c, &z, &mut a);
        let (y, arg) = per_sample_argmax(g, &a);
        let (mut yb, mut argb) = (vec![0.0; g.output_len()], vec![0; g.output_len()]);
        reference::max_pool_forward(g, &a, &mut yb, Some(&mut argb));
        let mut da = vec![0.0; z.len()];
        reference::max_pool_backward(g, &argb, &dy, &mut da);
        let mut want = vec![0.0; z.len()];
        reference::activation_backward(act, g.c, &a, &da, &mut want);

        let (k, items) = compile(|j| emit_pool_relu_backward(j, "fused", g, act));
        let (mut ab, mut ybuf, mut d, mut dz) = (
            Guarded::from_u32(&arg),
            Guarded::new(&y),
            Guarded::new(&dy),
            Guarded::output(z.len()),
        );
        run(&k, &mut [&mut ab, &mut ybuf, &mut d, &mut dz], items);
        assert_close("dz", dz.get(), &want, 1e-6, 0.0);
    }

    fn check_avg(g: &Pool2dGeom, seed: u64) {
        let dy = Rng::new(seed).vec(g.output_len(), -1.0, 1.0);
        let mut want = vec![0.0; g.input_len()];
        reference::avg_pool_backward(g, &dy, &mut want);
        let (k, items) = compile(|j| emit_avg_pool_backward(j, "avg", g));
        let (mut d, mut dx) = (Guarded::new(&dy), Guarded::output(g.input_len()));
        run(&k, &mut [&mut d, &mut dx], items);
        assert_close("avg dx", dx.get(), &want, 1e-6, 1e-7);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn max_pool_backward_matches_the_reference(g in pool_geom(), seed in any::<u64>()) {
            let Some(g) = g else { return Ok(()) };
            check_max(&g, seed);
        }

        #[test]
        fn fused_pool_activation_backward_matches_the_unfused_reference(
            g in pool_geom(),
            act in prop::sample::select(vec![Activation::ReLU, Activation::ReLU6, Activation::Linear]),
            seed in any::<u64>(),
        ) {
            let Some(g) = g else { return Ok(()) };
            check_pool_relu(&g, act, seed);
        }

        #[test]
        fn avg_pool_backward_matches_the_reference(g in pool_geom(), seed in any::<u64>()) {
            let Some(g) = g else { return Ok(()) };
            check_avg(&g, seed);
        }

        #[test]
        fn global_avg_pool_backward_matches_the_reference(
            n in 1usize..4,
            hw in 1usize..30,
            c in 1usize..20,
            seed in any::<u64>(),
        ) {
            let dy = Rng::new(seed).vec(n * c, -1.0, 1.0);
            let mut want = vec![0.0; n * hw * c];
            reference::global_avg_pool_backward(n, hw, c, &dy, &mut want);
            let (k, items) = compile(|j| emit_global_avg_pool_backward(j, "gap", n, hw, c));
            let (mut d, mut dx) = (Guarded::new(&dy), Guarded::output(want.len()));
            run(&k, &mut [&mut d, &mut dx], items);
            assert_close("gap dx", dx.get(), &want, 1e-6, 0.0);
        }
    }

    #[test]
    fn non_overlapping_windows_zero_what_no_window_covers() {
        for (k, c) in [((2, 2), 6), ((3, 2), 5), ((2, 3), 1)] {
            let g = Pool2dGeom::new(3, (7, 5, c), k, k, Padding2d::default()).unwrap();
            for act in [Activation::ReLU, Activation::ReLU6, Activation::Linear] {
                check_pool_relu(&g, act, 9);
            }
            check_max(&g, 10);
        }
    }

    #[test]
    fn mnist_pool_after_relu_matches_the_reference() {
        let g = Pool2dGeom::new(4, (26, 26, 32), (2, 2), (2, 2), Padding2d::default()).unwrap();
        check_pool_relu(&g, Activation::ReLU, 7);
        check_max(&g, 8);
    }
}
