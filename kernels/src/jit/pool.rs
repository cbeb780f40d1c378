//! Standalone pooling forward kernels — `MaxPooling2D` (with the argmax its backward routes
//! gradients through), `AveragePooling2D` (padding excluded from the count, as Keras) and
//! `GlobalAveragePooling2D` — and [`Window`], the pooled-pixel emitter the fused convolution
//! epilogue shares.
//!
//! A window reads its taps at constant offsets from one pointer, so it needs every tap to
//! exist: the fused convolution pools a scratch padded with the pool's neutral value (−∞ for
//! max, 0 for average); a standalone pool with padding copies its input rows into such a
//! scratch first, and one without padding reads the input in place.
//!
//! Must not depend on anything of the `cnntui` crate.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    ConstantData, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value, types,
};

use super::builder::F32X4;
use super::conv::fill;
use super::{Emit, Jit, JitError};
use crate::geom::{Pool2dGeom, window_out};

/// The largest padded-row scratch a standalone pool may put on its stack.
pub const MAX_SCRATCH_BYTES: usize = 512 * 1024;

fn flags() -> MemFlagsData {
    let mut f = MemFlagsData::new();
    let _ = f.set_by_name("notrap");
    f
}

/// One pooled pixel over a source where every tap exists (padding holds the neutral value).
pub(crate) struct Window {
    pub max: bool,
    /// Compute the argmax (max only).
    pub argmax: bool,
    pub k_h: usize,
    pub k_w: usize,
    /// Bytes between window rows and columns in the source.
    pub row_stride: i32,
    pub col_stride: i32,
    /// Channels.
    pub c: usize,
    /// Flat-index distance (elements) between window rows and columns in the tensor the
    /// argmax indexes.
    pub idx_row: usize,
    pub idx_col: usize,
}

impl Window {
    /// Pools every channel of one pixel: `src` is tap (0, 0), channel 0; `idx` (i32) the flat
    /// index of that tap's channel 0; `count` (i64) the number of taps inside the input (for
    /// the average; 0 means none); results go to `dst` (f32) and `arg_dst` (u32).
    pub(crate) fn emit_pixel(
        &self,
        e: &mut Emit<'_, '_>,
        src: Value,
        idx: Option<Value>,
        count: Option<Value>,
        dst: Value,
        arg_dst: Option<Value>,
    ) -> Result<(), JitError> {
        let scale = count.map(|n| {
            let one = e.iconst(1);
            let n = e.b.ins().smax(n, one);
            let n = e.b.ins().fcvt_from_sint(types::F32, n);
            let one = e.f32const(1.0);
            let r = e.b.ins().fdiv(one, n);
            e.b.ins().splat(F32X4, r)
        });
        let full = self.c / 4;
        let block = |e: &mut Emit<'_, '_>, ch: Value, lanes: usize| {
            self.emit_block(e, src, idx, scale, dst, arg_dst, ch, lanes);
            Ok(())
        };
        if full == 1 {
            let ch = e.iconst(0);
            block(e, ch, 4)?;
        } else if full > 1 {
            let start = e.iconst(0);
            let end = e.iconst((full * 4) as i64);
            e.for_range(start, end, 4, |e, ch| block(e, ch, 4))?;
        }
        if !self.c.is_multiple_of(4) {
            let ch = e.iconst((full * 4) as i64);
            block(e, ch, self.c % 4)?;
        }
        Ok(())
    }

