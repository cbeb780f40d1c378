//! `DepthwiseConv2D` backward (depth multiplier 1, as MobileNet uses): input and kernel
//! gradients, vectorised across channels. Each output channel sees one input channel, so
//! every step is an element-wise multiply-add of channel vectors; these kernels are bound by
//! memory, not by the FMA units, and favour simple loops over register tiling.
//!
//! Other multipliers are [`JitError::Unsupported`] (the runtime falls back to the reference).
//!
//! Must not depend on anything of the `cnntui` crate.

use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::Value;
use cranelift_codegen::ir::condcodes::IntCC;

use super::conv::valid_range;
use super::{c64, for_strided};
use crate::geom::Conv2dGeom;
use crate::jit::builder::F32X4;
use crate::jit::{Emit, Jit, JitError};

fn check(g: &Conv2dGeom, mult: usize) -> Result<(), JitError> {
    let dims = [g.n, g.h, g.w, g.c_in, g.k_h, g.k_w, g.stride_h, g.stride_w];
    if mult != 1 || g.c_out != g.c_in || dims.contains(&0) || g.out_h == 0 || g.out_w == 0 {
        return Err(JitError::Unsupported(format!(
            "depthwise backward with multiplier {mult}, {g:?}"
        )));
    }
    Ok(())
}

/// Runs `body(e, channel_byte_offset, lanes)` over the `c` channels in vectors of 4 (a
/// runtime loop), then once for a tail of `c % 4` lanes.
fn for_channel_vectors(
    e: &mut Emit<'_, '_>,
    c: usize,
    mut body: impl FnMut(&mut Emit<'_, '_>, Value, usize) -> Result<(), JitError>,
) -> Result<(), JitError> {
    let (z, n) = (c64(e, 0), c64(e, c / 4));
    e.for_range(z, n, 1, |e, v| {
        let off = e.b.ins().imul_imm_s(v, 16);
        body(e, off, 4)
    })?;
    if !c.is_multiple_of(4) {
        let off = c64(e, c / 4 * 16);
        body(e, off, c % 4)?;
    }
    Ok(())
}

/// Emits the depthwise input gradient `dx[n, ih, iw, c] = Σ dy[n, oh, ow, c] · w[kh, kw, c]`
/// over the taps that read `(ih, iw)`; overwritten. Returns the number of work items, `n · h`.
///
/// # Buffers
/// `dy`: `[n, out_h, out_w, c]`; `w`: `[k_h, k_w, c, 1]`; `dx`: `[n, h, w, c]`.
///
/// # Work items
/// One input row per item: item `i` is sample `i / h`, row `i % h`.
///
/// # Errors
/// [`JitError::Unsupported`] for multipliers other than 1 and zero-sized geometries.
pub fn emit_depthwise_backward_input(
    jit: &mut Jit,
    name: &str,
    g: &Conv2dGeom,
    mult: usize,
) -> Result<usize, JitError> {
    check(g, mult)?;
    let g = *g;
    let c = g.c_in;
    let rows_in = (g.stride_h * (g.out_h - 1) + 1) as i64;
    let cols_in = (g.stride_w * (g.out_w - 1) + 1) as i64;
    jit.define(name, |e| {
        let (dy, w, dx) = (e.buffer(0), e.buffer(1), e.buffer(2));
        e.for_items(|e, item| {
            let n = e.b.ins().udiv_imm_s(item, g.h as i64);
            let ih = e.b.ins().urem_imm_s(item, g.h as i64);
            let dy_img = e.addr(dy, n, (g.out_h * g.out_w * c * 4) as i64);
            let dx_row = e.addr(dx, item, (g.w * c * 4) as i64);
            let (z, width) = (c64(e, 0), c64(e, g.w));
            e.for_range(z, width, 1, |e, iw| {
                let dx_px = e.addr(dx_row, iw, (c * 4) as i64);
                for_channel_vectors(e, c, |e, ch, lanes| {
                    let zero = e.splat(0.0);
                    let acc = e.var(F32X4, zero);
                    for kh in 0..g.k_h {
                        let t = e.b.ins().iadd_imm_s(ih, g.pad.top as i64 - kh as i64);
                        let ok = on_grid(e, t, rows_in, g.stride_h);
                        e.if_then(ok, |e| {
                            let oh = div(e, t, g.stride_h);
                            let dy_row = e.addr(dy_img, oh, (g.out_w * c * 4) as i64);
                            for kw in 0..g.k_w {
                                let u = e.b.ins().iadd_imm_s(iw, g.pad.left as i64 - kw as i64);
                                let ok = on_grid(e, u, cols_in, g.stride_w);
                                e.if_then(ok, |e| {
                                    let ow = div(e, u, g.stride_w);
                                    let p = e.addr(dy_row, ow, (c * 4) as i64);
                                    let p = e.b.ins().iadd(p, ch);
                                    let d = e.load_partial(p, 0, lanes);
                                    let wp = e.b.ins().iadd(w, ch);
                                    let tap = ((kh * g.k_w + kw) * c * 4) as i32;
                                    let wv = e.load_partial(wp, tap, lanes);
                                    let a = e.b.use_var(acc);
                                    let s = e.fma(d, wv, a);
                                    e.b.def_var(acc, s);
                                    Ok(())
                                })?;
                            }
                            Ok(())
                        })?;
                    }
                    let out = e.b.ins().iadd(dx_px, ch);
                    let a = e.b.use_var(acc);
                    e.store_partial(a, out, 0, lanes);
                    Ok(())
                })
            })
        })
    })?;
    Ok(g.n * g.h)
}

