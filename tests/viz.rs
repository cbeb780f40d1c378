//! The visualisations on the MNIST convnet, trained briefly by the real binary: activations,
//! filter patterns and Grad-CAM agree on both backends and have the properties that make them
//! worth looking at.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cnntui::data::load_idx_dir;
use cnntui::ir::{self, Graph};
use cnntui::runtime::checkpoint;
use cnntui::runtime::{Backend, ParamStore};
use cnntui::viz::filters::{AscentSettings, PixelNorm, ascend};
use cnntui::viz::layers::feature_layer;
use cnntui::viz::{VizError, activations::activations, gradcam::grad_cam};

/// The MNIST convnet after one epoch on 3,000 images (trained once per test binary).
fn trained() -> &'static (Graph, ParamStore) {
    static MODEL: OnceLock<(Graph, ParamStore)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cnntui-viz-{}", std::process::id()));
        let out = Command::new(env!("CARGO_BIN_EXE_cnntui"))
            .args([
                "train",
                "models/mnist.ron",
                "--headless",
                "--epochs",
                "1",
                "--limit",
                "3000",
            ])
            .arg("--save")
            .arg(&dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let graph = ir::load(Path::new("models/mnist.ron")).unwrap();
        let mut params = ParamStore::zeros_like(&graph);
        checkpoint::load(&dir.join("checkpoint.safetensors"))
            .unwrap()
            .apply(&graph, &mut params, None)
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (graph, params)
    })
}

/// Test image `i` of MNIST, rescaled to [0, 1], and its label.
fn digit(i: usize) -> (Vec<f32>, u32) {
    let splits = load_idx_dir(Path::new("data/mnist"), 1.0 / 255.0).unwrap();
    (splits.test.image(i).to_vec(), splits.test.labels[i])
}

