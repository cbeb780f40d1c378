//! `Conv2D` backward: the input gradient (a gather over the valid taps of each input pixel),
//! the kernel gradient (a GEMM-like reduction over the batch) and the bias gradient.
//!
//! # Input gradient
//! `dx[n, ih, iw, ci] = Σ_{kh, kw, co} dy[n, oh, ow, co] · w[kh, kw, ci, co]` over the taps
//! with `oh·s_h + kh - pad_top = ih` and `ow·s_w + kw - pad_left = iw`. A work item owns one
//! input row `(n, ih)` — disjoint outputs, no scatter. The kernel is first transposed by
//! [`emit_conv2d_weight_transpose`] into planes of 4 input channels,
//! `wt[ci / 4, kh, kw, co, ci % 4]` (channels padded to a multiple of 4 with zeros), so a
//! register tile of input pixels × 8 input channels broadcasts `dy` and streams each plane
//! contiguously along `co`. A short row (at most 3 tiles) is cut into as few tiles as
//! possible, up to 5 pixels × 8 channels (10 accumulators; 8 pixels × 4 channels): a row of 13 is 5 + 4 + 4, not
//! 4 + 3 + 3 + 3, whose small tiles wait on the FMA latency. Its tiles load one broadcast
//! per FMA (single-use, so it is the FMA's tied operand and needs no copy). A long row runs
//! tiles of 4 pixels (8 accumulators) in which a `co` step loads the two weight vectors
//! once and broadcasts each pixel's `dy` once, shared by both vectors: 6 loads, 4 of them
//! broadcasts, per 8 FMAs instead of 10 and 8. On Zen a broadcast also takes an FP shuffle
//! pipe that competes with the FMAs, which is why sharing it pays although the FMA
//! overwrites a multiplicand and the shared broadcast's first use goes through a register
//! copy (eliminated at rename). A 10-accumulator tile has no registers left for the shared
//! broadcast and its copy (it spills), hence the two tile kinds.
//!
//! Along the width, pixels are grouped by phase `iw mod s_w` (all of one phase use the same
//! kernel columns, reading consecutive `dy` pixels); tiles of interior pixels run in a loop,
//! tiles touching the border are emitted with their own constant tap sets. Along the height,
//! each kernel row is a runtime test of the item's row (`(ih + pad_top - kh)` divisible by
//! `s_h` and in range). The reduction over `co` is a loop unrolled by 4.
//!
//! # Kernel gradient
//! `dw[kh, kw, ci, co] = Σ_{n, oh, ow} x[n, ih, iw, ci] · dy[n, oh, ow, co]`. A work item owns
//! a block of up to 4 rows `(kh, kw, ci…)` of `dw` and reduces over the whole batch, so the
//! result does not depend on how items are split; `dw` is overwritten. The reduction is chunked
//! (a band of output rows of one sample, or several small samples) with the item loop inside
//! the chunk loop, so a chunk of `x` and `dy` stays in L1 while every item of the call reads
//! it (a tile reads 16–32 bytes of each pixel's cache lines; streaming them from L2 instead
//! cost 6–7% on the MNIST shapes). The register tile is
//! the item's rows × up to 8 `co` vectors (4 × 2 when `c_in ≥ 4`), one outer-product update
//! per output pixel: with 3 or 4 rows the `dy` vectors are loaded once and each row's `x`
//! broadcast is shared by them (6 loads per 8 FMAs instead of 10); with 1 or 2 rows the
//! broadcasts stay in registers and each `dy` vector is the FMA's memory operand.
//!
//! Must not depend on anything of the `cnntui` crate.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::Variable;

use super::{c64, for_strided, for_strided_unrolled, round4};
use crate::geom::Conv2dGeom;
use crate::jit::builder::F32X4;
use crate::jit::{Emit, Jit, JitError};

/// Length in f32 of the transposed kernel [`emit_conv2d_weight_transpose`] writes.
pub fn conv2d_transposed_weight_len(g: &Conv2dGeom) -> usize {
    g.k_h * g.k_w * g.c_out * round4(g.c_in)
}

fn check(g: &Conv2dGeom) -> Result<(), JitError> {
    let dims = [
        g.n, g.h, g.w, g.c_in, g.c_out, g.k_h, g.k_w, g.stride_h, g.stride_w,
    ];
    if dims.contains(&0) || g.out_h == 0 || g.out_w == 0 {
        return Err(JitError::Unsupported(format!(
            "conv backward geometry {g:?}"
        )));
    }
    Ok(())
}

/// Emits `wt[ci / 4, kh, kw, co, ci % 4] = w[kh, kw, ci, co]` (channels padded to a multiple
/// of 4 with zeros), the layout [`emit_conv2d_backward_input`] reads. Returns the number of
/// work items.
///
/// # Buffers
/// `w`: `[k_h, k_w, c_in, c_out]`; `wt`: [`conv2d_transposed_weight_len`] f32, overwritten.
///
/// # Work items
/// One kernel tap `kh·k_w + kw` per item (`k_h·k_w` items).
///
/// # Errors
/// [`JitError::Unsupported`] for zero-sized geometries; [`JitError::Codegen`].
pub fn emit_conv2d_weight_transpose(
    jit: &mut Jit,
    name: &str,
    g: &Conv2dGeom,
) -> Result<usize, JitError> {
    check(g)?;
    let (c_in, c_out) = (g.c_in, g.c_out);
    let taps = g.k_h * g.k_w;
    // Bytes between the planes of consecutive channel vectors.
    let plane = (taps * c_out * 16) as i64;
    jit.define(name, |e| {
        let (w, wt) = (e.buffer(0), e.buffer(1));
        e.for_items(|e, tap| {
            let w_tap = e.addr(w, tap, (c_in * c_out * 4) as i64);
            let wt_tap = e.addr(wt, tap, (c_out * 16) as i64);
            let (zero, n_co) = (c64(e, 0), c64(e, c_out));
            e.for_range(zero, n_co, 1, |e, co| {
                let src = e.addr(w_tap, co, 4);
                let dst = e.addr(wt_tap, co, 16);
                let n_full = c64(e, c_in / 4);
                let stride = (16 * c_out) as i64;
                for_strided(e, zero, n_full, &[(src, stride), (dst, plane)], |e, p| {
                    let v = gather4(e, p[0], c_out, 4);
                    e.store(v, p[1], 0);
                    Ok(())
                })?;
                if !c_in.is_multiple_of(4) {
                    let s = e.b.ins().iadd_imm_s(src, (c_in / 4) as i64 * stride);
                    let d = e.b.ins().iadd_imm_s(dst, (c_in / 4) as i64 * plane);
                    let v = gather4(e, s, c_out, c_in % 4);
                    e.store(v, d, 0);
                }
                Ok(())
            })
        })
    })?;
    Ok(g.k_h * g.k_w)
}

