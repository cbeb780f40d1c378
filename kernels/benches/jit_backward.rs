//! Criterion benchmarks of the JIT `Conv2D` backward kernels (input and kernel gradients),
//! single-threaded, beside the reference kernels. Throughput is in FLOP (2 per multiply-add),
//! so criterion's `elem/s` reads as FLOP/s.
//!
//! `cargo bench -p cnntui-kernels --bench jit_backward`

use std::hint::black_box;

use cnntui_kernels::jit::Jit;
use cnntui_kernels::jit::backward::conv::{
    conv2d_transposed_weight_len, emit_conv2d_backward_input, emit_conv2d_backward_weight,
    emit_conv2d_weight_transpose,
};
use cnntui_kernels::{Conv2dGeom, Padding2d, reference};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / 16_777_216.0
                - 0.5
        })
        .collect()
}

fn cases() -> Vec<(&'static str, Conv2dGeom)> {
    let valid = Padding2d::default();
    let conv = |n, hwc, c_out, pad| Conv2dGeom::new(n, hwc, (3, 3), c_out, (1, 1), pad).unwrap();
    vec![
        ("mnist_conv1_b64", conv(64, (28, 28, 1), 32, valid)),
        ("mnist_conv2_b64", conv(64, (13, 13, 32), 64, valid)),
        ("mnist_conv3_b64", conv(64, (5, 5, 64), 64, valid)),
        (
            "c64_56x56_same_b1",
            conv(1, (56, 56, 64), 64, Padding2d::symmetric(1)),
        ),
    ]
}

fn conv_backward(c: &mut Criterion) {
    for (name, g) in cases() {
        let mut group = c.benchmark_group(format!("conv_backward/{name}"));
        group.throughput(Throughput::Elements(2 * g.macs() as u64));
        group.sample_size(20);
        let w_len = g.k_h * g.k_w * g.c_in * g.c_out;
        let (x, w, dy) = (
            data(g.input_len(), 1),
            data(w_len, 2),
            data(g.output_len(), 3),
        );
        let mut jit = Jit::new().expect("JIT available");
        let taps = emit_conv2d_weight_transpose(&mut jit, "wt", &g).unwrap();
        let dx_items = emit_conv2d_backward_input(&mut jit, "dx", &g).unwrap();
        let dw_items = emit_conv2d_backward_weight(&mut jit, "dw", &g).unwrap();
        let k = jit.finish().unwrap();
        let mut wt = vec![0.0f32; conv2d_transposed_weight_len(&g)];
        let mut dx = vec![0.0f32; g.input_len()];
        let mut dw = vec![0.0f32; w_len];
        let (mut x, mut w, mut dy) = (x, w, dy);
        let ptr = |v: &mut Vec<f32>| v.as_mut_ptr().cast::<u8>();
        let wt_bufs = [ptr(&mut w), ptr(&mut wt)];
        let dx_bufs = [ptr(&mut dy), ptr(&mut wt), ptr(&mut dx)];
        let dw_bufs = [ptr(&mut x), ptr(&mut dy), ptr(&mut dw)];
        group.bench_function("input_jit", |b| {
            b.iter(|| {
                // SAFETY: the buffers are sized from `g` exactly as the kernels document, and
                // live across the calls; one call covers every item.
                unsafe {
                    k[0].call(&wt_bufs, 0, taps);
                    k[1].call(&dx_bufs, 0, dx_items);
                }
            })
        });
        group.bench_function("weight_jit", |b| {
            // SAFETY: as above.
            b.iter(|| unsafe { k[2].call(&dw_bufs, 0, dw_items) })
        });
        let mut rdx = vec![0.0f32; g.input_len()];
        let mut rdw = vec![0.0f32; w_len];
        group.bench_function("input_reference", |b| {
            b.iter(|| reference::conv2d_backward_input(&g, black_box(&dy), &w, &mut rdx))
        });
        group.bench_function("weight_reference", |b| {
            b.iter(|| reference::conv2d_backward_weight(&g, black_box(&x), &dy, &mut rdw))
        });
        group.finish();
    }
}

criterion_group!(benches, conv_backward);
criterion_main!(benches);
