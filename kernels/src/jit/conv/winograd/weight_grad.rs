//! The kernel gradient of a 3×3 stride-1 convolution by F(2×2, 3×3).
//!
//! The forward convolution is `Y = Aᵀ [Σ_ci U ⊙ V] A` per tile, linear in `U = G g Gᵀ`, so
//!
//! ```text
//! dM = A dY Aᵀ                                   (per tile and output channel, 4×4)
//! dU[ξ][ci][co] = Σ_tiles V[ξ][tile][ci] · dM[ξ][tile][co]    (16 products over the batch)
//! dw = Gᵀ dU G                                   (per channel pair, 3×3)
//! ```
//!
//! A product reduces over every tile of the batch: 16 multiplies per tile and channel pair
//! where the direct kernel gradient makes 9 per output (36 per 2×2 block).
//!
//! One kernel ([`emit`]) computes the transforms and the products: a work item owns a block
//! of samples and a slot of partial products `dU` (`[16][c_in][c_out]`). For each sample it
//! transforms a chunk of tile rows into its call's scratch — `V` (the forward kernel's input
//! transform) and `dM`, laid out `[ξ][tile][channel]`, sized to stay in L2 — then adds the
//! chunk's 16 products into its slot with the register tile (4 input × 8 output channels)
//! reducing over the chunk's tiles. Transforming the whole batch first and multiplying after
//! wrote and re-read 28 MiB per MNIST step through memory: 1.1× the direct kernel where
//! this measured (see the README). [`kernel_gradient`] sums the slots in order and
//! computes `dw = Gᵀ dU G`, overwriting `dw`.
//!
//! Items own contiguous units of work — whole samples, or chunks of a sample's tile rows when
//! a sample is larger than a chunk, so that a batch of one still splits between threads. Their
//! number depends on the shapes only, so the result does not depend on how the items are
//! split between threads.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::super::tile::{Tile, channel_runs};
use super::super::{ConvForwardSpec, Emit, Jit, JitError, fill};
use super::{Emitter, Layout, supported};
use crate::geom::Conv2dGeom;
use crate::reference::Activation;

/// The most bytes of partial products all items may hold: with fewer slots than
/// [`MAX_ITEMS`] the work is split less (a 512 × 512 layer's slot is 16 MiB).
const MAX_PARTIAL_BYTES: usize = 64 << 20;

/// Items (blocks of samples, each with its slot of partial products): enough for two
/// threads to share evenly.
const MAX_ITEMS: usize = 4;

/// Bytes of `V` and `dM` one chunk of tile rows may take (in L2 with the item's slot).
const CHUNK_BYTES: usize = 256 * 1024;

/// The sizes of a Winograd kernel gradient for geometry `geom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightGrad {
    pub geom: Conv2dGeom,
    tile_rows: usize,
    tile_cols: usize,
    ci4: usize,
    co4: usize,
    /// Tile rows per chunk (the last chunk of a sample may have fewer).
    chunk_rows: usize,
    /// Samples per chunk when a sample's tiles fit a chunk, whole (the last chunk of an
    /// item may have fewer): a reduction over a small map's few tiles would spend more on
    /// loading and storing the register tile than on multiplying.
    chunk_samples: usize,
    /// Units of work (samples, or chunks of a sample's tile rows when a sample is larger
    /// than a chunk), work items, and the units each owns (the last may own fewer).
    units: usize,
    items: usize,
    units_per_item: usize,
}