    /// Channels `ch..ch + lanes` (`lanes <= 4`; a short block reads, but does not store, the
    /// lanes past it — the source must hold them).
    #[allow(clippy::too_many_arguments)]
    fn emit_block(
        &self,
        e: &mut Emit<'_, '_>,
        src: Value,
        idx: Option<Value>,
        scale: Option<Value>,
        dst: Value,
        arg_dst: Option<Value>,
        ch: Value,
        lanes: usize,
    ) {
        let ch4 = e.b.ins().ishl_imm_s(ch, 2);
        let src = e.b.ins().iadd(src, ch4);
        let dst = e.b.ins().iadd(dst, ch4);
        let arg_dst = arg_dst.map(|a| e.b.ins().iadd(a, ch4));
        let with_arg = self.max && self.argmax;
        let lane_ids = with_arg.then(|| {
            let bytes: Vec<u8> = (0..4i32).flat_map(|l| l.to_le_bytes()).collect();
            let c = e.b.func.dfg.constants.insert(ConstantData::from(bytes));
            e.b.ins().vconst(types::I32X4, c)
        });
        let idx = idx.filter(|_| with_arg).map(|i| {
            let ch32 = e.b.ins().ireduce(types::I32, ch);
            e.b.ins().iadd(i, ch32)
        });
        let mut acc = e.splat(if self.max { f32::NEG_INFINITY } else { 0.0 });
        let mut arg = with_arg.then(|| {
            let m1 = e.b.ins().iconst(types::I32, -1);
            e.b.ins().splat(types::I32X4, m1)
        });
        let mut little = MemFlagsData::new();
        let _ = little.set_by_name("little");
        for i in 0..self.k_h {
            for j in 0..self.k_w {
                let off = i as i32 * self.row_stride + j as i32 * self.col_stride;
                let v = e.b.ins().load(F32X4, flags(), src, off);
                if !self.max {
                    acc = e.b.ins().fadd(acc, v);
                    continue;
                }
                let gt = e.b.ins().fcmp(FloatCC::GreaterThan, v, acc);
                let gt_f = e.b.ins().bitcast(F32X4, little, gt);
                acc = e.b.ins().bitselect(gt_f, v, acc);
                if let (Some(a), Some(base), Some(ids)) = (arg, idx, lane_ids) {
                    let tap = (i * self.idx_row + j * self.idx_col) as i64;
                    let t = e.b.ins().iadd_imm_s(base, tap);
                    let t = e.b.ins().splat(types::I32X4, t);
                    let t = e.b.ins().iadd(t, ids);
                    arg = Some(e.b.ins().bitselect(gt, t, a));
                }
            }
        }
        if self.max {
            // A window wholly in padding outputs 0.
            let zero = e.splat(0.0);
            let empty = match arg {
                Some(a) => {
                    let m1 = e.b.ins().iconst(types::I32, -1);
                    let m1 = e.b.ins().splat(types::I32X4, m1);
                    let eq = e.b.ins().icmp(IntCC::Equal, a, m1);
                    e.b.ins().bitcast(F32X4, little, eq)
                }
                None => {
                    let ninf = e.splat(f32::NEG_INFINITY);
                    e.mask(FloatCC::Equal, acc, ninf)
                }
            };
            acc = e.b.ins().bitselect(empty, zero, acc);
        } else if let Some(s) = scale {
            acc = e.b.ins().fmul(acc, s);
        }
        if lanes == 4 {
            e.store(acc, dst, 0);
            if let (Some(a), Some(p)) = (arg, arg_dst) {
                e.store(a, p, 0);
            }
        } else {
            for l in 0..lanes {
                let v = e.b.ins().extractlane(acc, l as u8);
                e.store(v, dst, 4 * l as i32);
                if let (Some(a), Some(p)) = (arg, arg_dst) {
                    let v = e.b.ins().extractlane(a, l as u8);
                    e.store(v, p, 4 * l as i32);
                }
            }
        }
    }
}

/// A standalone pooling layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolSpec {
    /// `n` is the largest batch the buffers hold; the kernel depends on it only through the
    /// item range.
    pub geom: Pool2dGeom,
    /// Max-pool when true, average otherwise.
    pub max: bool,
    /// Write the argmax (max only).
    pub record_argmax: bool,
}

/// How to call a kernel from [`emit_pool_forward`] or [`emit_global_avg_pool_forward`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolKernel {
    /// Buffer names in call order.
    pub buffers: Vec<&'static str>,
    /// Work items per sample.
    pub items_per_sample: usize,
}

