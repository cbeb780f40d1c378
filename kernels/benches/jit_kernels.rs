//! Forward JIT kernels on one thread: GFLOP/s of the convolutions the issue names (the 3×3
//! 64→64 conv on 56×56, the MNIST convs, VGG16 block 1), dense layers, pooling, and the
//! compile time of one kernel. Throughput is reported in elements = floating-point
//! operations (2 per multiply-add), so criterion's `Gelem/s` reads as GFLOP/s. A 3×3
//! stride-1 convolution is measured twice, as the direct kernel (`…_direct`) and as the
//! Winograd kernel (`…_winograd`); both are credited with the direct convolution's
//! operations, so the Winograd figure is an effective rate (it multiplies 2.25 times less).
//!
//! `cargo bench -p cnntui-kernels --bench jit_kernels -- conv3x3`; set `CNNTUI_DISASM=1` to
//! print the machine code of the 3×3 kernel (to check its inner loop for spills).

use std::hint::black_box;

use cnntui_kernels::geom::{Conv2dGeom, Padding2d, Pool2dGeom};
use cnntui_kernels::jit::conv::{ConvForwardSpec, PoolEpilogue, WeightLayout, emit_conv_forward};
use cnntui_kernels::jit::dense::{DenseSpec, emit_dense_forward};
use cnntui_kernels::jit::pool::{PoolSpec, emit_pool_forward};
use cnntui_kernels::jit::{Jit, Kernel};
use cnntui_kernels::reference::Activation;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A compiled kernel with buffers for `items` work items.
struct Bench {
    kernel: Kernel,
    bufs: Vec<Vec<f32>>,
    items: usize,
}

impl Bench {
    fn run(&mut self) {
        let ptrs: Vec<*mut u8> = self
            .bufs
            .iter_mut()
            .map(|b| b.as_mut_ptr().cast())
            .collect();
        // SAFETY: every buffer is sized for all items by `conv`/`dense`/`pool` below.
        unsafe { self.kernel.call(black_box(&ptrs), 0, self.items) };
    }
}

fn conv_spec(geom: Conv2dGeom, pool: bool, winograd: bool) -> ConvForwardSpec {
    ConvForwardSpec {
        geom,
        depth_multiplier: None,
        bias: true,
        bn: false,
        activation: Activation::ReLU,
        residual: false,
        pool: pool.then(|| {
            PoolEpilogue::new(
                true,
                (geom.out_h, geom.out_w),
                (2, 2),
                (2, 2),
                Padding2d::default(),
                true,
            )
            .expect("pool fits")
        }),
        count_dead: false,
        winograd,
    }
}

/// The kernel of `spec`, with whether it is a Winograd kernel.
fn conv(spec: &ConvForwardSpec) -> (Bench, bool) {
    let mut jit = Jit::new().expect("JIT");
    if std::env::var_os("CNNTUI_DISASM").is_some() {
        jit.keep_disasm();
    }
    let k = emit_conv_forward(&mut jit, "bench_conv", spec).expect("emits");
    if let Some(d) = jit.last_disasm() {
        println!("{d}");
    }
    let kernel = jit.finish().expect("compiles").remove(0);
    let g = spec.geom;
    let items = g.n * k.items_per_sample;
    let (oh, ow, c) = k.out_shape;
    let bufs = k
        .buffers
        .iter()
        .map(|name| match *name {
            "x" => vec![0.5; g.input_len()],
            "w" => vec![0.01; k.weights.len(&g, g.k_h * g.k_w * g.c_in * g.c_out)],
            "y" | "argmax" => vec![0.0; g.n * oh * ow * c],
            "residual" => vec![0.0; g.output_len()],
            "dead" => vec![0.0; items],
            "scratch" => vec![0.0; k.call_scratch],
            _ => vec![0.1; g.c_out],
        })
        .collect();
    let bench = Bench {
        kernel,
        bufs,
        items,
    };
    (bench, k.weights == WeightLayout::Winograd)
}

fn geom(n: usize, hwc: (usize, usize, usize), k: usize, c_out: usize, same: bool) -> Conv2dGeom {
    let pad = if same {
        Padding2d::same(hwc.0, hwc.1, k, k, 1, 1)
    } else {
        Padding2d::default()
    };
    Conv2dGeom::new(n, hwc, (k, k), c_out, (1, 1), pad).expect("fits")
}