impl WeightGrad {
    /// The Winograd kernel gradient of `g`, when the forward kernel would be a Winograd
    /// kernel without a pool and the products take fewer multiplies than the direct kernel
    /// gradient (16 per tile, with a quarter added for the transforms, against 9 per output
    /// less the taps in the padding).
    ///
    /// Only output rows `0..active.0` and columns `0..active.1` may have a nonzero `dy`: the
    /// tiles cover them and no more. Under a 2×2 pool an odd map's last row and column get
    /// no gradient (no window reads them): MNIST's second conv has 11 × 11 outputs of which
    /// 10 × 10 do, 25 tiles instead of 36.
    pub fn new(g: &Conv2dGeom, active: (usize, usize)) -> Option<WeightGrad> {
        let spec = forward_spec(g);
        if !supported(&spec) || g.n == 0 {
            return None;
        }
        let (rows, cols) = (active.0.clamp(1, g.out_h), active.1.clamp(1, g.out_w));
        let (tile_rows, tile_cols) = (rows.div_ceil(2), cols.div_ceil(2));
        let direct = super::direct_taps(&spec, (g.out_h, g.out_w));
        if 16 * tile_rows * tile_cols * 5 > direct * 4 {
            return None;
        }
        let (ci4, co4) = (g.c_in.div_ceil(4) * 4, g.c_out.div_ceil(4) * 4);
        let row_bytes = tile_cols * 16 * (ci4 + co4) * 4;
        let chunk_rows = (CHUNK_BYTES / row_bytes).clamp(1, tile_rows);
        let slot_bytes = 16 * g.c_in * g.c_out * 4;
        // Units of work: whole samples when one fits a chunk, otherwise chunks of a
        // sample's tile rows (so a batch of one still splits between threads).
        let whole = chunk_rows == tile_rows;
        let units = if whole {
            g.n
        } else {
            g.n * tile_rows.div_ceil(chunk_rows)
        };
        let slots = (MAX_PARTIAL_BYTES / slot_bytes)
            .clamp(1, MAX_ITEMS)
            .min(units);
        let units_per_item = units.div_ceil(slots);
        let chunk_samples = if whole {
            (CHUNK_BYTES / (row_bytes * tile_rows)).clamp(1, units_per_item)
        } else {
            1
        };
        Some(WeightGrad {
            geom: *g,
            tile_rows,
            tile_cols,
            ci4,
            co4,
            chunk_rows,
            chunk_samples,
            units,
            items: units.div_ceil(units_per_item),
            units_per_item,
        })
    }

    /// Work items of [`emit`]'s kernel.
    pub fn items(&self) -> usize {
        self.items
    }

    /// f32s of the `partial` buffer: a slot `[16][c_in][c_out]` per item.
    pub fn partial_len(&self) -> usize {
        self.items * self.slot_len()
    }

    fn slot_len(&self) -> usize {
        16 * self.geom.c_in * self.geom.c_out
    }

    fn chunk_tiles(&self) -> usize {
        self.chunk_samples * self.chunk_rows * self.tile_cols
    }

    /// f32s of the per-call `scratch`: a chunk's `V` and `dM`, then a zero row.
    pub fn scratch_len(&self) -> usize {
        let g = &self.geom;
        let zero = (g.w * g.c_in).max(g.out_w * g.c_out).div_ceil(4) * 4 + 4;
        self.zero_at() + zero
    }

    fn zero_at(&self) -> usize {
        16 * self.chunk_tiles() * (self.ci4 + self.co4)
    }
}

/// The forward convolution whose input transform the kernel gradient shares.
fn forward_spec(g: &Conv2dGeom) -> ConvForwardSpec {
    ConvForwardSpec {
        geom: *g,
        depth_multiplier: None,
        bias: false,
        bn: false,
        activation: Activation::Linear,
        residual: false,
        pool: None,
        count_dead: false,
        winograd: true,
    }
}

/// Emits the kernel gradient's transforms and products for [`WeightGrad`] `wg` as kernel
/// `name`; returns the number of work items, [`WeightGrad::items`].
///
/// # Buffers
/// `x`: `[n, h, w, c_in]`; `dy`: `[n, out_h, out_w, c_out]`; `partial`:
/// [`WeightGrad::partial_len`] f32, overwritten (item `i` writes slot `i`); `scratch`:
/// [`WeightGrad::scratch_len`] f32 of the call's own.
///
/// # Errors
/// [`JitError::Codegen`].
pub fn emit(jit: &mut Jit, name: &str, wg: &WeightGrad) -> Result<usize, JitError> {
    let spec = forward_spec(&wg.geom);
    let layout = Layout::new(&spec);
    let em = Emitter {
        s: &spec,
        l: &layout,
    };
    jit.define(name, |e| body(e, &em, wg))?;
    Ok(wg.items)
}