/// Emits a standalone max- or average-pool forward kernel.
///
/// # Buffers
/// `x`: `[n, h, w, c]` f32 (fewer than `u32::MAX` elements with an argmax); `y`:
/// `[n, out_h, out_w, c]` f32; `argmax` (max with `record_argmax`): like `y`, u32, the flat
/// index into `x` as given of each winner — exactly `reference::max_pool_forward`'s (padding
/// never wins, ties go to the first tap in row-major order, a window wholly in padding gives 0
/// and `u32::MAX`).
///
/// # Work items
/// One output row per item: item `i` is sample `i / out_h`, row `i % out_h`.
///
/// # Errors
/// [`JitError::Unsupported`] for zero-sized or inconsistent geometries, or a padded-row scratch
/// above [`MAX_SCRATCH_BYTES`].
pub fn emit_pool_forward(
    jit: &mut Jit,
    name: &str,
    spec: &PoolSpec,
) -> Result<PoolKernel, JitError> {
    let g = spec.geom;
    if [
        g.h, g.w, g.c, g.k_h, g.k_w, g.stride_h, g.stride_w, g.out_h, g.out_w,
    ]
    .contains(&0)
        || Some(g.out_h) != window_out(g.h, g.pad.top, g.pad.bottom, g.k_h, g.stride_h)
        || Some(g.out_w) != window_out(g.w, g.pad.left, g.pad.right, g.k_w, g.stride_w)
    {
        return Err(JitError::Unsupported(format!("pool geometry {g:?}")));
    }
    let argmax = spec.max && spec.record_argmax;
    let padded = g.pad != crate::geom::Padding2d::default();
    let c_pad = g.c.div_ceil(4) * 4;
    let cols = g.pad.left + g.w + g.pad.right;
    let scratch_bytes = g.k_h * cols * c_pad * 4;
    // Without padding, a short last channel block reads up to 3 lanes past the window's last
    // pixel: pad through the scratch when that could leave the buffer.
    let via_scratch = padded || !g.c.is_multiple_of(4);
    if via_scratch && scratch_bytes > MAX_SCRATCH_BYTES {
        return Err(JitError::Unsupported(format!(
            "pool scratch of {scratch_bytes} bytes"
        )));
    }
    let mut buffers = vec!["x", "y"];
    if argmax {
        buffers.push("argmax");
    }
    let window = Window {
        max: spec.max,
        argmax,
        k_h: g.k_h,
        k_w: g.k_w,
        row_stride: ((if via_scratch { cols * c_pad } else { g.w * g.c }) * 4) as i32,
        col_stride: ((if via_scratch { c_pad } else { g.c }) * 4) as i32,
        c: g.c,
        idx_row: g.w * g.c,
        idx_col: g.c,
    };
    jit.define(name, |e| {
        let scratch = via_scratch.then(|| {
            e.b.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                scratch_bytes as u32,
                4,
            ))
        });
        let neutral = if spec.max { f32::NEG_INFINITY } else { 0.0 };
        if let Some(slot) = scratch {
            let ptr = e.ptr;
            let s = e.b.ins().stack_addr(ptr, slot, 0);
            fill(e, s, scratch_bytes, neutral)?;
        }
        e.for_items(|e, item| {
            let n = e.b.ins().udiv_imm_u(item, g.out_h as i64);
            let oh = e.b.ins().imul_imm_s(n, g.out_h as i64);
            let oh = e.b.ins().isub(item, oh);
            let r0 = e.b.ins().imul_imm_s(oh, g.stride_h as i64);
            let r0 = e.b.ins().iadd_imm_s(r0, -(g.pad.top as i64));
            let x = e.buffer(0);
            // Sample n's first element, and the flat index of its row r0, column 0.
            let img = e.b.ins().imul_imm_s(n, g.h as i64);
            let row0 = e.b.ins().iadd(img, r0);
            let row0_idx = e.b.ins().imul_imm_s(row0, (g.w * g.c) as i64);
            let src_row = match scratch {
                None => e.addr(x, row0_idx, 4),
                Some(slot) => {
                    copy_rows(e, slot, x, row0, r0, &g, cols, c_pad, neutral)?;
                    let ptr = e.ptr;
                    e.b.ins().stack_addr(ptr, slot, 0)
                }
            };
            let rows_in = {
                let end = e.b.ins().iadd_imm_s(r0, g.k_h as i64);
                let h = e.iconst(g.h as i64);
                let end = e.b.ins().smin(end, h);
                let zero = e.iconst(0);
                let start = e.b.ins().smax(r0, zero);
                e.b.ins().isub(end, start)
            };
            let y = e.buffer(1);
            let row_bytes = (g.out_w * g.c * 4) as i64;
            let y = e.addr(y, item, row_bytes);
            let arg = argmax.then(|| {
                let a = e.buffer(2);
                e.addr(a, item, row_bytes)
            });
            let start = e.iconst(0);
            let end = e.iconst(g.out_w as i64);
            e.for_range(start, end, 1, |e, ow| {
                let cb = e.b.ins().imul_imm_s(ow, g.stride_w as i64);
                let c0 = e.b.ins().iadd_imm_s(cb, -(g.pad.left as i64));
                // Scratch columns are shifted by the left padding; the input's are not.
                let src = if scratch.is_some() {
                    e.addr(src_row, cb, (c_pad * 4) as i64)
                } else {
                    e.addr(src_row, c0, (g.c * 4) as i64)
                };
                let count = (!spec.max).then(|| {
                    let end = e.b.ins().iadd_imm_s(c0, g.k_w as i64);
                    let w = e.iconst(g.w as i64);
                    let end = e.b.ins().smin(end, w);
                    let zero = e.iconst(0);
                    let start = e.b.ins().smax(c0, zero);
                    let cols_in = e.b.ins().isub(end, start);
                    e.b.ins().imul(rows_in, cols_in)
                });
                let idx = argmax.then(|| {
                    let i = e.b.ins().imul_imm_s(c0, g.c as i64);
                    let i = e.b.ins().iadd(row0_idx, i);
                    e.b.ins().ireduce(types::I32, i)
                });
                let dst = e.addr(y, ow, (g.c * 4) as i64);
                let arg_dst = arg.map(|a| e.addr(a, ow, (g.c * 4) as i64));
                window.emit_pixel(e, src, idx, count, dst, arg_dst)
            })
        })
    })?;
    Ok(PoolKernel {
        buffers,
        items_per_sample: g.out_h,
    })
}