/// `lanes` floats `stride` elements apart from `p`, zero in the other lanes.
fn gather4(e: &mut Emit<'_, '_>, p: Value, stride: usize, lanes: usize) -> Value {
    let mut v = e.splat(0.0);
    for lane in 0..lanes {
        let s = e.load_f32(p, (lane * stride * 4) as i32);
        v = e.b.ins().insertlane(v, s, lane as u8);
    }
    v
}

/// Emits the input gradient `dx` of `Conv2D` (see the module docs). Returns the number of
/// work items, `n · h`.
///
/// # Buffers
/// `dy`: `[n, out_h, out_w, c_out]`; `wt`: the transposed kernel of
/// [`emit_conv2d_weight_transpose`]; `dx`: `[n, h, w, c_in]`, overwritten.
///
/// # Work items
/// One input row per item: item `i` is sample `i / h`, row `i % h`.
///
/// # Errors
/// [`JitError::Unsupported`] for zero-sized geometries; [`JitError::Codegen`].
pub fn emit_conv2d_backward_input(
    jit: &mut Jit,
    name: &str,
    g: &Conv2dGeom,
) -> Result<usize, JitError> {
    check(g)?;
    let g = *g;
    jit.define(name, |e| {
        let (dy, wt, dx) = (e.buffer(0), e.buffer(1), e.buffer(2));
        e.for_items(|e, item| {
            let n = e.b.ins().udiv_imm_s(item, g.h as i64);
            let ih = e.b.ins().urem_imm_s(item, g.h as i64);
            let dy_img = e.addr(dy, n, (g.out_h * g.out_w * g.c_out * 4) as i64);
            let dx_row = e.addr(dx, item, (g.w * g.c_in * 4) as i64);
            let row = DxRow {
                g,
                ci_p: round4(g.c_in),
                ih,
                dy_img,
                dx_row,
                wt,
            };
            row.emit(e)
        })
    })?;
    Ok(g.n * g.h)
}

/// Input channels per register tile column block, in vectors.
const DX_VECS: usize = 2;

/// Rows of at most this many tiles are tiled entirely at compile time.
const DX_UNROLLED_TILES: usize = 3;

/// Pixels per register tile for a block of `nv` channel vectors, in the tiles of a long
/// row (shared broadcasts, at most 8 accumulators).
fn dx_tile_pixels(nv: usize) -> usize {
    if nv == 1 { 8 } else { 4 }
}

/// Pixels per register tile in a short row, which is cut into as few tiles as possible: a
/// row of 5 pixels is one tile of 10 accumulators rather than tiles of 3 and 2, each too
/// small to hide the FMA latency.
fn dx_short_tile_pixels(nv: usize) -> usize {
    if nv == 1 { 8 } else { 5 }
}

/// Where a tile starts: a constant pixel (border tiles) or a loop value (interior tiles,
/// whose every tap is valid).
#[derive(Clone, Copy)]
enum Start {
    Const(usize),
    Loop(Value),
}

/// One input row's emission context.
struct DxRow {
    g: Conv2dGeom,
    ci_p: usize,
    ih: Value,
    dy_img: Value,
    dx_row: Value,
    wt: Value,
}

impl DxRow {
    fn emit(&self, e: &mut Emit<'_, '_>) -> Result<(), JitError> {
        let vecs = self.ci_p / 4;
        let nv = DX_VECS.min(vecs);
        let (full, rem) = (vecs / nv, vecs % nv);
        let lanes = match self.g.c_in % 4 {
            0 => 4,
            l => l,
        };
        let looped = if lanes < 4 && rem == 0 {
            full - 1
        } else {
            full
        };
        let (zero, n_loop) = (c64(e, 0), c64(e, looped));
        e.for_range(zero, n_loop, 1, |e, cb| {
            let cv0 = e.b.ins().imul_imm_s(cb, nv as i64);
            self.emit_tiles(e, cv0, nv, 4)
        })?;
        if looped < full {
            let cv0 = c64(e, (full - 1) * nv);
            self.emit_tiles(e, cv0, nv, lanes)?;
        }
        if rem > 0 {
            let cv0 = c64(e, full * nv);
            self.emit_tiles(e, cv0, rem, lanes)?;
        }
        Ok(())
    }