fn body(e: &mut Emit<'_, '_>, em: &Emitter<'_>, wg: &WeightGrad) -> Result<(), JitError> {
    let g = wg.geom;
    let scratch = e.buffer(3);
    let zero_row = e.b.ins().iadd_imm_s(scratch, (wg.zero_at() * 4) as i64);
    fill(e, zero_row, (wg.scratch_len() - wg.zero_at()) * 4, 0.0)?;
    e.for_items(|e, item| {
        let partial = e.buffer(2);
        let slot = e.addr(partial, item, (wg.slot_len() * 4) as i64);
        fill(e, slot, wg.slot_len() * 4, 0.0)?;
        let u0 = e.b.ins().imul_imm_s(item, wg.units_per_item as i64);
        // Tile rows tr0..tr0 + rows of samples n0..n0 + samples, then their products.
        let chunk = |e: &mut Emit<'_, '_>, n0: Value, samples: usize, tr0: Value, rows: usize| {
            let tiles = samples * rows * wg.tile_cols;
            let v = e.buffer(3);
            let m = e.b.ins().iadd_imm_s(v, (16 * tiles * wg.ci4 * 4) as i64);
            let zero_row = e.b.ins().iadd_imm_s(v, (wg.zero_at() * 4) as i64);
            let (xi_v, xi_m) = ((tiles * wg.ci4 * 4) as i32, (tiles * wg.co4 * 4) as i32);
            let (zero, end) = (e.iconst(0), e.iconst((samples * rows) as i64));
            let looped = e.for_range(zero, end, 1, |e, sr| {
                // Sample n0 + sr / rows, its tile row tr0 + sr % rows.
                let s = e.b.ins().udiv_imm_u(sr, rows as i64);
                let r = e.b.ins().imul_imm_s(s, rows as i64);
                let r = e.b.ins().isub(sr, r);
                let n = e.b.ins().iadd(n0, s);
                let tr = e.b.ins().iadd(tr0, r);
                let x = e.buffer(0);
                let x = e.addr(x, n, (g.h * g.w * g.c_in * 4) as i64);
                let dy = e.buffer(1);
                let dy = e.addr(dy, n, (g.out_h * g.out_w * g.c_out * 4) as i64);
                let v_row = e.addr(v, sr, (wg.tile_cols * wg.ci4 * 4) as i64);
                em.input_row(e, (x, zero_row), v_row, xi_v, tr, 0, wg.tile_cols);
                let m_row = e.addr(m, sr, (wg.tile_cols * wg.co4 * 4) as i64);
                gradient_row(e, wg, (dy, zero_row), m_row, xi_m, tr);
                Ok(())
            });
            debug_assert!(looped.is_ok());
            products(e, wg, (v, m), slot, tiles);
        };
        // The item's `count` units from u0.
        let units = |e: &mut Emit<'_, '_>, count: usize| -> Result<(), JitError> {
            let end = e.b.ins().iadd_imm_s(u0, count as i64);
            if wg.chunk_rows == wg.tile_rows {
                // Units are samples, `chunk_samples` at a time.
                let k = wg.chunk_samples;
                let (whole, rest) = (count / k, count % k);
                let end = e.b.ins().iadd_imm_s(u0, (whole * k) as i64);
                e.for_range(u0, end, k as i64, |e, n0| {
                    let zero = e.iconst(0);
                    chunk(e, n0, k, zero, wg.tile_rows);
                    Ok(())
                })?;
                if rest > 0 {
                    let (n0, zero) = (end, e.iconst(0));
                    chunk(e, n0, rest, zero, wg.tile_rows);
                }
                return Ok(());
            }
            // Units are chunks of tile rows: sample u / per_sample, chunk u % per_sample
            // (a sample's last chunk may have fewer rows).
            let per_sample = wg.tile_rows.div_ceil(wg.chunk_rows) as i64;
            let rest = wg.tile_rows % wg.chunk_rows;
            e.for_range(u0, end, 1, |e, u| {
                let n = e.b.ins().udiv_imm_u(u, per_sample);
                let c = e.b.ins().imul_imm_s(n, per_sample);
                let c = e.b.ins().isub(u, c);
                let tr0 = e.b.ins().imul_imm_s(c, wg.chunk_rows as i64);
                if rest == 0 {
                    chunk(e, n, 1, tr0, wg.chunk_rows);
                    return Ok(());
                }
                let last = e.b.ins().icmp_imm_s(IntCC::Equal, c, per_sample - 1);
                e.if_else(
                    last,
                    |e| {
                        chunk(e, n, 1, tr0, rest);
                        Ok(())
                    },
                    |e| {
                        chunk(e, n, 1, tr0, wg.chunk_rows);
                        Ok(())
                    },
                )
            })
        };
        let per = wg.units_per_item;
        let last = wg.units - (wg.items - 1) * per;
        if last == per {
            return units(e, per);
        }
        let is_last =
            e.b.ins()
                .icmp_imm_s(IntCC::Equal, item, wg.items as i64 - 1);
        e.if_else(is_last, |e| units(e, last), |e| units(e, per))
    })
}