/// Copies the `k_h` input rows from `r0` (of the sample whose row 0 is row `row0 - r0` of
/// `x`) into the padded scratch; rows outside the input become `neutral`.
#[allow(clippy::too_many_arguments)]
fn copy_rows(
    e: &mut Emit<'_, '_>,
    slot: cranelift_codegen::ir::StackSlot,
    x: Value,
    row0: Value,
    r0: Value,
    g: &Pool2dGeom,
    cols: usize,
    c_pad: usize,
    neutral: f32,
) -> Result<(), JitError> {
    let slot_bytes = (cols * c_pad * 4) as i64;
    let zero = e.iconst(0);
    let k_h = e.iconst(g.k_h as i64);
    e.for_range(zero, k_h, 1, |e, i| {
        let ptr = e.ptr;
        let s = e.b.ins().stack_addr(ptr, slot, 0);
        let s = e.addr(s, i, slot_bytes);
        let dst = e.b.ins().iadd_imm_s(s, (g.pad.left * c_pad * 4) as i64);
        let r = e.b.ins().iadd(r0, i);
        let ge0 = e.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, r, 0);
        let lt = e.b.ins().icmp_imm_s(IntCC::SignedLessThan, r, g.h as i64);
        let valid = e.b.ins().band(ge0, lt);
        let copy = e.b.create_block();
        let blank = e.b.create_block();
        let done = e.b.create_block();
        e.b.ins().brif(valid, copy, &[], blank, &[]);
        e.b.seal_block(copy);
        e.b.seal_block(blank);
        e.b.switch_to_block(copy);
        let row = e.b.ins().iadd(row0, i);
        let src = e.addr(x, row, (g.w * g.c * 4) as i64);
        let start = e.iconst(0);
        let end = e.iconst(g.w as i64);
        e.for_range(start, end, 1, |e, col| {
            let s = e.addr(src, col, (g.c * 4) as i64);
            let d = e.addr(dst, col, (c_pad * 4) as i64);
            for ch in 0..g.c {
                let v = e.load_f32(s, 4 * ch as i32);
                e.store(v, d, 4 * ch as i32);
            }
            Ok(())
        })?;
        e.b.ins().jump(done, &[]);
        e.b.switch_to_block(blank);
        fill(e, dst, g.w * c_pad * 4, neutral)?;
        e.b.ins().jump(done, &[]);
        e.b.seal_block(done);
        e.b.switch_to_block(done);
        Ok(())
    })
}