/// This thread's on-CPU nanoseconds (`/proc/thread-self/schedstat`), to measure throughput
/// per CPU-second on a shared machine where wall-clock time includes waiting for a core.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Prints GFLOP per on-CPU second (median of 7 rounds of ~0.3 s), beside criterion's
/// wall-clock figure.
fn report_cpu_gflops(name: &str, flops: f64, b: &mut Bench) {
    let Some(_) = cpu_ns() else { return };
    b.run();
    let mut rates = Vec::new();
    for _ in 0..7 {
        let (t0, mut runs) = (cpu_ns().unwrap_or(0), 0u32);
        while cpu_ns().unwrap_or(0) - t0 < 300_000_000 {
            b.run();
            runs += 1;
        }
        let dt = (cpu_ns().unwrap_or(0) - t0) as f64;
        rates.push(flops * f64::from(runs) / dt);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{name}: {:.1} GFLOP/s per on-CPU second (median of 7)",
        rates[3]
    );
}

fn bench_convs(c: &mut Criterion) {
    let cases = [
        (
            "conv3x3_64x64_56x56_same",
            geom(1, (56, 56, 64), 3, 64, true),
            false,
        ),
        (
            "mnist_conv1_28x28x1_32_pool",
            geom(8, (28, 28, 1), 3, 32, false),
            true,
        ),
        (
            "mnist_conv2_13x13x32_64_pool",
            geom(8, (13, 13, 32), 3, 64, false),
            true,
        ),
        (
            "mnist_conv2_13x13x32_64_conv_only",
            geom(8, (13, 13, 32), 3, 64, false),
            false,
        ),
        (
            "mnist_conv3_5x5x64_64",
            geom(8, (5, 5, 64), 3, 64, false),
            false,
        ),
        (
            "vgg_block1_conv1_224x224x3_64",
            geom(1, (224, 224, 3), 3, 64, true),
            false,
        ),
        (
            "vgg_block1_conv2_224x224x64_64_pool",
            geom(1, (224, 224, 64), 3, 64, true),
            true,
        ),
        (
            "vgg_block1_conv2_224x224x64_64_conv_only",
            geom(1, (224, 224, 64), 3, 64, true),
            false,
        ),
        (
            "vgg_block3_conv2_56x56x256_256",
            geom(1, (56, 56, 256), 3, 256, true),
            false,
        ),
        (
            "vgg_block4_conv2_28x28x512_512",
            geom(1, (28, 28, 512), 3, 512, true),
            false,
        ),
        (
            "vgg_block5_conv2_14x14x512_512",
            geom(1, (14, 14, 512), 3, 512, true),
            false,
        ),
    ];
    let mut group = c.benchmark_group("conv");
    group.sample_size(20);
    for (name, g, pool) in cases {
        for winograd in [false, true] {
            let (mut b, is_winograd) = conv(&conv_spec(g, pool, winograd));
            if winograd && !is_winograd {
                continue;
            }
            let name = format!("{name}_{}", if is_winograd { "winograd" } else { "direct" });
            // Criterion's name filter (its first positional argument) does not reach this
            // setup code: apply it by hand.
            let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
            let selected = filter.is_none_or(|f| name.contains(f.as_str()));
            if selected && std::env::var_os("CNNTUI_CPU_TIME").is_some() {
                report_cpu_gflops(&name, 2.0 * g.macs() as f64, &mut b);
            }
            group.throughput(Throughput::Elements(2 * g.macs() as u64));
            group.bench_function(name, |bench| bench.iter(|| b.run()));
        }
    }
    group.finish();
}

/// Fused conv + ReLU + max-pool against the same conv writing its activation, then the
/// standalone max-pool (with argmax) reading it back.
fn bench_fused_vs_unfused(c: &mut Criterion) {
    let mut group = c.benchmark_group("fusion");
    group.sample_size(20);
    for (name, g) in [
        ("mnist_conv1", geom(8, (28, 28, 1), 3, 32, false)),
        ("mnist_conv2", geom(8, (13, 13, 32), 3, 64, false)),
        ("vgg_block1_conv2", geom(1, (224, 224, 64), 3, 64, true)),
    ] {
        let (mut fused, _) = conv(&conv_spec(g, true, true));
        group.bench_function(format!("{name}_fused"), |bench| bench.iter(|| fused.run()));
        let (mut conv_alone, _) = conv(&conv_spec(g, false, true));
        let pg = Pool2dGeom::new(
            g.n,
            (g.out_h, g.out_w, g.c_out),
            (2, 2),
            (2, 2),
            Padding2d::default(),
        )
        .expect("fits");
        let spec = PoolSpec {
            geom: pg,
            max: true,
            record_argmax: true,
        };
        let mut jit = Jit::new().expect("JIT");
        emit_pool_forward(&mut jit, "pool", &spec).expect("emits");
        let kernel = jit.finish().expect("compiles").remove(0);
        let mut pool = Bench {
            kernel,
            bufs: vec![
                vec![0.0; pg.input_len()],
                vec![0.0; pg.output_len()],
                vec![0.0; pg.output_len()],
            ],
            items: pg.n * pg.out_h,
        };
        group.bench_function(format!("{name}_unfused"), |bench| {
            bench.iter(|| {
                conv_alone.run();
                // The pool reads the conv's output buffer.
                let y = conv_alone
                    .bufs
                    .iter()
                    .position(|b| b.len() == pg.input_len());
                if let Some(y) = y {
                    std::mem::swap(&mut pool.bufs[0], &mut conv_alone.bufs[y]);
                    pool.run();
                    std::mem::swap(&mut pool.bufs[0], &mut conv_alone.bufs[y]);
                }
            })
        });
    }
    group.finish();
}