    /// Every pixel of the row for channel vectors `[cv0, cv0 + nv)`; the last vector has
    /// `lanes` valid channels.
    fn emit_tiles(
        &self,
        e: &mut Emit<'_, '_>,
        cv0: Value,
        nv: usize,
        lanes: usize,
    ) -> Result<(), JitError> {
        let g = &self.g;
        let r_max = dx_tile_pixels(nv);
        for p in 0..g.stride_w.min(g.w) {
            let n_p = (g.w - p).div_ceil(g.stride_w);
            // Kernel columns of this phase and the dy column offset `d` (ow = j + d).
            let taps: Vec<(usize, i64)> = (0..g.k_w)
                .filter_map(|kw| {
                    let a = (p + g.pad.left) as i64 - kw as i64;
                    (a.rem_euclid(g.stride_w as i64) == 0)
                        .then(|| (kw, a.div_euclid(g.stride_w as i64)))
                })
                .collect();
            let (jl, jr) = if taps.is_empty() {
                (0, n_p)
            } else {
                let min_d = taps.iter().map(|t| t.1).min().unwrap_or(0);
                let max_d = taps.iter().map(|t| t.1).max().unwrap_or(0);
                let jl = (-min_d).clamp(0, n_p as i64) as usize;
                let jr = (g.out_w as i64 - max_d).clamp(jl as i64, n_p as i64) as usize;
                (jl, jr)
            };
            let r_short = dx_short_tile_pixels(nv);
            if n_p <= DX_UNROLLED_TILES * r_short {
                // A short row: every tile compile-time, balanced across the whole row.
                for (j0, rr) in balanced(0, n_p, r_short) {
                    self.emit_tile(e, p, &taps, Start::Const(j0), rr, cv0, nv, lanes, false)?;
                }
                continue;
            }
            let count = (jr - jl) / r_max;
            for (j0, rr) in balanced(0, jl, r_max) {
                self.emit_tile(e, p, &taps, Start::Const(j0), rr, cv0, nv, lanes, true)?;
            }
            if count > 0 {
                let (zero, n_tiles) = (c64(e, 0), c64(e, count));
                e.for_range(zero, n_tiles, 1, |e, t| {
                    let j0 = e.b.ins().imul_imm_s(t, r_max as i64);
                    let j0 = e.b.ins().iadd_imm_s(j0, jl as i64);
                    self.emit_tile(e, p, &taps, Start::Loop(j0), r_max, cv0, nv, lanes, true)
                })?;
            }
            for (j0, rr) in balanced(jl + count * r_max, n_p, r_max) {
                self.emit_tile(e, p, &taps, Start::Const(j0), rr, cv0, nv, lanes, true)?;
            }
        }
        Ok(())
    }

    /// One register tile: phase-`p` pixels `j0..j0 + rr` × channel vectors `cv0..cv0 + nv`;
    /// `shared`: a `dy` broadcast is shared by the channel vectors (see [`dx_step`]).
    #[allow(clippy::too_many_arguments)]
    fn emit_tile(
        &self,
        e: &mut Emit<'_, '_>,
        p: usize,
        taps: &[(usize, i64)],
        start: Start,
        rr: usize,
        cv0: Value,
        nv: usize,
        lanes: usize,
        shared: bool,
    ) -> Result<(), JitError> {
        let g = &self.g;
        let c_out = g.c_out;
        let zero = e.splat(0.0);
        let acc: Vec<Variable> = (0..rr * nv).map(|_| e.var(F32X4, zero)).collect();
        // Per tap, the tile's pixels that read a dy column inside the output.
        let live: Vec<(usize, i64, Vec<usize>)> = taps
            .iter()
            .map(|&(kw, d)| {
                let rs = (0..rr)
                    .filter(|&r| match start {
                        Start::Loop(_) => true,
                        Start::Const(j0) => {
                            let ow = (j0 + r) as i64 + d;
                            ow >= 0 && ow < g.out_w as i64
                        }
                    })
                    .collect();
                (kw, d, rs)
            })
            .filter(|t: &(usize, i64, Vec<usize>)| !t.2.is_empty())
            .collect();
        let j0 = match start {
            Start::Const(j0) => c64(e, j0),
            Start::Loop(j0) => j0,
        };
        if !live.is_empty() {
            let plane = (g.k_h * g.k_w * c_out * 16) as i64;
            let wt_blk = e.addr(self.wt, cv0, plane);
            let rows_in = (g.stride_h * (g.out_h - 1) + 1) as i64;
            for kh in 0..g.k_h {
                let t = e.b.ins().iadd_imm_s(self.ih, g.pad.top as i64 - kh as i64);
                let mut ok = e.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, t, rows_in);
                if g.stride_h > 1 {
                    let m = e.b.ins().urem_imm_s(t, g.stride_h as i64);
                    let on = e.b.ins().icmp_imm_s(IntCC::Equal, m, 0);
                    ok = e.b.ins().band(ok, on);
                }
                e.if_then(ok, |e| {
                    let oh = if g.stride_h == 1 {
                        t
                    } else {
                        e.b.ins().udiv_imm_s(t, g.stride_h as i64)
                    };
                    let dy_row = e.addr(self.dy_img, oh, (g.out_w * c_out * 4) as i64);
                    let px0 = e.addr(dy_row, j0, (c_out * 4) as i64);
                    for (kw, d, rs) in &live {
                        let dyp = e.b.ins().iadd_imm_s(px0, d * (c_out * 4) as i64);
                        let w_off = ((kh * g.k_w + kw) * c_out * 16) as i64;
                        let wp = e.b.ins().iadd_imm_s(wt_blk, w_off);
                        let main = c_out / 4;
                        if main > 0 {
                            let (z, m) = (c64(e, 0), c64(e, main));
                            let strides = [(dyp, 16), (wp, 64)];
                            for_strided(e, z, m, &strides, |e, q| {
                                for u in 0..4 {
                                    dx_step(e, q[0], q[1], u, rs, nv, &acc, c_out, plane, shared);
                                }
                                Ok(())
                            })?;
                        }
                        for u in main * 4..c_out {
                            dx_step(e, dyp, wp, u, rs, nv, &acc, c_out, plane, shared);
                        }
                    }
                    Ok(())
                })?;
            }
        }
        let base = e.addr(self.dx_row, j0, (g.stride_w * g.c_in * 4) as i64);
        let base = e.b.ins().iadd_imm_s(base, (p * g.c_in * 4) as i64);
        let base = e.addr(base, cv0, 16);
        for r in 0..rr {
            for v in 0..nv {
                let val = e.b.use_var(acc[r * nv + v]);
                let l = if v + 1 == nv { lanes } else { 4 };
                let off = (r * g.stride_w * g.c_in * 4 + 16 * v) as i32;
                e.store_partial(val, base, off, l);
            }
        }
        Ok(())
    }
}