/// Emits `GlobalAveragePooling2D` forward: `y[s, ch]` = mean of `x[s, ·, ch]` over `hw`
/// positions.
///
/// # Buffers
/// `x`: `[n, hw, c]` f32, `y`: `[n, c]` f32.
///
/// # Work items
/// One sample per item.
///
/// # Errors
/// [`JitError::Unsupported`] when `hw` or `c` is zero.
pub fn emit_global_avg_pool_forward(
    jit: &mut Jit,
    name: &str,
    hw: usize,
    c: usize,
) -> Result<PoolKernel, JitError> {
    if hw == 0 || c == 0 {
        return Err(JitError::Unsupported(format!("global pool of {hw}×{c}")));
    }
    const VECTORS: usize = 8;
    jit.define(name, |e| {
        e.for_items(|e, item| {
            let x = e.buffer(0);
            let x = e.addr(x, item, (hw * c * 4) as i64);
            let y = e.buffer(1);
            let y = e.addr(y, item, (c * 4) as i64);
            let scale = e.splat(1.0 / hw as f32);
            let scale_s = e.f32const(1.0 / hw as f32);
            // Channel chunks of up to 8 vectors (32 channels), then scalar channels.
            let mut ch = 0;
            while ch < c {
                let vectors = ((c - ch) / 4).min(VECTORS);
                let scalars = if vectors == 0 { c - ch } else { 0 };
                let mut accs: Vec<_> = Vec::new();
                for _ in 0..vectors {
                    let z = e.splat(0.0);
                    accs.push(e.var(F32X4, z));
                }
                for _ in 0..scalars {
                    let z = e.f32const(0.0);
                    accs.push(e.var(types::F32, z));
                }
                let start = e.iconst(0);
                let end = e.iconst(hw as i64);
                e.for_range(start, end, 1, |e, p| {
                    let src = e.addr(x, p, (c * 4) as i64);
                    for (k, &a) in accs.iter().enumerate() {
                        let off = (ch * 4
                            + if k < vectors {
                                16 * k
                            } else {
                                4 * (k - vectors)
                            }) as i32;
                        let v = if k < vectors {
                            e.load_f32x4(src, off)
                        } else {
                            e.load_f32(src, off)
                        };
                        let s = e.b.use_var(a);
                        let s = e.b.ins().fadd(s, v);
                        e.b.def_var(a, s);
                    }
                    Ok(())
                })?;
                for (k, &a) in accs.iter().enumerate() {
                    let s = e.b.use_var(a);
                    let (v, off) = if k < vectors {
                        (e.b.ins().fmul(s, scale), ch * 4 + 16 * k)
                    } else {
                        (e.b.ins().fmul(s, scale_s), ch * 4 + 4 * (k - vectors))
                    };
                    e.store(v, y, off as i32);
                }
                ch += vectors * 4 + scalars;
            }
            Ok(())
        })
    })?;
    Ok(PoolKernel {
        buffers: vec!["x", "y"],
        items_per_sample: 1,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::geom::Padding2d;
    use crate::jit::conv::tests::{Guarded, Rng, run_split};
    use crate::reference;

    fn check(spec: PoolSpec, seed: u64) {
        let g = spec.geom;
        let x = Rng::new(seed).vec(g.input_len(), -1.0, 1.0);
        let mut jit = Jit::new().expect("JIT");
        let k = emit_pool_forward(&mut jit, "pool_under_test", &spec).expect("emits");
        let kernel = jit.finish().expect("compiles").remove(0);
        let mut bufs: Vec<Guarded> = k
            .buffers
            .iter()
            .map(|name| match *name {
                "x" => Guarded::input(&x),
                _ => Guarded::output(g.output_len()),
            })
            .collect();
        run_split(&kernel, &k.buffers, &mut bufs, g.n * k.items_per_sample);
        let mut want = vec![0.0f32; g.output_len()];
        if spec.max {
            let mut arg = vec![0u32; g.output_len()];
            reference::max_pool_forward(&g, &x, &mut want, Some(&mut arg));
            if spec.record_argmax {
                assert_eq!(bufs[2].data(), &arg[..], "argmax");
            }
        } else {
            reference::avg_pool_forward(&g, &x, &mut want);
        }
        assert_eq!(bufs[1].f32s(), want, "pooled y");
    }

    #[test]
    fn vgg_style_2x2_max_pool_with_argmax_matches_the_reference() {
        let g = Pool2dGeom::new(2, (8, 10, 12), (2, 2), (2, 2), Padding2d::default());
        let spec = PoolSpec {
            geom: g.expect("fits"),
            max: true,
            record_argmax: true,
        };
        check(spec, 1);
    }

    #[test]
    fn same_padded_average_pool_excludes_padding_from_the_count() {
        let pad = Padding2d::same(7, 5, 3, 3, 2, 2);
        let g = Pool2dGeom::new(1, (7, 5, 6), (3, 3), (2, 2), pad).expect("fits");
        check(
            PoolSpec {
                geom: g,
                max: false,
                record_argmax: false,
            },
            2,
        );
    }

    #[test]
    fn global_average_pool_matches_the_reference() {
        for (n, hw, c, seed) in [(3, 49, 37, 3u64), (1, 1, 3, 4), (2, 5, 64, 5)] {
            let x = Rng::new(seed).vec(n * hw * c, -1.0, 1.0);
            let mut jit = Jit::new().expect("JIT");
            let k = emit_global_avg_pool_forward(&mut jit, "gap", hw, c).expect("emits");
            let kernel = jit.finish().expect("compiles").remove(0);
            let mut bufs = vec![Guarded::input(&x), Guarded::output(n * c)];
            run_split(&kernel, &k.buffers, &mut bufs, n);
            let mut want = vec![0.0f32; n * c];
            reference::global_avg_pool_forward(n, hw, c, &x, &mut want);
            assert_eq!(bufs[1].f32s(), want);
        }
    }

    prop_compose! {
        fn pool_spec()(
            n in 1usize..3, h in 1usize..10, w in 1usize..10, c in 1usize..11,
            k in 1usize..4, s in 1usize..3, same in any::<bool>(),
            pad in (0usize..2, 0usize..2, 0usize..2, 0usize..2),
            max in any::<bool>(), record_argmax in any::<bool>(),
        ) -> Option<PoolSpec> {
            let pad = if same {
                Padding2d::same(h, w, k, k, s, s)
            } else {
                Padding2d { top: pad.0, bottom: pad.1, left: pad.2, right: pad.3 }
            };
            let geom = Pool2dGeom::new(n, (h, w, c), (k, k), (s, s), pad)?;
            Some(PoolSpec { geom, max, record_argmax })
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn pooling_matches_the_reference_over_random_shapes(
            spec in pool_spec(),
            seed in any::<u64>(),
        ) {
            let Some(spec) = spec else { return Ok(()) };
            check(spec, seed);
        }
    }
}
