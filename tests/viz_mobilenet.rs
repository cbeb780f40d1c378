//! The visualisations on MobileNetV2 with torchvision's ImageNet weights and scikit-image's
//! chelsea (both fetched by `scripts/assets`): where Grad-CAM looks, whether gradient ascent
//! finds patterns that excite the filters, and that activations, filters and heatmaps are
//! written by the real binary.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use cnntui::data::image::Image;
use cnntui::ir::{self, Graph};
use cnntui::runtime::{Backend, ParamStore};
use cnntui::viz::filters::{AscentSettings, PixelNorm, ascend};
use cnntui::viz::gradcam::grad_cam;
use cnntui::viz::layers::feature_layer;
use cnntui::weights::{self, IMAGENET_MEAN, IMAGENET_STD, Preprocessing};

const WEIGHTS: &str = "assets/weights/mobilenet_v2-b0353104.pth";
const CHELSEA: &str = "assets/images/chelsea.png";
const EGYPTIAN_CAT: usize = 285;
/// A class the photograph does not show.
const SPORTS_CAR: usize = 817;

fn mobilenet() -> &'static (Graph, ParamStore) {
    static MODEL: OnceLock<(Graph, ParamStore)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let g = ir::load(Path::new("models/mobilenet_v2.ron")).unwrap();
        let mut params = ParamStore::init(&g, 0);
        weights::load_for_model(&g, &mut params.tensors, Some(Path::new(WEIGHTS))).unwrap();
        (g, params)
    })
}

/// chelsea (451×300) as torchvision prepares it: short side to 256 (385×256 after flooring,
/// 384 wide), centre crop 224 at (80, 16), normalised.
fn chelsea() -> Vec<f32> {
    let photo = Image::open(Path::new(CHELSEA)).unwrap();
    Preprocessing::torchvision(224, 224)
        .apply(&photo, (224, 224, 3))
        .unwrap()
}

#[test]
fn grad_cam_for_egyptian_cat_peaks_on_the_cats_face_and_beats_a_class_not_shown() {
    let (g, p) = mobilenet();
    let x = chelsea();
    for backend in [Backend::Jit, Backend::Reference] {
        let cat = grad_cam(g, p, backend, &x, None, None).unwrap();
        assert_eq!(cat.class, EGYPTIAN_CAT, "{backend:?}: the predicted class");
        assert_eq!((cat.layer.as_str(), cat.h, cat.w), ("out_relu", 7, 7));
        // The peak cell's centre, mapped back to the photograph: crop offset (80, 16) in the
        // 384×256 resize, scale 300/256.
        let peak = (0..49)
            .max_by(|&a, &b| cat.heat[a].total_cmp(&cat.heat[b]))
            .unwrap();
        let (row, col) = (peak / 7, peak % 7);
        let scale = 300.0 / 256.0;
        let x_photo = (80.0 + (col as f64 + 0.5) * 32.0) * scale;
        let y_photo = (16.0 + (row as f64 + 0.5) * 32.0) * scale;
        // Hand-marked on chelsea.png: the cat's face, from the left eye to the right eye and
        // from the brow to the chin (left 120, top 60, right 370, bottom 290).
        assert!(
            (120.0..=370.0).contains(&x_photo) && (60.0..=290.0).contains(&y_photo),
            "{backend:?}: peak at ({x_photo:.0}, {y_photo:.0}) in the photograph"
        );
        let car = grad_cam(g, p, backend, &x, Some(SPORTS_CAR), None).unwrap();
        assert!(
            car.raw_max < cat.raw_max / 2.0,
            "{backend:?}: sports car {} vs Egyptian cat {}",
            car.raw_max,
            cat.raw_max
        );
    }
}

#[test]
fn gradient_ascent_raises_every_tried_filters_mean_activation_in_mobilenet() {
    let (g, p) = mobilenet();
    let norm = PixelNorm {
        mean: IMAGENET_MEAN.to_vec(),
        std: IMAGENET_STD.to_vec(),
    };
    let settings = AscentSettings {
        steps: 10,
        ..AscentSettings::default()
    };
    // Ten steps on the first convolution (measured gains 0.67 to 17) and on an expansion in the
    // second block (measured gains 0.14 to 1.6): every filter tried gains at least 0.1.
    for (layer, filters) in [
        ("Conv1", (0..8).collect::<Vec<_>>()),
        ("block_1_expand", vec![0, 3, 9, 14]),
    ] {
        let v = feature_layer(g, layer).unwrap();
        for pat in ascend(g, p, Backend::Jit, v, &filters, &norm, &settings).unwrap() {
            assert!(
                pat.end_score >= pat.start_score + 0.1,
                "{layer} filter {}: {:.4} -> {:.4}",
                pat.filter,
                pat.start_score,
                pat.end_score
            );
        }
    }
}

fn cnntui(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cnntui"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn viz_commands_write_their_pictures_and_refuse_bad_requests() {
    let dir = std::env::temp_dir().join(format!("cnntui-viz-mnv2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cam = dir.join("cam.png");
    std::fs::create_dir_all(&dir).unwrap();
    let out = cnntui(&[
        "viz",
        "heatmap",
        "models/mobilenet_v2.ron",
        "--weights",
        WEIGHTS,
        "--image",
        CHELSEA,
        "--out",
        cam.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("class 285 Egyptian cat"));
    let png = image::open(&cam).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (451, 300),
        "the photograph's size"
    );

    let act = dir.join("act");
    let out = cnntui(&[
        "viz",
        "activations",
        "models/mobilenet_v2.ron",
        "--weights",
        WEIGHTS,
        "--image",
        CHELSEA,
        "--layer",
        "Conv1_relu",
        "--out",
        act.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(act.join("01_Conv1_relu.png").exists());

    let bad = |args: &[&str], needles: &[&str]| {
        let out = cnntui(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: `{n}` missing from: {err}");
        }
    };
    let base = [
        "viz",
        "heatmap",
        "models/mobilenet_v2.ron",
        "--weights",
        WEIGHTS,
        "--image",
        CHELSEA,
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    let cam_s = cam.to_str().unwrap();
    bad(
        &[with(&["--class", "1000", "--out"]).as_slice(), &[cam_s]].concat(),
        &["class 1000", "0 to 999"],
    );
    bad(
        &[with(&["--layer", "no_such", "--out"]).as_slice(), &[cam_s]].concat(),
        &["no layer named `no_such`", "Conv1"],
    );
    bad(
        &[
            with(&["--layer", "predictions", "--out"]).as_slice(),
            &[cam_s],
        ]
        .concat(),
        &["not convolutional"],
    );
    bad(
        &with(&["--out", "/proc/cnntui/cam.png"]),
        &["/proc/cnntui/cam.png", "cannot write"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
