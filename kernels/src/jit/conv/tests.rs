//! Tests of the forward convolution kernels against the reference kernels, and the test
//! support the other forward emitters' tests share: a PRNG, guarded buffers (sentinel regions
//! before and after every buffer, sentinel-filled outputs) and split-range calls.

use proptest::prelude::*;

use super::*;
use crate::geom::Pool2dGeom;
use crate::jit::Kernel;
use crate::reference;

pub(crate) use crate::jit::backward::testing::Rng;

const GUARD: usize = 64;
const GUARD_BITS: u32 = 0x7FC0_DEAD;
/// What outputs hold before the kernel runs: a NaN payload no kernel produces.
const UNWRITTEN: u32 = 0x7FA0_BEEF;

/// A buffer with sentinel guard regions on both sides.
pub(crate) struct Guarded {
    words: Vec<u32>,
    len: usize,
    output: bool,
    scratch: bool,
    initial: Vec<u32>,
}

impl Guarded {
    pub(crate) fn input(data: &[f32]) -> Self {
        Self::new(data.iter().map(|v| v.to_bits()).collect(), false)
    }

    pub(crate) fn output(len: usize) -> Self {
        Self::new(vec![UNWRITTEN; len], true)
    }

    /// A kernel's scratch: anything may be written inside it, nothing outside.
    pub(crate) fn scratch(len: usize) -> Self {
        let mut g = Self::new(vec![UNWRITTEN; len], false);
        g.scratch = true;
        g
    }

    fn new(data: Vec<u32>, output: bool) -> Self {
        let len = data.len();
        let mut words = vec![GUARD_BITS; GUARD];
        words.extend_from_slice(&data);
        words.extend(std::iter::repeat_n(GUARD_BITS, GUARD));
        Guarded {
            words,
            len,
            output,
            scratch: false,
            initial: data,
        }
    }

    pub(crate) fn ptr(&mut self) -> *mut u8 {
        self.words[GUARD..].as_mut_ptr().cast()
    }

    pub(crate) fn f32s(&self) -> Vec<f32> {
        self.data().iter().map(|&b| f32::from_bits(b)).collect()
    }

    pub(crate) fn data(&self) -> &[u32] {
        &self.words[GUARD..GUARD + self.len]
    }

    /// Panics unless the guards are intact, inputs unchanged and every output written.
    pub(crate) fn check(&self, what: &str) {
        let (before, rest) = self.words.split_at(GUARD);
        let after = &rest[self.len..];
        assert!(
            before.iter().chain(after).all(|&w| w == GUARD_BITS),
            "{what}: a guard region was written"
        );
        if self.scratch {
            return;
        }
        if self.output {
            let unwritten = self.data().iter().filter(|&&w| w == UNWRITTEN).count();
            assert_eq!(unwritten, 0, "{what}: {unwritten} outputs not written");
        } else {
            assert!(self.data() == self.initial, "{what}: an input was written");
        }
    }
}

/// Runs `kernel` over `items` work items in three calls, then checks every buffer.
pub(crate) fn run_split(kernel: &Kernel, names: &[&str], bufs: &mut [Guarded], items: usize) {
    let ptrs: Vec<*mut u8> = bufs.iter_mut().map(Guarded::ptr).collect();
    let cuts = [0, items / 3, items - items / 4, items];
    for pair in cuts.windows(2) {
        // SAFETY: every buffer has the length the kernel's emitter documents for `items`
        // items, and the calls run one after another.
        unsafe { kernel.call(&ptrs, pair[0], pair[1]) };
    }
    for (b, name) in bufs.iter().zip(names) {
        b.check(name);
    }
}