/// Adds `V[ξ]ᵀ · dM[ξ]` over a chunk's `tiles` tiles to the slot `du` (`[16][c_in][c_out]`),
/// for the 16 positions.
fn products(
    e: &mut Emit<'_, '_>,
    wg: &WeightGrad,
    (v, m): (Value, Value),
    du: Value,
    tiles: usize,
) {
    let g = wg.geom;
    let (ci, co) = (g.c_in, g.c_out);
    let (v_px, m_px) = ((wg.ci4 * 4) as i64, (wg.co4 * 4) as i64);
    let (zero, sixteen) = (e.iconst(0), e.iconst(16));
    let looped = e.for_range(zero, sixteen, 1, |e, xi| {
        let v = e.addr(v, xi, tiles as i64 * v_px);
        let m = e.addr(m, xi, tiles as i64 * m_px);
        let du = e.addr(du, xi, (ci * co * 4) as i64);
        let block = |e: &mut Emit<'_, '_>, cb: Value, rows: usize| {
            let v = e.addr(v, cb, 4);
            let du = e.addr(du, cb, (co * 4) as i64);
            for run in channel_runs(co, true) {
                let group = run.group;
                let body = |e: &mut Emit<'_, '_>, c: Value| {
                    let dst = e.addr(du, c, 4);
                    let t = Tile::loaded(e, group, rows, dst, (co * 4) as i32);
                    let w = e.addr(m, c, 4);
                    t.reduce_strided(e, (v, 4, v_px as i32), w, m_px as i32, tiles);
                    t.store(e, dst, (co * 4) as i32);
                    Ok(())
                };
                let looped = e.for_steps(run.start, run.count, group.width, body);
                debug_assert!(looped.is_ok());
            }
        };
        e.for_blocks(ci, 4, 1, block);
        Ok(())
    });
    debug_assert!(looped.is_ok());
}

/// `dM = A dY Aᵀ` of the tiles of tile row `tr` of one sample's `dy`, stored from `m_row`
/// (tile `j` at `j · co4` floats, position `ξ` at `ξ · xi_bytes` bytes). Outputs beyond the
/// map (the last row or column of an odd size) are zero.
fn gradient_row(
    e: &mut Emit<'_, '_>,
    wg: &WeightGrad,
    (dy, zero_row): (Value, Value),
    m_row: Value,
    xi_bytes: i32,
    tr: Value,
) {
    let g = wg.geom;
    let row_bytes = (g.out_w * g.c_out * 4) as i64;
    let oh0 = e.b.ins().imul_imm_s(tr, 2);
    let rows: [Value; 2] = std::array::from_fn(|a| {
        let oh = e.b.ins().iadd_imm_s(oh0, a as i64);
        let inside =
            e.b.ins()
                .icmp_imm_u(IntCC::UnsignedLessThan, oh, g.out_h as i64);
        let p = e.addr(dy, oh, row_bytes);
        e.b.ins().select(inside, p, zero_row)
    });
    let px = (g.c_out * 4) as i64;
    let tile = |e: &mut Emit<'_, '_>, j: Value, both: bool| {
        let at: [Value; 2] = std::array::from_fn(|a| e.addr(rows[a], j, 2 * px));
        let m = e.addr(m_row, j, (wg.co4 * 4) as i64);
        let step = |e: &mut Emit<'_, '_>, c: Value, lanes: usize| {
            let y: [[Value; 2]; 2] = std::array::from_fn(|a| {
                let p = e.b.ins().iadd(at[a], c);
                std::array::from_fn(|b| {
                    if b == 0 || both {
                        e.load_partial(p, (b as i64 * px) as i32, lanes)
                    } else {
                        e.splat(0.0)
                    }
                })
            });
            // A dY: rows y0, y0 + y1, y0 - y1, -y1; then the same along the columns.
            let a_rows = |e: &mut Emit<'_, '_>, y0: Value, y1: Value| -> [Value; 4] {
                [
                    y0,
                    e.b.ins().fadd(y0, y1),
                    e.b.ins().fsub(y0, y1),
                    e.b.ins().fneg(y1),
                ]
            };
            let q: [[Value; 4]; 2] = std::array::from_fn(|b| a_rows(e, y[0][b], y[1][b]));
            let out = e.b.ins().iadd(m, c);
            for (r, (&q0, &q1)) in q[0].iter().zip(&q[1]).enumerate() {
                let d = a_rows(e, q0, q1);
                for (k, &v) in d.iter().enumerate() {
                    e.store(v, out, (4 * r + k) as i32 * xi_bytes);
                }
            }
        };
        e.for_blocks(g.c_out, 4, 4, step);
    };
    let wide = g.out_w / 2;
    if wide > 0 {
        let (s, end) = (e.iconst(0), e.iconst(wide as i64));
        let looped = e.for_range(s, end, 1, |e, j| {
            tile(e, j, true);
            Ok(())
        });
        debug_assert!(looped.is_ok());
    }
    if wg.tile_cols > wide {
        let j = e.iconst(wide as i64);
        tile(e, j, false);
    }
}