/// Whether `t` (signed) is a multiple of `stride` in `[0, limit)`.
fn on_grid(e: &mut Emit<'_, '_>, t: Value, limit: i64, stride: usize) -> Value {
    let ok = e.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, t, limit);
    if stride == 1 {
        return ok;
    }
    let m = e.b.ins().urem_imm_s(t, stride as i64);
    let on = e.b.ins().icmp_imm_s(IntCC::Equal, m, 0);
    e.b.ins().band(ok, on)
}

fn div(e: &mut Emit<'_, '_>, t: Value, stride: usize) -> Value {
    if stride == 1 {
        t
    } else {
        e.b.ins().udiv_imm_s(t, stride as i64)
    }
}

/// Emits the depthwise kernel gradient `dw[kh, kw, c] = Σ_{n, oh, ow} x · dy`, reduced over
/// the whole batch; overwritten. Returns the number of work items, `k_h · k_w · ceil(c / 4)`.
///
/// # Buffers
/// `x`: `[n, h, w, c]`; `dy`: `[n, out_h, out_w, c]`; `dw`: `[k_h, k_w, c, 1]`.
///
/// # Work items
/// Item `i` is tap `i / ceil(c / 4)` and channels `4·(i % ceil(c / 4))` + 0..4 of it.
///
/// # Errors
/// [`JitError::Unsupported`] for multipliers other than 1 and zero-sized geometries.
pub fn emit_depthwise_backward_weight(
    jit: &mut Jit,
    name: &str,
    g: &Conv2dGeom,
    mult: usize,
) -> Result<usize, JitError> {
    check(g, mult)?;
    let g = *g;
    let c = g.c_in;
    let blocks = c.div_ceil(4);
    jit.define(name, |e| {
        let (x, dy, dw) = (e.buffer(0), e.buffer(1), e.buffer(2));
        e.for_items(|e, item| {
            let tap = e.b.ins().udiv_imm_s(item, blocks as i64);
            let cb = e.b.ins().urem_imm_s(item, blocks as i64);
            if c.is_multiple_of(4) {
                return dw_item(e, &g, [x, dy, dw], tap, cb, 4);
            }
            let last = e.b.ins().icmp_imm_s(IntCC::Equal, cb, blocks as i64 - 1);
            let not_last = e.b.ins().icmp_imm_s(IntCC::Equal, last, 0);
            e.if_then(last, |e| dw_item(e, &g, [x, dy, dw], tap, cb, c % 4))?;
            e.if_then(not_last, |e| dw_item(e, &g, [x, dy, dw], tap, cb, 4))
        })
    })?;
    Ok(g.k_h * g.k_w * blocks)
}