/// One `co` step of the input-gradient tile: `acc[r][v] += dy[r, u] · wt[u, v]`, with one
/// broadcast per pixel shared by the channel vectors when `shared` and the tile has at most 8
/// accumulators, else one broadcast per FMA.
#[allow(clippy::too_many_arguments)]
fn dx_step(
    e: &mut Emit<'_, '_>,
    dyp: Value,
    wp: Value,
    u: usize,
    rs: &[usize],
    nv: usize,
    acc: &[Variable],
    c_out: usize,
    plane: i64,
    shared: bool,
) {
    if !shared || rs.len() * nv > 8 {
        // Weight vector outermost, one live at a time, and a broadcast per FMA: single-use,
        // so it loads straight from memory and is the FMA's tied operand (no copy).
        for v in 0..nv {
            let w = e.load_f32x4(wp, (u * 16) as i32 + (v as i64 * plane) as i32);
            for &r in rs {
                let b = e.load_splat(dyp, ((r * c_out + u) * 4) as i32);
                let a = e.b.use_var(acc[r * nv + v]);
                let s = e.fma(b, w, a);
                e.b.def_var(acc[r * nv + v], s);
            }
        }
        return;
    }
    // Each weight vector is shared by the tile's pixels and each `dy` broadcast by the
    // channel vectors: `nv + |rs|` loads and broadcasts for `nv·|rs|` FMAs.
    let ws: Vec<Value> = (0..nv)
        .map(|v| e.load_f32x4(wp, (u * 16) as i32 + (v as i64 * plane) as i32))
        .collect();
    for &r in rs {
        let b = e.load_splat(dyp, ((r * c_out + u) * 4) as i32);
        for (v, &w) in ws.iter().enumerate() {
            let a = e.b.use_var(acc[r * nv + v]);
            let s = e.fma(b, w, a);
            e.b.def_var(acc[r * nv + v], s);
        }
    }
}

/// `lo..hi` cut into `ceil(len / max)` runs of nearly equal length, as `(start, len)`.
fn balanced(lo: usize, hi: usize, max: usize) -> Vec<(usize, usize)> {
    let len = hi.saturating_sub(lo);
    let parts = len.div_ceil(max);
    let mut out = Vec::with_capacity(parts);
    let mut at = lo;
    for i in 0..parts {
        let l = len / parts + usize::from(i < len % parts);
        out.push((at, l));
        at += l;
    }
    out
}

/// `dw` rows per work item and `co` vectors per register tile for a given `c_in`.
fn dw_tile(c_in: usize, c_out: usize) -> (usize, usize) {
    let r = c_in.min(4);
    let v = match r {
        1 => 8,
        2 => 4,
        3 => 3,
        _ => 2,
    };
    (r, v.min(c_out.div_ceil(4)))
}

/// Output columns per step of the kernel gradient's innermost loop. A row of at most
/// [`DW_FULL_ROW`] columns with no horizontal padding (every tap reads the whole row) is one
/// step: no remainder, and the loop's back edge, which moves every accumulator (`fma` results
/// land in a multiplicand's register), is paid once per row. That is 10% faster on MNIST's
/// second conv (11 columns: one step of 11 instead of 5 + 5 + 1; paired single-thread runs).
/// Otherwise 3 to 5, whichever leaves the shortest remainder of a full row (then the larger).
fn dw_unroll(g: &Conv2dGeom) -> usize {
    let out_w = g.out_w;
    if out_w <= DW_FULL_ROW && g.pad.left == 0 && g.pad.right == 0 {
        return out_w;
    }
    (3..=5.min(out_w.max(3)))
        .min_by_key(|&u| (out_w % u, usize::MAX - u))
        .unwrap_or(1)
        .min(out_w)
}

/// Widest output row the kernel gradient unrolls whole (see [`dw_unroll`]).
const DW_FULL_ROW: usize = 16;

/// Bytes of `x` and `dy` a reduction chunk of the kernel gradient aims to keep in L1 (32 KiB
/// here): a register tile reads a few floats of every pixel's cache lines, and the item's
/// other tiles read the rest, so the chunk must stay in L1 between them, not stream from L2.
const DW_CHUNK_BYTES: usize = 24 * 1024;

/// Pixels a register tile of the kernel gradient reduces over, at least, before it is stored:
/// tiny outputs (3×3) take several samples per chunk although they overflow L1.
const DW_CHUNK_PIXELS: usize = 128;

/// The kernel gradient's reduction chunk: `(band, imgs)` — a band of `band` output rows of one
/// sample, or `imgs` whole samples when a sample fits.
fn dw_chunk(g: &Conv2dGeom) -> (usize, usize) {
    let row = (g.out_w * g.c_out + g.stride_h * g.w * g.c_in) * 4;
    let halo = g.k_h.saturating_sub(g.stride_h) * g.w * g.c_in * 4;
    let band = (DW_CHUNK_BYTES.saturating_sub(halo) / row).clamp(1, g.out_h);
    if band < g.out_h {
        return (band, 1);
    }
    let sample = (g.out_h * g.out_w * g.c_out + g.h * g.w * g.c_in) * 4;
    let imgs = (DW_CHUNK_BYTES / sample).max(DW_CHUNK_PIXELS.div_ceil(g.out_h * g.out_w));
    (band, imgs.clamp(1, g.n))
}