fn bench_dense(c: &mut Criterion) {
    let mut group = c.benchmark_group("dense");
    group.sample_size(20);
    for (name, n, d_in, d_out) in [
        ("dense_64x576_64", 64, 576, 64),
        ("dense_8x4096_4096", 8, 4096, 4096),
    ] {
        let spec = DenseSpec {
            d_in,
            d_out,
            bias: true,
            activation: Activation::ReLU,
        };
        let mut jit = Jit::new().expect("JIT");
        emit_dense_forward(&mut jit, "bench_dense", &spec).expect("emits");
        let kernel = jit.finish().expect("compiles").remove(0);
        let mut b = Bench {
            kernel,
            bufs: vec![
                vec![0.5; n * d_in],
                vec![0.01; d_in * d_out],
                vec![0.1; d_out],
                vec![0.0; n * d_out],
            ],
            items: n,
        };
        group.throughput(Throughput::Elements((2 * n * d_in * d_out) as u64));
        group.bench_function(name, |bench| bench.iter(|| b.run()));
    }
    group.finish();
}

fn bench_pool(c: &mut Criterion) {
    let g = Pool2dGeom::new(1, (224, 224, 64), (2, 2), (2, 2), Padding2d::default()).expect("fits");
    let spec = PoolSpec {
        geom: g,
        max: true,
        record_argmax: true,
    };
    let mut jit = Jit::new().expect("JIT");
    emit_pool_forward(&mut jit, "bench_pool", &spec).expect("emits");
    let kernel = jit.finish().expect("compiles").remove(0);
    let mut b = Bench {
        kernel,
        bufs: vec![
            vec![0.5; g.input_len()],
            vec![0.0; g.output_len()],
            vec![0.0; g.output_len()],
        ],
        items: g.n * g.out_h,
    };
    let mut group = c.benchmark_group("pool");
    group.throughput(Throughput::Bytes((4 * g.input_len()) as u64));
    group.bench_function("max_pool_224x224x64_argmax", |bench| bench.iter(|| b.run()));
    group.finish();
}

fn bench_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    for (name, spec) in [
        (
            "compile_conv3x3_64x64",
            conv_spec(geom(1, (56, 56, 64), 3, 64, true), false, true),
        ),
        (
            "compile_vgg_conv2_pool",
            conv_spec(geom(1, (224, 224, 64), 3, 64, true), true, true),
        ),
    ] {
        group.bench_function(name, |bench| {
            bench.iter(|| {
                let mut jit = Jit::new().expect("JIT");
                emit_conv_forward(&mut jit, "c", &spec).expect("emits");
                black_box(jit.finish().expect("compiles"))
            })
        });
    }
    // Every forward kernel of VGG16 at 224×224 (13 convs, pools fused after each block's
    // last conv, and the three dense layers) in one batch.
    group.sample_size(10);
    group.bench_function("compile_vgg16_forward", |bench| {
        bench.iter(|| {
            let mut jit = Jit::new().expect("JIT");
            let (mut hw, mut c_in) = (224, 3);
            for (convs, c_out) in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)] {
                for i in 0..convs {
                    let s = conv_spec(
                        geom(1, (hw, hw, c_in), 3, c_out, true),
                        i + 1 == convs,
                        true,
                    );
                    emit_conv_forward(&mut jit, "vgg", &s).expect("emits");
                    c_in = c_out;
                }
                hw /= 2;
            }
            for (d_in, d_out, act) in [
                (7 * 7 * 512, 4096, Activation::ReLU),
                (4096, 4096, Activation::ReLU),
                (4096, 1000, Activation::Linear),
            ] {
                let spec = DenseSpec {
                    d_in,
                    d_out,
                    bias: true,
                    activation: act,
                };
                emit_dense_forward(&mut jit, "vgg_fc", &spec).expect("emits");
            }
            black_box(jit.finish().expect("compiles"))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_convs,
    bench_fused_vs_unfused,
    bench_dense,
    bench_pool,
    bench_compile
);
criterion_main!(benches);