/// `|a - e| <= rtol · |e| + atol` element-wise.
pub(crate) fn assert_close(what: &str, actual: &[f32], expect: &[f64], rtol: f64, atol: f64) {
    assert_eq!(actual.len(), expect.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expect).enumerate() {
        let ok = (f64::from(a) - e).abs() <= rtol * e.abs() + atol;
        assert!(ok, "{what}[{i}]: got {a}, want {e}");
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// The inputs of one fused conv case.
struct Case {
    spec: ConvForwardSpec,
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    scale: Vec<f32>,
    shift: Vec<f32>,
    residual: Vec<f32>,
}

impl Case {
    fn new(spec: ConvForwardSpec, seed: u64) -> Self {
        let g = spec.geom;
        let mut rng = Rng::new(seed);
        let w_len = match spec.depth_multiplier {
            None => g.k_h * g.k_w * g.c_in * g.c_out,
            Some(_) => g.k_h * g.k_w * g.c_out,
        };
        Case {
            spec,
            x: rng.vec(g.input_len(), -1.0, 1.0),
            w: rng.vec(w_len, -1.0, 1.0),
            bias: rng.vec(g.c_out, -0.5, 0.5),
            scale: rng.vec(g.c_out, 0.5, 1.5),
            shift: rng.vec(g.c_out, -0.5, 0.5),
            residual: rng.vec(g.output_len(), -1.0, 1.0),
        }
    }

    /// The pre-pool activation from the f64 reference kernels.
    fn reference_pre_pool(&self) -> Vec<f64> {
        let s = &self.spec;
        let g = s.geom;
        let (x, w) = (f64s(&self.x), f64s(&self.w));
        let bias = s.bias.then(|| f64s(&self.bias));
        let mut z = vec![0.0; g.output_len()];
        match s.depth_multiplier {
            None => reference::conv2d_forward(&g, &x, &w, bias.as_deref(), &mut z),
            Some(m) => reference::depthwise_forward(&g, m, &x, &w, bias.as_deref(), &mut z),
        }
        for (i, v) in z.iter_mut().enumerate() {
            let c = i % g.c_out;
            if s.bn {
                *v = *v * f64::from(self.scale[c]) + f64::from(self.shift[c]);
            }
            if s.residual {
                *v += f64::from(self.residual[i]);
            }
        }
        reference::activation_in_place(s.activation, g.c_out, &mut z);
        z
    }

    /// Runs the kernel (checking guards and writes); returns its buffers by name.
    fn run(&self) -> Result<Vec<(&'static str, Guarded)>, JitError> {
        let mut jit = Jit::new()?;
        let k = emit_conv_forward(&mut jit, "conv_under_test", &self.spec)?;
        let kernel = jit.finish()?.remove(0);
        let g = self.spec.geom;
        let (oh, ow, c) = k.out_shape;
        let out_len = g.n * oh * ow * c;
        let items = g.n * k.items_per_sample;
        let mut bufs: Vec<Guarded> = k
            .buffers
            .iter()
            .map(|name| match *name {
                "x" => Guarded::input(&self.x),
                "w" => {
                    let mut prepared = Vec::new();
                    k.weights.prepare(&g, &self.w, &mut prepared);
                    Guarded::input(&prepared)
                }
                "scratch" => Guarded::scratch(k.call_scratch),
                "bias" => Guarded::input(&self.bias),
                "scale" => Guarded::input(&self.scale),
                "shift" => Guarded::input(&self.shift),
                "residual" => Guarded::input(&self.residual),
                "y" | "argmax" => Guarded::output(out_len),
                "dead" => Guarded::output(items),
                other => panic!("unknown buffer {other}"),
            })
            .collect();
        run_split(&kernel, &k.buffers, &mut bufs, items);
        Ok(k.buffers.iter().copied().zip(bufs).collect())
    }

    /// Whether the spec runs as a Winograd kernel.
    fn winograd(&self) -> bool {
        let k = emit_conv_forward(&mut Jit::new().expect("JIT"), "k", &self.spec).expect("emits");
        k.weights == WeightLayout::Winograd
    }
}

/// Per sample, the sum of its `items_per_sample` dead counts.
fn per_sample(dead: &[u32], n: usize) -> Vec<u32> {
    dead.chunks_exact(dead.len() / n)
        .map(|c| c.iter().sum())
        .collect()
}

fn take<'a>(bufs: &'a [(&'static str, Guarded)], name: &str) -> &'a Guarded {
    &bufs
        .iter()
        .find(|(n, _)| *n == name)
        .expect("buffer present")
        .1
}

/// Checks one spec: the unfused kernel against the f64 reference (and its dead counts), and
/// with a pool, the fused kernel bit for bit against the reference pool run on the unfused
/// kernel's output (same arithmetic, so the argmax must agree exactly).
fn check(spec: ConvForwardSpec, seed: u64) {
    let case = Case::new(
        ConvForwardSpec {
            pool: None,
            ..spec.clone()
        },
        seed,
    );
    let g = spec.geom;
    let bufs = case.run().expect("kernel compiles");
    let z = take(&bufs, "y").f32s();
    let expect = case.reference_pre_pool();
    let k = match spec.depth_multiplier {
        None => g.k_h * g.k_w * g.c_in,
        Some(_) => g.k_h * g.k_w,
    };
    let winograd = case.winograd();
    // Winograd adds and subtracts inputs (and kernel taps) before multiplying: a few more
    // roundings, each of a partial sum up to 4 times an input.
    let atol = if winograd { 8e-6 } else { 2e-6 } * k as f64 + 1e-6;
    assert_close("pre-pool y", &z, &expect, 1e-5, atol);
    if spec.count_dead {
        let dead = take(&bufs, "dead").data().to_vec();
        let row = g.out_w * g.c_out;
        let want: Vec<u32> = z
            .chunks_exact(row)
            .map(|r| reference::count_dead(r) as u32)
            .collect();
        if winograd {
            // Items are blocks of tile rows: compare each sample's total.
            let want: Vec<u32> = per_sample(&want, g.n);
            assert_eq!(per_sample(&dead, g.n), want, "dead counts per sample");
        } else {
            assert_eq!(dead, want, "dead counts per row");
        }
    }
    let Some(p) = spec.pool else { return };
    let fused = Case { spec, ..case };
    let bufs = fused.run().expect("fused kernel compiles");
    let pg = Pool2dGeom::new(
        1,
        (g.out_h, g.out_w, g.c_out),
        (p.k_h, p.k_w),
        (p.stride_h, p.stride_w),
        p.pad,
    )
    .expect("pool fits");
    let per_in = g.out_h * g.out_w * g.c_out;
    let per_out = pg.output_len();
    let y = take(&bufs, "y").f32s();
    for img in 0..g.n {
        let z_img = &z[img * per_in..(img + 1) * per_in];
        let mut want = vec![0.0f32; per_out];
        let y_img = &y[img * per_out..(img + 1) * per_out];
        if p.max {
            let mut arg = vec![0u32; per_out];
            reference::max_pool_forward(&pg, z_img, &mut want, Some(&mut arg));
            if p.record_argmax {
                let got = &take(&bufs, "argmax").data()[img * per_out..(img + 1) * per_out];
                assert_eq!(got, &arg[..], "argmax of sample {img}");
            }
        } else {
            reference::avg_pool_forward(&pg, z_img, &mut want);
        }
        assert_eq!(y_img, &want[..], "pooled y of sample {img}");
    }
    if fused.spec.count_dead {
        let dead = take(&bufs, "dead").data().to_vec();
        let row = g.out_w * g.c_out;
        // Columns some window covers: the kernel computes no others.
        let used = ((p.out_w - 1) * p.stride_w + p.k_w)
            .saturating_sub(p.pad.left)
            .min(g.out_w);
        let want: Vec<u32> = (0..g.n * p.out_h)
            .map(|item| {
                let (img, ph) = (item / p.out_h, item % p.out_h);
                let r0 = (ph * p.stride_h) as isize - p.pad.top as isize;
                (r0.max(0)..(r0 + p.k_h as isize).min(g.out_h as isize))
                    .map(|r| {
                        let at = (img * g.out_h + r as usize) * row;
                        reference::count_dead(&z[at..at + used * g.c_out]) as u32
                    })
                    .sum()
            })
            .collect();
        if winograd {
            assert_eq!(
                per_sample(&dead, g.n),
                per_sample(&want, g.n),
                "dead per sample"
            );
        } else {
            assert_eq!(dead, want, "dead counts per pooled row");
        }
        let k = emit_conv_forward(&mut Jit::new().expect("JIT"), "k", &fused.spec).unwrap();
        let total: u32 = dead.iter().sum();
        assert!(total as usize <= g.n * k.computed_per_sample);
    }
}

fn spec(geom: Conv2dGeom) -> ConvForwardSpec {
    ConvForwardSpec {
        geom,
        depth_multiplier: None,
        bias: true,
        bn: false,
        activation: Activation::ReLU,
        residual: false,
        pool: None,
        count_dead: false,
        winograd: false,
    }
}

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

#[test]
fn mnist_first_conv_with_relu_and_max_pool_matches_the_reference() {
    let g = geom(2, (28, 28, 1), (3, 3), 32, (1, 1), Padding2d::default());
    let pool = PoolEpilogue::new(true, (26, 26), (2, 2), (2, 2), Padding2d::default(), true);
    check(
        ConvForwardSpec {
            pool,
            count_dead: true,
            ..spec(g)
        },
        1,
    );
}

/// MNIST's second conv: 11 columns under a 2×2 pool, so the last column is not computed and
/// both conv rows of a pooled row are one list of 20 pixels (tiles span the two rows); with
/// 13 channels (a block of 8, one of 4 and a scalar) every group kind takes that path.
#[test]
fn odd_width_conv_under_a_pool_computes_its_rows_jointly() {
    for c_out in [64, 13] {
        let g = geom(3, (13, 13, 32), (3, 3), c_out, (1, 1), Padding2d::default());
        let pool = PoolEpilogue::new(true, (11, 11), (2, 2), (2, 2), Padding2d::default(), true);
        check(
            ConvForwardSpec {
                pool,
                count_dead: true,
                ..spec(g)
            },
            7,
        );
        let s = ConvForwardSpec { pool, ..spec(g) };
        let layout = Layout::new(&s).expect("valid spec");
        let pl = layout.pool.as_ref().expect("pooled");
        assert!(pl.joint && pl.used == 10, "joint rows, 10 of 11 columns");
        let k = emit_conv_forward(&mut Jit::new().expect("JIT"), "k", &s).unwrap();
        assert_eq!(k.computed_per_sample, 10 * 10 * c_out);
    }
}

#[test]
fn same_3x3_conv_with_odd_channels_matches_the_reference() {
    let g = geom(
        1,
        (9, 11, 5),
        (3, 3),
        13,
        (1, 1),
        Padding2d::same(9, 11, 3, 3, 1, 1),
    );
    check(spec(g), 2);
}

#[test]
fn wide_channel_counts_with_padding_columns_match_the_reference() {
    // c_out = 4 · 32 + 2 · 8 + 4 + 3: four-group padding columns, the 8-channel groups left
    // over, then the 4- and 1-channel groups; batch 1, `same` padding, stride 1 and 2.
    for (s, seed) in [((1, 1), 20), ((2, 2), 21)] {
        let g = geom(
            1,
            (5, 7, 67),
            (3, 3),
            151,
            s,
            Padding2d::same(5, 7, 3, 3, s.0, s.1),
        );
        check(
            ConvForwardSpec {
                count_dead: true,
                ..spec(g)
            },
            seed,
        );
    }
    // A VGG16 block-5 shape (512 → 512 on 14 × 14, fused pool) at a smaller c_in.
    let g = geom(
        1,
        (14, 14, 40),
        (3, 3),
        512,
        (1, 1),
        Padding2d::same(14, 14, 3, 3, 1, 1),
    );
    let pool = PoolEpilogue::new(true, (14, 14), (2, 2), (2, 2), Padding2d::default(), true);
    check(ConvForwardSpec { pool, ..spec(g) }, 22);
}

#[test]
fn mobilenet_style_conv_bn_relu6_at_stride_two_matches_the_reference() {
    let g = geom(
        2,
        (15, 15, 8),
        (3, 3),
        16,
        (2, 2),
        Padding2d::same(15, 15, 3, 3, 2, 2),
    );
    check(
        ConvForwardSpec {
            bias: false,
            bn: true,
            activation: Activation::ReLU6,
            ..spec(g)
        },
        3,
    );
}

#[test]
fn residual_projection_conv_bn_add_matches_the_reference() {
    let g = geom(1, (8, 8, 6), (1, 1), 12, (1, 1), Padding2d::default());
    check(
        ConvForwardSpec {
            bn: true,
            residual: true,
            activation: Activation::Linear,
            count_dead: true,
            ..spec(g)
        },
        4,
    );
}

#[test]
fn depthwise_relu6_with_multipliers_matches_the_reference() {
    for (m, seed) in [(1, 5), (2, 6), (4, 7), (3, 8)] {
        let g = geom(
            1,
            (7, 9, 6),
            (3, 3),
            6 * m,
            (1, 1),
            Padding2d::same(7, 9, 3, 3, 1, 1),
        );
        check(
            ConvForwardSpec {
                depth_multiplier: Some(m),
                activation: Activation::ReLU6,
                bn: true,
                ..spec(g)
            },
            seed,
        );
    }
}

#[test]
fn sigmoid_and_tanh_epilogues_are_unsupported() {
    let g = geom(1, (4, 4, 1), (3, 3), 4, (1, 1), Padding2d::default());
    for act in [Activation::Sigmoid, Activation::Tanh, Activation::Softmax] {
        let mut jit = Jit::new().expect("JIT");
        let s = ConvForwardSpec {
            activation: act,
            ..spec(g)
        };
        assert!(matches!(
            emit_conv_forward(&mut jit, "c", &s),
            Err(JitError::Unsupported(_))
        ));
    }
}

prop_compose! {
    fn conv_spec()(
        n in 1usize..3, h in 1usize..12, w in 1usize..14,
        c_in in prop::sample::select(vec![1usize, 2, 3, 4, 5, 8, 9, 16, 19, 32]),
        winograd in any::<bool>(),
        k in prop::sample::select(vec![1usize, 2, 3, 5, 7]), k_w_odd in any::<bool>(),
        c_out in prop::sample::select(vec![1usize, 3, 4, 7, 8, 12, 13, 20, 32, 37, 44, 67]), s_h in 1usize..3, s_w in 1usize..3,
        same in any::<bool>(), pad in (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        dw in prop::option::weighted(0.25, 1usize..4),
        bias in any::<bool>(), bn in any::<bool>(), residual in any::<bool>(),
        act in prop::sample::select(vec![Activation::Linear, Activation::ReLU, Activation::ReLU6]),
        dead in any::<bool>(),
        pool in prop::option::weighted(0.5, (any::<bool>(), 2usize..4, 1usize..3, 0usize..2, any::<bool>())),
    ) -> Option<ConvForwardSpec> {
        let k_w = if k_w_odd && k > 1 { k - 1 } else { k };
        let pad = if same {
            Padding2d::same(h, w, k, k_w, s_h, s_w)
        } else {
            Padding2d { top: pad.0, bottom: pad.1, left: pad.2, right: pad.3 }
        };
        let c_out = dw.map_or(c_out, |m| c_in * m);
        let geom = Conv2dGeom::new(n, (h, w, c_in), (k, k_w), c_out, (s_h, s_w), pad)?;
        let pool = match pool {
            None => None,
            Some((max, pk, ps, ppad, argmax)) => Some(PoolEpilogue::new(
                max,
                (geom.out_h, geom.out_w),
                (pk, pk),
                (ps, ps),
                Padding2d::symmetric(ppad.min(pk - 1)),
                argmax,
            )?),
        };
        Some(ConvForwardSpec {
            geom, depth_multiplier: dw, bias, bn, activation: act, residual, pool,
            count_dead: dead, winograd,
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn fused_conv_matches_the_reference_over_random_shapes(s in conv_spec(), seed in any::<u64>()) {
        let Some(s) = s else { return Ok(()) };
        check(s, seed);
    }
}

#[test]
fn the_3x3_inner_loop_keeps_every_value_in_registers() {
    let g = geom(
        1,
        (56, 56, 64),
        (3, 3),
        64,
        (1, 1),
        Padding2d::same(56, 56, 3, 3, 1, 1),
    );
    let mut jit = Jit::new().expect("JIT");
    jit.keep_disasm();
    emit_conv_forward(&mut jit, "conv3x3", &spec(g)).expect("emits");
    let asm = jit.last_disasm().expect("disassembly kept");
    // The unrolled reduction loop of a full tile: 4 steps × 4 pixels × 2 vectors of FMAs.
    let loop_bodies: Vec<&str> = asm
        .split("\nblock")
        .filter(|b| b.matches("vfmadd").count() == 32)
        .collect();
    assert!(!loop_bodies.is_empty(), "no 4×8 loop body found:\n{asm}");
    let clean = loop_bodies.iter().filter(|b| !b.contains("rsp")).count();
    assert!(clean > 0, "every loop body spills:\n{asm}");
    // Each pixel's broadcast is shared by the tile's weight vectors: at most one broadcast
    // per two FMAs (the register copy each shared use needs is eliminated at rename).
    for body in loop_bodies {
        let broadcasts = body.matches("vbroadcastss").count();
        assert!(
            broadcasts <= 16,
            "{broadcasts} broadcasts for 32 FMAs:\n{body}"
        );
    }
}

/// A spec computed by the Winograd kernel whenever it supports it, cheaper or not.
fn winograd_spec(g: Conv2dGeom) -> ConvForwardSpec {
    winograd::ALWAYS.set(true);
    ConvForwardSpec {
        winograd: true,
        ..spec(g)
    }
}

/// MNIST's second conv by Winograd: 11 × 11 outputs under a 2×2 pool, so 5 × 5 tiles, the
/// sample one item; 64 and 37 output channels (a 4-channel block and a scalar tail).
#[test]
fn winograd_conv_under_a_max_pool_matches_the_reference() {
    for (c_out, seed) in [(64, 30), (37, 31)] {
        let g = geom(3, (13, 13, 32), (3, 3), c_out, (1, 1), Padding2d::default());
        let pool = PoolEpilogue::new(true, (11, 11), (2, 2), (2, 2), Padding2d::default(), true);
        let s = ConvForwardSpec {
            pool,
            count_dead: true,
            ..winograd_spec(g)
        };
        let k = emit_conv_forward(&mut Jit::new().expect("JIT"), "k", &s).expect("emits");
        assert_eq!(k.weights, WeightLayout::Winograd);
        assert_eq!(
            (k.items_per_sample, k.computed_per_sample),
            (1, 100 * c_out)
        );
        check(s, seed);
    }
}

/// `same` padding over odd sizes (the last tile row and column have one output), input
/// channels that are not a multiple of 4, batch-norm and ReLU6, and an average pool.
#[test]
fn winograd_same_padding_odd_sizes_and_channel_tails_match_the_reference() {
    let g = geom(
        2,
        (9, 7, 19),
        (3, 3),
        21,
        (1, 1),
        Padding2d::same(9, 7, 3, 3, 1, 1),
    );
    check(
        ConvForwardSpec {
            bn: true,
            activation: Activation::ReLU6,
            count_dead: true,
            ..winograd_spec(g)
        },
        32,
    );
    let pool = PoolEpilogue::new(false, (9, 7), (2, 2), (2, 2), Padding2d::default(), false);
    check(
        ConvForwardSpec {
            pool,
            ..winograd_spec(g)
        },
        33,
    );
}

/// With 256 × 256 channels an item holds several tile rows (here 6 of a sample's 12).
#[test]
fn winograd_items_of_several_rows_match_the_reference() {
    let g = geom(
        1,
        (24, 60, 256),
        (3, 3),
        256,
        (1, 1),
        Padding2d::same(24, 60, 3, 3, 1, 1),
    );
    let s = winograd_spec(g);
    let k = emit_conv_forward(&mut Jit::new().expect("JIT"), "k", &s).expect("emits");
    assert_eq!(k.items_per_sample, 2, "two items of 6 tile rows");
    check(s, 35);
}

/// A row too wide for one item is cut into column chunks of unequal width (here 33 and 32
/// tiles), and an asymmetric padding of 2 (the input gradient of a valid convolution).
#[test]
fn winograd_wide_rows_in_chunks_match_the_reference() {
    let pad = Padding2d {
        top: 2,
        bottom: 1,
        left: 2,
        right: 0,
    };
    let g = geom(1, (4, 130, 128), (3, 3), 16, (1, 1), pad);
    assert_eq!((g.out_h, g.out_w), (5, 130));
    let s = ConvForwardSpec {
        count_dead: true,
        ..winograd_spec(g)
    };
    let k = emit_conv_forward(&mut Jit::new().expect("JIT"), "k", &s).expect("emits");
    assert_eq!(k.items_per_sample, 3 * 2, "three tile rows of two chunks");
    check(s, 34);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn winograd_conv_matches_the_reference_over_random_shapes(
        n in 1usize..3, h in 2usize..12, w in 2usize..14,
        c_in in prop::sample::select(vec![16usize, 19, 24, 33]),
        c_out in prop::sample::select(vec![16usize, 17, 22, 32, 45]),
        pad in (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        bias in any::<bool>(), bn in any::<bool>(), dead in any::<bool>(),
        act in prop::sample::select(vec![Activation::Linear, Activation::ReLU, Activation::ReLU6]),
        pool in prop::option::weighted(0.5, (any::<bool>(), any::<bool>())),
        seed in any::<u64>(),
    ) {
        let pad = Padding2d { top: pad.0, bottom: pad.1, left: pad.2, right: pad.3 };
        let Some(g) = Conv2dGeom::new(n, (h, w, c_in), (3, 3), c_out, (1, 1), pad) else {
            return Ok(());
        };
        if g.out_h < 2 || g.out_w < 2 {
            return Ok(());
        }
        let pool = pool.and_then(|(max, argmax)| {
            PoolEpilogue::new(max, (g.out_h, g.out_w), (2, 2), (2, 2), Padding2d::default(), argmax)
        });
        let s = ConvForwardSpec {
            bias, bn, activation: act, pool, count_dead: dead, ..winograd_spec(g)
        };
        prop_assert!(winograd::eligible(&s));
        check(s, seed);
    }
}

/// The input gradient of a 3×3 stride-1 convolution computed as a Winograd forward
/// convolution of `dz` (valid, `same` and asymmetric paddings) matches the reference.
#[test]
fn winograd_input_gradient_matches_the_reference() {
    winograd::ALWAYS.set(true);
    let asymmetric = Padding2d {
        top: 0,
        bottom: 1,
        left: 2,
        right: 1,
    };
    // (input, c_out, padding, batch, rows and columns of dz that may be nonzero, from the
    // end): every tile active; a zero last row and column (a 2×2 pool's leftovers), filled
    // rather than computed; MNIST's second conv; rows wide enough for column chunks.
    let cases = [
        ((9, 10, 19), 33, Padding2d::default(), 2, (0, 0)),
        (
            (9, 10, 19),
            33,
            Padding2d::same(9, 10, 3, 3, 1, 1),
            2,
            (1, 1),
        ),
        ((9, 10, 19), 33, asymmetric, 1, (2, 3)),
        ((13, 13, 32), 64, Padding2d::default(), 2, (1, 1)),
        (
            (3, 140, 16),
            128,
            Padding2d::same(3, 140, 3, 3, 1, 1),
            1,
            (0, 5),
        ),
    ];
    for ((hwc, c_out, pad, n, (cut_h, cut_w)), seed) in cases.into_iter().zip(40..) {
        let g = geom(n, hwc, (3, 3), c_out, (1, 1), pad);
        let active = (g.out_h - cut_h, g.out_w - cut_w);
        let mut rng = Rng::new(seed);
        let mut dz = rng.vec(g.output_len(), -1.0, 1.0);
        for (i, d) in dz.iter_mut().enumerate() {
            let (row, col) = (i / c_out / g.out_w % g.out_h, i / c_out % g.out_w);
            if row >= active.0 || col >= active.1 {
                *d = 0.0;
            }
        }
        let w = rng.vec(9 * g.c_in * g.c_out, -1.0, 1.0);
        let mut jit = Jit::new().expect("JIT");
        let (dx_geom, k) = winograd::emit_input_gradient(&mut jit, "dx", &g, active, true)
            .expect("emits")
            .expect("Winograd supports it");
        assert_eq!(k.weights, WeightLayout::Winograd);
        let kernel = jit.finish().expect("compiles").remove(0);
        let mut u = Vec::new();
        winograd::transform_input_gradient_weights(&dx_geom, &w, &mut u);
        let mut bufs = vec![
            Guarded::input(&dz),
            Guarded::input(&u),
            Guarded::output(g.input_len()),
            Guarded::scratch(k.call_scratch),
        ];
        run_split(&kernel, &k.buffers, &mut bufs, g.n * k.items_per_sample);
        let mut want = vec![0.0f64; g.input_len()];
        reference::conv2d_backward_input(&g, &f64s(&dz), &f64s(&w), &mut want);
        let atol = 8e-6 * 9.0 * c_out as f64 + 1e-6;
        assert_close("dx", &bufs[2].f32s(), &want, 1e-5, atol);
    }
}

/// The Winograd kernel gradient (transforms, products over the batch in chunks, then
/// `Gᵀ dU G`) matches the reference, for valid, `same` and asymmetric paddings, odd sizes
/// and channel counts with tails.
#[test]
fn winograd_kernel_gradient_matches_the_reference() {
    use winograd::weight_grad::WeightGrad;
    let cases = [
        ((13, 13, 32), 64, Padding2d::default(), 4),
        ((9, 10, 19), 21, Padding2d::same(9, 10, 3, 3, 1, 1), 2),
        (
            (7, 12, 16),
            33,
            Padding2d {
                top: 2,
                bottom: 0,
                left: 1,
                right: 2,
            },
            5,
        ),
    ];
    let more = [
        // Small maps: several samples per chunk, and a last item with fewer samples.
        ((5, 5, 64), 64, Padding2d::default(), 10),
        // A map too large for one chunk: chunks of tile rows, the last one shorter.
        ((30, 30, 32), 32, Padding2d::same(30, 30, 3, 3, 1, 1), 2),
    ];
    // Under a 2×2 pool, an 11 × 11 map's last row and column get no gradient: the tiles
    // cover the 10 × 10 that do.
    let pooled = [((13, 13, 32), 64, Padding2d::default(), 3)];
    let all = cases.into_iter().chain(more).map(|c| (c, false));
    let all = all.chain(pooled.into_iter().map(|c| (c, true)));
    for ((((h, w, c_in), c_out, pad, n), under_pool), seed) in all.zip(50..) {
        let g = geom(n, (h, w, c_in), (3, 3), c_out, (1, 1), pad);
        let active = if under_pool {
            (g.out_h / 2 * 2, g.out_w / 2 * 2)
        } else {
            (g.out_h, g.out_w)
        };
        let wg = WeightGrad::new(&g, active).expect("Winograd kernel gradient");
        check_kernel_gradient(&wg, active, seed);
    }
}

/// The Winograd kernel gradient `wg` against the reference, with `dy` zero outside `active`.
fn check_kernel_gradient(
    wg: &winograd::weight_grad::WeightGrad,
    active: (usize, usize),
    seed: u64,
) {
    use winograd::weight_grad::{emit, kernel_gradient};
    let g = wg.geom;
    let (n, c_in, c_out) = (g.n, g.c_in, g.c_out);
    let mut rng = Rng::new(seed);
    let x = rng.vec(g.input_len(), -1.0, 1.0);
    let mut dy = rng.vec(g.output_len(), -1.0, 1.0);
    for (i, d) in dy.iter_mut().enumerate() {
        let (row, col) = (i / c_out / g.out_w % g.out_h, i / c_out % g.out_w);
        if row >= active.0 || col >= active.1 {
            *d = 0.0;
        }
    }
    let mut jit = Jit::new().expect("JIT");
    let items = emit(&mut jit, "dw", wg).expect("emits");
    assert_eq!(items, wg.items());
    let kernel = jit.finish().expect("compiles").remove(0);
    let mut bufs = vec![
        Guarded::input(&x),
        Guarded::input(&dy),
        Guarded::output(wg.partial_len()),
        Guarded::scratch(wg.scratch_len()),
    ];
    run_split(
        &kernel,
        &["x", "dy", "partial", "scratch"],
        &mut bufs,
        items,
    );
    let mut dw = vec![0.0f32; 9 * c_in * c_out];
    kernel_gradient(wg, &bufs[2].f32s(), &mut dw);
    let mut want = vec![0.0f64; dw.len()];
    reference::conv2d_backward_weight(&g, &f64s(&x), &f64s(&dy), &mut want);
    let sum_len = (n * g.out_h * g.out_w) as f64;
    assert_close("dw", &dw, &want, 1e-5, 8e-6 * sum_len + 1e-6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn winograd_kernel_gradient_matches_the_reference_over_random_shapes(
        n in 1usize..4, h in 3usize..14, w in 3usize..14,
        c_in in prop::sample::select(vec![16usize, 19, 24]),
        c_out in prop::sample::select(vec![16usize, 17, 22, 32]),
        pad in (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        cut in (0usize..2, 0usize..2),
        seed in any::<u64>(),
    ) {
        let pad = Padding2d { top: pad.0, bottom: pad.1, left: pad.2, right: pad.3 };
        let Some(g) = Conv2dGeom::new(n, (h, w, c_in), (3, 3), c_out, (1, 1), pad) else {
            return Ok(());
        };
        let active = (g.out_h.saturating_sub(cut.0).max(1), g.out_w.saturating_sub(cut.1).max(1));
        // Shapes where the direct kernel gradient is cheaper have no Winograd one.
        let Some(wg) = winograd::weight_grad::WeightGrad::new(&g, active) else {
            return Ok(());
        };
        check_kernel_gradient(&wg, active, seed);
    }
}

/// Winograd is chosen where it takes fewer multiplies: MNIST's second conv and its input
/// gradient, not the input gradient of its third (3×3 → 5×5 through a padding of 2), nor a
/// first conv with one input channel.
#[test]
fn winograd_is_chosen_where_it_saves_multiplies() {
    let chosen = |g: Conv2dGeom| {
        let s = ConvForwardSpec {
            winograd: true,
            ..spec(g)
        };
        winograd::eligible(&s)
    };
    let conv2 = geom(64, (13, 13, 32), (3, 3), 64, (1, 1), Padding2d::default());
    let conv3 = geom(64, (5, 5, 64), (3, 3), 64, (1, 1), Padding2d::default());
    assert!(chosen(conv2));
    let dx2 = winograd::input_gradient_geom(&conv2).expect("3×3 stride 1");
    assert_eq!((dx2.h, dx2.w, dx2.out_h, dx2.out_w), (11, 11, 13, 13));
    assert!(chosen(dx2));
    assert!(!chosen(
        winograd::input_gradient_geom(&conv3).expect("3×3 stride 1")
    ));
    assert!(!chosen(geom(
        64,
        (28, 28, 1),
        (3, 3),
        32,
        (1, 1),
        Padding2d::default()
    )));
    assert!(winograd::weight_grad::WeightGrad::new(&conv2, (10, 10)).is_some());
}