/// Emits the kernel gradient `dw` of `Conv2D` (see the module docs). Returns the number of
/// work items, `k_h · k_w · ceil(c_in / 4)` (`· c_in` rows of 1 when `c_in < 4`).
///
/// # Buffers
/// `x`: `[n, h, w, c_in]`; `dy`: `[n, out_h, out_w, c_out]`; `dw`: `[k_h, k_w, c_in, c_out]`,
/// overwritten.
///
/// # Work items
/// Item `i` is kernel tap `i / blocks` (`kh·k_w + kw`) and rows `ci` of block `i % blocks` of
/// that tap (`blocks = ceil(c_in / r)`, `r = min(c_in, 4)`); it writes `dw[kh, kw, ci, ·]` for
/// its rows only, reduced over the whole batch.
///
/// # Errors
/// [`JitError::Unsupported`] for zero-sized geometries; [`JitError::Codegen`].
pub fn emit_conv2d_backward_weight(
    jit: &mut Jit,
    name: &str,
    g: &Conv2dGeom,
) -> Result<usize, JitError> {
    check(g)?;
    let g = *g;
    let (r_max, _) = dw_tile(g.c_in, g.c_out);
    let blocks = g.c_in.div_ceil(r_max);
    let (band, imgs) = dw_chunk(&g);
    jit.define(name, |e| {
        let (x, dy, dw) = (e.buffer(0), e.buffer(1), e.buffer(2));
        let (zero, n_img) = (c64(e, 0), c64(e, g.n));
        e.for_range(zero, n_img, imgs as i64, |e, n| {
            let n_end = e.b.ins().iadd_imm_s(n, imgs as i64);
            let n_end = e.imin(n_end, n_img);
            let count = e.b.ins().isub(n_end, n);
            let (z, out_h) = (c64(e, 0), c64(e, g.out_h));
            e.for_range(z, out_h, band as i64, |e, oh0| {
                let n0 = e.b.ins().icmp_imm_s(IntCC::Equal, n, 0);
                let r0 = e.b.ins().icmp_imm_s(IntCC::Equal, oh0, 0);
                let first = e.b.ins().band(n0, r0);
                let oh_end = e.b.ins().iadd_imm_s(oh0, band as i64);
                let oh_end = e.imin(oh_end, out_h);
                let x_img = e.addr(x, n, (g.h * g.w * g.c_in * 4) as i64);
                let dy_img = e.addr(dy, n, (g.out_h * g.out_w * g.c_out * 4) as i64);
                let chunk = DwChunk {
                    g,
                    first,
                    oh0,
                    oh_end,
                    x_img,
                    dy_img,
                    count,
                    dw,
                    blocks,
                };
                e.for_items(|e, item| chunk.emit_item(e, item))
            })
        })
    })?;
    Ok(g.k_h * g.k_w * blocks)
}

/// One reduction chunk (a band of output rows of a sample, or several whole samples) of the
/// kernel gradient.
struct DwChunk {
    g: Conv2dGeom,
    /// Non-zero in the first chunk, which starts the sums from zero instead of `dw`.
    first: Value,
    oh0: Value,
    oh_end: Value,
    x_img: Value,
    dy_img: Value,
    /// Samples in the chunk, from the one at `x_img` / `dy_img`.
    count: Value,
    dw: Value,
    blocks: usize,
}

/// The valid output range `[lo, hi)` along one axis for kernel offset `k` (runtime):
/// the outputs whose tap `k` reads inside the input.
pub(super) fn valid_range(
    e: &mut Emit<'_, '_>,
    k: Value,
    pad: usize,
    input: usize,
    stride: usize,
    out: usize,
) -> (Value, Value) {
    // lo = ceil(max(pad - k, 0) / stride)
    let pad_v = c64(e, pad);
    let a = e.b.ins().isub(pad_v, k);
    let zero = c64(e, 0);
    let a = e.imax(a, zero);
    let a = e.b.ins().iadd_imm_s(a, stride as i64 - 1);
    let lo = e.b.ins().udiv_imm_s(a, stride as i64);
    // hi = min(out, max(input - 1 + pad - k + stride, 0) / stride)
    let top = c64(e, input - 1 + pad + stride);
    let b = e.b.ins().isub(top, k);
    let b = e.imax(b, zero);
    let hi = e.b.ins().udiv_imm_s(b, stride as i64);
    let out_v = c64(e, out);
    let hi = e.imin(hi, out_v);
    (lo, hi)
}