fn dw_item(
    e: &mut Emit<'_, '_>,
    g: &Conv2dGeom,
    [x, dy, dw]: [Value; 3],
    tap: Value,
    cb: Value,
    lanes: usize,
) -> Result<(), JitError> {
    let c = g.c_in;
    let kh = e.b.ins().udiv_imm_s(tap, g.k_w as i64);
    let kw = e.b.ins().urem_imm_s(tap, g.k_w as i64);
    let (oh_lo, oh_hi) = valid_range(e, kh, g.pad.top, g.h, g.stride_h, g.out_h);
    let (ow_lo, ow_hi) = valid_range(e, kw, g.pad.left, g.w, g.stride_w, g.out_w);
    // x at (oh, ow) = x_img + ((oh·s_h + kh - pt)·w + ow·s_w + kw - pl)·c + 4·cb.
    let t = e.b.ins().imul_imm_s(kh, g.w as i64);
    let t = e.b.ins().iadd(t, kw);
    let t = e.b.ins().imul_imm_s(t, c as i64);
    let x_tap = e.addr(x, t, 4);
    let x_tap = e.addr(x_tap, cb, 16);
    let x_tap =
        e.b.ins()
            .iadd_imm_s(x_tap, -(((g.pad.top * g.w + g.pad.left) * c * 4) as i64));
    let dy_c = e.addr(dy, cb, 16);
    let zero = e.splat(0.0);
    let acc = e.var(F32X4, zero);
    let x_row = (g.stride_h * g.w * c * 4) as i64;
    let dy_row = (g.out_w * c * 4) as i64;
    let (x_px, dy_px) = ((g.stride_w * c * 4) as i64, (c * 4) as i64);
    let x0 = e.addr(x_tap, oh_lo, x_row);
    let dy0 = e.addr(dy_c, oh_lo, dy_row);
    let imgs = [
        (x0, (g.h * g.w * c * 4) as i64),
        (dy0, (g.out_h * g.out_w * c * 4) as i64),
    ];
    let (z, n) = (c64(e, 0), c64(e, g.n));
    for_strided(e, z, n, &imgs, |e, i| {
        let rows = [(i[0], x_row), (i[1], dy_row)];
        for_strided(e, oh_lo, oh_hi, &rows, |e, p| {
            let xs = e.addr(p[0], ow_lo, x_px);
            let ds = e.addr(p[1], ow_lo, dy_px);
            for_strided(e, ow_lo, ow_hi, &[(xs, x_px), (ds, dy_px)], |e, q| {
                let xv = e.load_partial(q[0], 0, lanes);
                let d = e.load_partial(q[1], 0, lanes);
                let a = e.b.use_var(acc);
                let s = e.fma(xv, d, a);
                e.b.def_var(acc, s);
                Ok(())
            })
        })
    })?;
    let out = e.addr(dw, tap, (c * 4) as i64);
    let out = e.addr(out, cb, 16);
    let a = e.b.use_var(acc);
    e.store_partial(a, out, 0, lanes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Guarded, Rng, assert_close, compile, run};
    use super::*;
    use crate::geom::Padding2d;
    use crate::reference;
    use proptest::prelude::*;

    fn check(g: &Conv2dGeom, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let w = rng.vec(g.k_h * g.k_w * g.c_in, -1.0, 1.0);
        let dy = rng.vec(g.output_len(), -1.0, 1.0);
        let mut want_dx = vec![0.0; x.len()];
        reference::depthwise_backward_input(g, 1, &dy, &w, &mut want_dx);
        let mut want_dw = vec![0.0; w.len()];
        reference::depthwise_backward_weight(g, 1, &x, &dy, &mut want_dw);

        let (k, items) = compile(|j| emit_depthwise_backward_input(j, "ddx", g, 1));
        let (mut d, mut wb, mut dx) = (
            Guarded::new(&dy),
            Guarded::new(&w),
            Guarded::output(x.len()),
        );
        run(&k, &mut [&mut d, &mut wb, &mut dx], items);
        let taps = (g.k_h * g.k_w) as f32;
        assert_close("depthwise dx", dx.get(), &want_dx, 1e-5, 2e-6 * taps);

        let (k, items) = compile(|j| emit_depthwise_backward_weight(j, "ddw", g, 1));
        let (mut xb, mut dw) = (Guarded::new(&x), Guarded::output(w.len()));
        run(&k, &mut [&mut xb, &mut d, &mut dw], items);
        let terms = (g.n * g.out_h * g.out_w) as f32;
        assert_close("depthwise dw", dw.get(), &want_dw, 1e-5, 2e-6 * terms);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn depthwise_gradients_match_the_reference(
            n in 1usize..=3,
            (h, w, c) in (1usize..=9, 1usize..=9, 1usize..=11),
            k in prop::sample::select(vec![1usize, 2, 3, 5]),
            (s_h, s_w) in (1usize..=2, 1usize..=2),
            same in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let pad = if same { Padding2d::same(h, w, k, k, s_h, s_w) } else { Padding2d::default() };
            let Some(g) = Conv2dGeom::new(n, (h, w, c), (k, k), c, (s_h, s_w), pad) else {
                return Ok(());
            };
            check(&g, seed);
        }
    }

    #[test]
    fn a_multiplier_above_one_is_unsupported() {
        let g = Conv2dGeom::new(1, (4, 4, 2), (3, 3), 4, (1, 1), Padding2d::default()).unwrap();
        let mut jit = Jit::new().expect("JIT available");
        let err = emit_depthwise_backward_input(&mut jit, "ddx", &g, 2);
        assert!(matches!(err, Err(JitError::Unsupported(_))));
    }
}