/// `dw = Gᵀ dU G` for every channel pair, `dU` the sum of the items' slots in `partial`
/// (written by [`emit`]'s kernel), in item order: the HWIO kernel gradient
/// (`[3, 3, c_in, c_out]`), overwritten.
///
/// # Panics
/// When `partial` or `dw` is shorter than `wg` needs.
pub fn kernel_gradient(wg: &WeightGrad, partial: &[f32], dw: &mut [f32]) {
    let pairs = wg.geom.c_in * wg.geom.c_out;
    let slot = wg.slot_len();
    let mut slots = partial[..wg.partial_len()].chunks_exact(slot);
    let mut du = slots.next().map(<[f32]>::to_vec).unwrap_or_default();
    for s in slots {
        du.iter_mut().zip(s).for_each(|(d, s)| *d += s);
    }
    // Plane by plane (one ξ's or one tap's `[c_in][c_out]`), a few streams at a time: a
    // loop over channel pairs reading all 16 planes keeps 16 streams a multiple of 4 KiB
    // apart, all in one L1 set (it took 5% of an MNIST step).
    // Gᵀ of 4 planes t0..t3 into row `a`: t0 + ½(t1 + t2), ½(t1 - t2) or t3 + ½(t1 + t2).
    let gt = |a: usize, t: [&[f32]; 4], out: &mut [f32]| {
        let it = out.iter_mut().zip(t[0]).zip(t[1]).zip(t[2]).zip(t[3]);
        match a {
            0 => it.for_each(|((((o, t0), t1), t2), _)| *o = t0 + 0.5 * (t1 + t2)),
            1 => it.for_each(|((((o, _), t1), t2), _)| *o = 0.5 * (t1 - t2)),
            _ => it.for_each(|((((o, _), t1), t2), t3)| *o = t3 + 0.5 * (t1 + t2)),
        }
    };
    // Along ξ's columns (dU G), then its rows (Gᵀ ·).
    let mut cols = vec![0.0f32; 12 * pairs];
    for (at, out) in cols.chunks_exact_mut(pairs).enumerate() {
        let (i, kw) = (at / 3, at % 3);
        gt(
            kw,
            std::array::from_fn(|j| plane(&du, 4 * i + j, pairs)),
            out,
        );
    }
    for (at, out) in dw[..9 * pairs].chunks_exact_mut(pairs).enumerate() {
        let (kh, kw) = (at / 3, at % 3);
        gt(
            kh,
            std::array::from_fn(|i| plane(&cols, 3 * i + kw, pairs)),
            out,
        );
    }
}

/// Plane `i` (`len` floats) of `v`.
fn plane(v: &[f32], i: usize, len: usize) -> &[f32] {
    &v[i * len..][..len]
}