impl DwChunk {
    fn emit_item(&self, e: &mut Emit<'_, '_>, item: Value) -> Result<(), JitError> {
        let g = &self.g;
        let (r_max, _) = dw_tile(g.c_in, g.c_out);
        let tap = e.b.ins().udiv_imm_s(item, self.blocks as i64);
        let cb = e.b.ins().urem_imm_s(item, self.blocks as i64);
        let kh = e.b.ins().udiv_imm_s(tap, g.k_w as i64);
        let kw = e.b.ins().urem_imm_s(tap, g.k_w as i64);
        let (oh_lo, oh_hi) = valid_range(e, kh, g.pad.top, g.h, g.stride_h, g.out_h);
        let oh_lo = e.imax(oh_lo, self.oh0);
        let oh_hi = e.imin(oh_hi, self.oh_end);
        let (ow_lo, ow_hi) = valid_range(e, kw, g.pad.left, g.w, g.stride_w, g.out_w);
        let ci0 = e.b.ins().imul_imm_s(cb, r_max as i64);
        // x at (oh, ow) = x_img + ((oh·s_h + kh - pt)·w + ow·s_w + kw - pl)·c_in + ci0.
        let t = e.b.ins().imul_imm_s(kh, g.w as i64);
        let t = e.b.ins().iadd(t, kw);
        let t = e.b.ins().imul_imm_s(t, g.c_in as i64);
        let t = e.b.ins().iadd(t, ci0);
        let x_tap = e.addr(self.x_img, t, 4);
        let x_tap = e.b.ins().iadd_imm_s(
            x_tap,
            -(((g.pad.top * g.w + g.pad.left) * g.c_in * 4) as i64),
        );
        let row = e.b.ins().imul_imm_s(tap, g.c_in as i64);
        let row = e.b.ins().iadd(row, ci0);
        let dw_rows = e.addr(self.dw, row, (g.c_out * 4) as i64);
        let span = Span {
            oh_lo,
            oh_hi,
            ow_lo,
            ow_hi,
            x_tap,
            dw_rows,
        };
        let tail = g.c_in % r_max;
        if tail == 0 {
            return self.emit_rows(e, &span, r_max);
        }
        let is_tail =
            e.b.ins()
                .icmp_imm_s(IntCC::Equal, cb, self.blocks as i64 - 1);
        let not_tail = e.b.ins().icmp_imm_s(IntCC::Equal, is_tail, 0);
        e.if_then(is_tail, |e| self.emit_rows(e, &span, tail))?;
        e.if_then(not_tail, |e| self.emit_rows(e, &span, r_max))
    }

    /// `rr` rows of `dw` over every `co` block.
    fn emit_rows(&self, e: &mut Emit<'_, '_>, s: &Span, rr: usize) -> Result<(), JitError> {
        let g = &self.g;
        let (_, nv) = dw_tile(g.c_in, g.c_out);
        let vecs = g.c_out.div_ceil(4);
        let (full, rem) = (vecs / nv, vecs % nv);
        let lanes = match g.c_out % 4 {
            0 => 4,
            l => l,
        };
        let looped = if lanes < 4 && rem == 0 {
            full - 1
        } else {
            full
        };
        let (zero, n_loop) = (c64(e, 0), c64(e, looped));
        e.for_range(zero, n_loop, 1, |e, b| {
            let co0 = e.b.ins().imul_imm_s(b, (nv * 4) as i64);
            self.emit_block(e, s, rr, co0, nv, 4)
        })?;
        if looped < full {
            let co0 = c64(e, (full - 1) * nv * 4);
            self.emit_block(e, s, rr, co0, nv, lanes)?;
        }
        if rem > 0 {
            let co0 = c64(e, full * nv * 4);
            self.emit_block(e, s, rr, co0, rem, lanes)?;
        }
        Ok(())
    }

    /// The `rr × nv` register tile at output channel `co0`, accumulated over the chunk.
    fn emit_block(
        &self,
        e: &mut Emit<'_, '_>,
        s: &Span,
        rr: usize,
        co0: Value,
        nv: usize,
        lanes: usize,
    ) -> Result<(), JitError> {
        let g = &self.g;
        let lanes_of = |v: usize| if v + 1 == nv { lanes } else { 4 };
        let dwp = e.addr(s.dw_rows, co0, 4);
        let zero = e.splat(0.0);
        let mut acc = Vec::with_capacity(rr * nv);
        for r in 0..rr {
            for v in 0..nv {
                let old = e.load_partial(dwp, ((r * g.c_out + 4 * v) * 4) as i32, lanes_of(v));
                let init = e.b.ins().select(self.first, zero, old);
                acc.push(e.var(F32X4, init));
            }
        }
        let x_row_stride = (g.stride_h * g.w * g.c_in * 4) as i64;
        let dy_row_stride = (g.out_w * g.c_out * 4) as i64;
        let x0 = e.addr(s.x_tap, s.oh_lo, x_row_stride);
        let dy0 = e.addr(self.dy_img, s.oh_lo, dy_row_stride);
        let dy0 = e.addr(dy0, co0, 4);
        let x_px = (g.stride_w * g.c_in * 4) as i64;
        let dy_px = (g.c_out * 4) as i64;
        let img_bytes = [
            (g.h * g.w * g.c_in * 4) as i64,
            (g.out_h * g.out_w * g.c_out * 4) as i64,
        ];
        let imgs = [(x0, img_bytes[0]), (dy0, img_bytes[1])];
        let z = c64(e, 0);
        for_strided(e, z, self.count, &imgs, |e, i| {
            let rows = [(i[0], x_row_stride), (i[1], dy_row_stride)];
            for_strided(e, s.oh_lo, s.oh_hi, &rows, |e, p| {
                let xs = e.addr(p[0], s.ow_lo, x_px);
                let ds = e.addr(p[1], s.ow_lo, dy_px);
                let px = [(xs, x_px), (ds, dy_px)];
                let u = dw_unroll(g);
                for_strided_unrolled(e, s.ow_lo, s.ow_hi, &px, u, |e, q, k| {
                    let (xo, dyo) = ((k as i64 * x_px) as i32, (k as i64 * dy_px) as i32);
                    if rr <= 2 {
                        // One or two rows (c_in < 3), up to 8 vectors: the row broadcasts
                        // stay in registers and each `dy` vector, used once per row, is read
                        // by the FMA from memory.
                        let bs: Vec<Value> = (0..rr)
                            .map(|r| e.load_splat(q[0], xo + (4 * r) as i32))
                            .collect();
                        for v in 0..nv {
                            let d = e.load_partial(q[1], dyo + (16 * v) as i32, lanes_of(v));
                            for (r, &b) in bs.iter().enumerate() {
                                dw_fma(e, &acc[r * nv + v], b, d);
                            }
                        }
                    } else {
                        // Three or four rows, at most 3 vectors: the `dy` vectors stay in
                        // registers and each row's broadcast is shared by them.
                        let ds: Vec<Value> = (0..nv)
                            .map(|v| e.load_partial(q[1], dyo + (16 * v) as i32, lanes_of(v)))
                            .collect();
                        for r in 0..rr {
                            let b = e.load_splat(q[0], xo + (4 * r) as i32);
                            for (v, &d) in ds.iter().enumerate() {
                                dw_fma(e, &acc[r * nv + v], b, d);
                            }
                        }
                    }
                    Ok(())
                })
            })
        })?;
        for r in 0..rr {
            for v in 0..nv {
                let val = e.b.use_var(acc[r * nv + v]);
                let off = ((r * g.c_out + 4 * v) * 4) as i32;
                e.store_partial(val, dwp, off, lanes_of(v));
            }
        }
        Ok(())
    }
}