/// The largest absolute difference between two equally long results.
fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cnntui-viz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn activations_agree_on_both_backends_and_cover_every_conv_and_pool_layer() {
    let (g, p) = trained();
    let (x, _) = digit(0);
    let r = activations(g, p, Backend::Reference, &x, None).unwrap();
    let j = activations(g, p, Backend::Jit, &x, None).unwrap();
    let names: Vec<&str> = r.iter().map(|l| l.layer.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv2d",
            "max_pooling2d",
            "conv2d_1",
            "max_pooling2d_1",
            "conv2d_2"
        ]
    );
    assert_eq!(r.len(), j.len());
    for (a, b) in r.iter().zip(&j) {
        let worst = max_difference(&a.values, &b.values);
        assert!(worst < 1e-3, "{}: backends differ by {worst}", a.layer);
        assert!(
            (0.0..1.0).contains(&a.blank_fraction),
            "{}: every channel blank",
            a.layer
        );
    }
    let dir = out_dir("act");
    let written = cnntui::viz::activations::write_grids(&r, &dir).unwrap();
    assert_eq!(written.len(), 5);
    let first = image::open(&written[0]).unwrap();
    // 32 channels, 16 to a row: two rows of tiles.
    assert!(
        first.width() > 2 * first.height(),
        "{}×{}",
        first.width(),
        first.height()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gradient_ascent_raises_every_tried_filters_mean_activation() {
    let (g, p) = trained();
    // 30 steps of 0.03 RMS from grey ± 0.1 raise the mean ReLU output of each of the first
    // eight filters of every convolution by at least 0.02 (measured: 0.04 to 8.5), including
    // filters the ReLU silences at the start.
    for layer in ["conv2d", "conv2d_1", "conv2d_2"] {
        let v = feature_layer(g, layer).unwrap();
        let filters: Vec<usize> = (0..8).collect();
        let pats = ascend(
            g,
            p,
            Backend::Jit,
            v,
            &filters,
            &PixelNorm::identity(1),
            &AscentSettings::default(),
        )
        .unwrap();
        for pat in &pats {
            assert!(
                pat.end_score >= pat.start_score + 0.02,
                "{layer} filter {}: {:.4} -> {:.4}",
                pat.filter,
                pat.start_score,
                pat.end_score
            );
        }
    }
    // The same three steps on the reference kernels give the same pattern.
    let v = feature_layer(g, "conv2d_1").unwrap();
    let short = AscentSettings {
        steps: 3,
        ..AscentSettings::default()
    };
    let a = ascend(
        g,
        p,
        Backend::Jit,
        v,
        &[1, 2],
        &PixelNorm::identity(1),
        &short,
    )
    .unwrap();
    let b = ascend(
        g,
        p,
        Backend::Reference,
        v,
        &[1, 2],
        &PixelNorm::identity(1),
        &short,
    )
    .unwrap();
    for (x, y) in a.iter().zip(&b) {
        let worst = max_difference(&x.pixels, &y.pixels);
        assert!(
            worst < 1e-3,
            "filter {}: backends differ by {worst}",
            x.filter
        );
    }
    let err = ascend(
        g,
        p,
        Backend::Jit,
        v,
        &[64],
        &PixelNorm::identity(1),
        &short,
    )
    .unwrap_err();
    assert!(err.to_string().contains("has 64 filters"), "{err}");
}

#[test]
fn grad_cam_agrees_on_both_backends_and_refuses_a_class_outside_the_output() {
    let (g, p) = trained();
    let (x, label) = digit(0);
    let r = grad_cam(g, p, Backend::Reference, &x, None, None).unwrap();
    let j = grad_cam(g, p, Backend::Jit, &x, None, None).unwrap();
    assert_eq!(
        (r.class, j.class),
        (label as usize, label as usize),
        "the digit is recognised"
    );
    assert_eq!(r.layer, "conv2d_2", "the default is the last feature map");
    assert!((r.raw_max - j.raw_max).abs() <= 1e-3 * r.raw_max.max(1.0));
    let worst = max_difference(&r.heat, &j.heat);
    assert!(worst < 1e-3, "heatmaps differ by {worst}");
    assert!(r.heat.iter().all(|h| (0.0..=1.0).contains(h)));
    assert!(r.heat.contains(&1.0), "normalised to a maximum of one");
    let err = grad_cam(g, p, Backend::Jit, &x, Some(10), None).unwrap_err();
    assert!(
        matches!(
            err,
            VizError::ClassOutOfRange {
                class: 10,
                classes: 10
            }
        ),
        "{err}"
    );
}

/// The Keras book's small cats-and-dogs convnet (150×150×3, one sigmoid output), with its
/// initial weights: the visualisations run on it and agree on both backends.
#[test]
fn the_small_cats_and_dogs_convnet_is_visualised_alike_on_both_backends() {
    let g = ir::load(Path::new("models/cats_and_dogs_small.ron")).unwrap();
    let p = ParamStore::init(&g, 3);
    let x: Vec<f32> = (0..150 * 150 * 3)
        .map(|i| ((i * 37) % 255) as f32 / 255.0)
        .collect();
    let r = activations(&g, &p, Backend::Reference, &x, None).unwrap();
    let j = activations(&g, &p, Backend::Jit, &x, None).unwrap();
    assert_eq!(r.len(), 8, "four convolutions and four pools");
    for (a, b) in r.iter().zip(&j) {
        let worst = max_difference(&a.values, &b.values);
        assert!(worst < 1e-3, "{}: backends differ by {worst}", a.layer);
    }
    let cam_r = grad_cam(&g, &p, Backend::Reference, &x, None, None).unwrap();
    let cam_j = grad_cam(&g, &p, Backend::Jit, &x, None, None).unwrap();
    assert_eq!(
        (cam_r.class, cam_r.h, cam_r.w),
        (0, 7, 7),
        "the last pool's 7×7 map"
    );
    assert!((cam_r.raw_max - cam_j.raw_max).abs() <= 1e-3 * cam_r.raw_max.max(1e-3));
    let err = grad_cam(&g, &p, Backend::Jit, &x, Some(1), None).unwrap_err();
    assert!(err.to_string().contains("0 to 0"), "{err}");
    let v = feature_layer(&g, "conv2d_1").unwrap();
    let short = AscentSettings {
        steps: 3,
        ..AscentSettings::default()
    };
    let a = ascend(
        &g,
        &p,
        Backend::Jit,
        v,
        &[0, 5],
        &PixelNorm::identity(3),
        &short,
    )
    .unwrap();
    let b = ascend(
        &g,
        &p,
        Backend::Reference,
        v,
        &[0, 5],
        &PixelNorm::identity(3),
        &short,
    )
    .unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!(x.end_score > x.start_score, "filter {} climbs", x.filter);
        let worst = max_difference(&x.pixels, &y.pixels);
        assert!(
            worst < 1e-3,
            "filter {}: backends differ by {worst}",
            x.filter
        );
    }
}
