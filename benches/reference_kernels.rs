//! Criterion benchmarks of the reference kernels on the MNIST convnet's middle convolution
//! (64 samples, 13×13×32 → 11×11×64, 3×3 valid): forward, input gradient, weight gradient.
//! Run with `cargo bench --bench reference_kernels`.

use cnntui_kernels::reference as k;
use cnntui_kernels::{Conv2dGeom, Padding2d};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn conv(c: &mut Criterion) {
    let g =
        Conv2dGeom::new(64, (13, 13, 32), (3, 3), 64, (1, 1), Padding2d::default()).expect("fits");
    let x: Vec<f32> = (0..g.input_len())
        .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
        .collect();
    let w: Vec<f32> = (0..3 * 3 * 32 * 64)
        .map(|i| ((i * 104_729) % 97) as f32 / 97.0 - 0.5)
        .collect();
    let mut y = vec![0.0f32; g.output_len()];
    let mut dx = vec![0.0f32; g.input_len()];
    let mut dw = vec![0.0f32; w.len()];
    let mut group = c.benchmark_group("reference_conv_13x13x32_to_64_batch64");
    group.throughput(Throughput::Elements(2 * g.macs() as u64));
    group.bench_function("forward", |b| {
        b.iter(|| k::conv2d_forward(&g, &x, &w, None, &mut y))
    });
    group.bench_function("backward_input", |b| {
        b.iter(|| k::conv2d_backward_input(&g, &y, &w, &mut dx))
    });
    group.bench_function("backward_weight", |b| {
        b.iter(|| k::conv2d_backward_weight(&g, &x, &y, &mut dw))
    });
    group.finish();
}

criterion_group!(benches, conv);
criterion_main!(benches);