/// `acc += b · d`.
fn dw_fma(e: &mut Emit<'_, '_>, acc: &Variable, b: Value, d: Value) {
    let a = e.b.use_var(*acc);
    let f = e.fma(b, d, a);
    e.b.def_var(*acc, f);
}

/// An item's valid output rectangle and base pointers.
struct Span {
    oh_lo: Value,
    oh_hi: Value,
    ow_lo: Value,
    ow_hi: Value,
    x_tap: Value,
    dw_rows: Value,
}

/// Emits the bias gradient `db[ch] = Σ_rows dy[row, ch]` (overwritten). Returns the number of
/// work items, `ceil(c / 16)`.
///
/// # Buffers
/// `dy`: `[rows, c]`; `db`: `[c]`.
///
/// # Work items
/// Item `i` owns channels `16·i .. min(16·i + 16, c)` and sums them over every row.
///
/// # Errors
/// [`JitError::Unsupported`] when `rows` or `c` is zero; [`JitError::Codegen`].
pub fn emit_bias_backward(
    jit: &mut Jit,
    name: &str,
    rows: usize,
    c: usize,
) -> Result<usize, JitError> {
    if rows == 0 || c == 0 {
        return Err(JitError::Unsupported(format!("bias backward {rows}×{c}")));
    }
    let items = c.div_ceil(16);
    jit.define(name, |e| {
        let (dy, db) = (e.buffer(0), e.buffer(1));
        e.for_items(|e, item| {
            let tail = c - (items - 1) * 16;
            if tail == 16 {
                return bias_block(e, dy, db, item, rows, c, 16);
            }
            let last = e.b.ins().icmp_imm_s(IntCC::Equal, item, items as i64 - 1);
            let not_last = e.b.ins().icmp_imm_s(IntCC::Equal, last, 0);
            e.if_then(last, |e| bias_block(e, dy, db, item, rows, c, tail))?;
            e.if_then(not_last, |e| bias_block(e, dy, db, item, rows, c, 16))
        })
    })?;
    Ok(items)
}

/// Sums `width` channels of block `item` over all rows, two rows per step.
fn bias_block(
    e: &mut Emit<'_, '_>,
    dy: Value,
    db: Value,
    item: Value,
    rows: usize,
    c: usize,
    width: usize,
) -> Result<(), JitError> {
    let nv = width.div_ceil(4);
    let lanes_of = |v: usize| (width - 4 * v).min(4);
    let zero = e.splat(0.0);
    let acc: Vec<Variable> = (0..2 * nv).map(|_| e.var(F32X4, zero)).collect();
    let col = e.addr(dy, item, 64);
    let (z, pairs) = (c64(e, 0), c64(e, rows / 2));
    let step = (2 * c * 4) as i64;
    for_strided(e, z, pairs, &[(col, step)], |e, p| {
        for half in 0..2 {
            for v in 0..nv {
                let off = ((half * c + 4 * v) * 4) as i32;
                let x = e.load_partial(p[0], off, lanes_of(v));
                let a = e.b.use_var(acc[half * nv + v]);
                let s = e.b.ins().fadd(a, x);
                e.b.def_var(acc[half * nv + v], s);
            }
        }
        Ok(())
    })?;
    let out = e.addr(db, item, 64);
    let last_row = e.b.ins().iadd_imm_s(col, ((rows - 1) * c * 4) as i64);
    for v in 0..nv {
        let a = e.b.use_var(acc[v]);
        let b = e.b.use_var(acc[nv + v]);
        let mut s = e.b.ins().fadd(a, b);
        if rows % 2 == 1 {
            let x = e.load_partial(last_row, (16 * v) as i32, lanes_of(v));
            s = e.b.ins().fadd(s, x);
        }
        e.store_partial(s, out, (16 * v) as i32, lanes_of(v));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Guarded, Rng, assert_close, compile, run};
    use super::*;
    use crate::geom::Padding2d;
    use crate::reference;
    use proptest::prelude::*;

    /// A random convolution: odd sizes, stride 1 or 2, valid, `same` or asymmetric padding,
    /// kernels 1×1 to 5×5, channels not multiples of 4, batch 1 to 3.
    fn conv_geom() -> impl Strategy<Value = Option<Conv2dGeom>> {
        (
            1usize..=3,
            (1usize..=9, 1usize..=9),
            (1usize..=9, 1usize..=13),
            (prop::sample::select(vec![1usize, 2, 3, 5]), 1usize..=3),
            (1usize..=2, 1usize..=2),
            (0usize..3, any::<[u8; 4]>()),
        )
            .prop_map(
                |(n, (h, w), (c_in, c_out), (k_h, k_w), (s_h, s_w), (kind, p))| {
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
                    Conv2dGeom::new(n, (h, w, c_in), (k_h, k_w), c_out, (s_h, s_w), pad)
                },
            )
    }

    fn check_input_gradient(g: &Conv2dGeom, seed: u64) {
        let mut rng = Rng::new(seed);
        let w = rng.vec(g.k_h * g.k_w * g.c_in * g.c_out, -1.0, 1.0);
        let dy = rng.vec(g.output_len(), -1.0, 1.0);
        let mut want = vec![0.0; g.input_len()];
        reference::conv2d_backward_input(g, &dy, &w, &mut want);

        let (transpose, taps) = compile(|j| emit_conv2d_weight_transpose(j, "wt", g));
        let (kernel, items) = compile(|j| emit_conv2d_backward_input(j, "dx", g));
        let mut w_buf = Guarded::new(&w);
        let mut wt = Guarded::output(conv2d_transposed_weight_len(g));
        run(&transpose, &mut [&mut w_buf, &mut wt], taps);
        let mut dy_buf = Guarded::new(&dy);
        let mut dx = Guarded::output(g.input_len());
        run(&kernel, &mut [&mut dy_buf, &mut wt, &mut dx], items);
        let terms = (g.k_h * g.k_w * g.c_out) as f32;
        assert_close("dx", dx.get(), &want, 1e-5, 2e-6 * terms);
    }

    fn check_weight_gradient(g: &Conv2dGeom, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let dy = rng.vec(g.output_len(), -1.0, 1.0);
        let mut want = vec![0.0; g.k_h * g.k_w * g.c_in * g.c_out];
        reference::conv2d_backward_weight(g, &x, &dy, &mut want);

        let (kernel, items) = compile(|j| emit_conv2d_backward_weight(j, "dw", g));
        let mut x_buf = Guarded::new(&x);
        let mut dy_buf = Guarded::new(&dy);
        let mut dw = Guarded::output(want.len());
        run(&kernel, &mut [&mut x_buf, &mut dy_buf, &mut dw], items);
        let terms = (g.n * g.out_h * g.out_w) as f32;
        assert_close("dw", dw.get(), &want, 1e-5, 2e-6 * terms);
    }

    fn check_bias_gradient(rows: usize, c: usize, seed: u64) {
        let dy = Rng::new(seed).vec(rows * c, -1.0, 1.0);
        let mut want = vec![0.0; c];
        reference::bias_backward(&dy, c, &mut want);
        let (kernel, items) = compile(|j| emit_bias_backward(j, "db", rows, c));
        let mut dy_buf = Guarded::new(&dy);
        let mut db = Guarded::output(c);
        run(&kernel, &mut [&mut dy_buf, &mut db], items);
        assert_close("db", db.get(), &want, 1e-5, 2e-6 * rows as f32);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn input_gradient_matches_the_reference(g in conv_geom(), seed in any::<u64>()) {
            let Some(g) = g else { return Ok(()) };
            check_input_gradient(&g, seed);
        }

        #[test]
        fn weight_gradient_matches_the_reference(g in conv_geom(), seed in any::<u64>()) {
            let Some(g) = g else { return Ok(()) };
            check_weight_gradient(&g, seed);
        }

        #[test]
        fn bias_gradient_matches_the_reference(
            rows in 1usize..40,
            c in 1usize..40,
            seed in any::<u64>(),
        ) {
            check_bias_gradient(rows, c, seed);
        }
    }

    #[test]
    fn mnist_shapes_match_the_reference() {
        let valid = Padding2d::default();
        for (hwc, c_out) in [((28, 28, 1), 32), ((13, 13, 32), 64), ((5, 5, 64), 64)] {
            let g = Conv2dGeom::new(3, hwc, (3, 3), c_out, (1, 1), valid).unwrap();
            check_input_gradient(&g, 1);
            check_weight_gradient(&g, 2);
        }
    }

    #[test]
    fn stride_two_same_on_an_even_input_matches_the_reference() {
        let pad = Padding2d::same(16, 16, 3, 3, 2, 2);
        let g = Conv2dGeom::new(2, (16, 16, 12), (3, 3), 20, (2, 2), pad).unwrap();
        check_input_gradient(&g, 3);
        check_weight_gradient(&g, 4);
    }

    #[test]
    fn wide_rows_run_the_interior_tile_loop() {
        let pad = Padding2d::same(7, 40, 5, 5, 1, 1);
        let g = Conv2dGeom::new(1, (7, 40, 9), (5, 5), 7, (1, 1), pad).unwrap();
        check_input_gradient(&g, 5);
        check_weight_gradient(&g, 6);
    }

    #[test]
    fn the_tiles_fit_the_vector_registers() {
        for hwc in [(13, 13, 32), (28, 28, 1), (28, 28, 2)] {
            let g = Conv2dGeom::new(1, hwc, (3, 3), 64, (1, 1), Padding2d::default()).unwrap();
            check_registers(&g);
        }
    }

    fn check_registers(g: &Conv2dGeom) {
        let g = *g;
        let mut jit = Jit::new().expect("JIT available");
        jit.keep_disasm();
        emit_conv2d_backward_input(&mut jit, "dx", &g).unwrap();
        let dx = jit.last_disasm().unwrap_or_default().to_string();
        emit_conv2d_backward_weight(&mut jit, "dw", &g).unwrap();
        let dw = jit.last_disasm().unwrap_or_default().to_string();
        if std::env::var_os("CNNTUI_DUMP_ASM").is_some() {
            println!("=== dx\n{dx}\n=== dw\n{dw}");
        }
        // The allocator may place an occasional spill in a tile loop; a tile shape that
        // does not fit the 16 registers spills on every step and fails this bound.
        for (what, asm) in [("dx", dx), ("dw", dw)] {
            let fmas = asm.lines().filter(|l| l.contains("vfmadd")).count();
            let spills = asm
                .lines()
                .filter(|l| l.contains("rsp") && l.contains("xmm"))
                .count();
            assert!(
                fmas > 0 && spills * 50 <= fmas,
                "{what}: {spills} vector spills, {fmas} FMAs:\n{asm}"
            );
        }
    }
}
