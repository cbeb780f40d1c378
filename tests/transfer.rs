//! Reusing a convolutional base, as the lecture does: `cnntui extract` (the base run once,
//! features stored) and a classifier trained on `data: Features(...)`; IDX data resized and
//! turned to RGB for a pretrained base, normalised as its weights expect; fine-tuning with
//! `freeze: UpTo(...)`. Small models on MNIST keep it fast; the real experiment (MobileNetV2 on
//! Fashion-MNIST) is `scripts/transfer_experiment`.

mod common;

use std::path::Path;
use std::sync::{Arc, mpsc};

use cnntui::data::image::{Filter, Image, Rounding, resize};
use cnntui::data::pipeline::Loader;
use cnntui::data::{features, load_idx_dir};
use cnntui::runtime::checkpoint;
use cnntui::runtime::setup::{Overrides, prepare};
use common::{TempDir, cnntui, repo};

/// A small convolutional base with a classifier on top (dropped with `include_top: false`):
/// its last base layer, `pool_b`, gives 5×5×16.
const BASE: &str = r#"Model(
    name: "tiny_base",
    input: (28, 28, 1),
    layers: [
        Conv2D(name: "conv_a", filters: 8, kernel_size: 3, use_bias: false),
        BatchNormalization(name: "bn_a"),
        ReLU(name: "relu_a"),
        MaxPooling2D(name: "pool_a", pool_size: 2),
        Conv2D(name: "conv_b", filters: 16, kernel_size: 3, use_bias: false),
        BatchNormalization(name: "bn_b"),
        ReLU(name: "relu_b"),
        MaxPooling2D(name: "pool_b", pool_size: 2),
    ],
    top: [Flatten(), Dense(units: 10, activation: Softmax)],
)"#;

/// A model over `base.ron` (written beside it) with `extra` fields, on the first `limit`
/// MNIST training images, tested on the 10,000 test images.
fn over_base(extra: &str, limit: usize) -> String {
    format!(
        r#"Model(
    name: "tiny_transfer",
    base: (model: "base.ron", include_top: false{extra}),
    layers: [Flatten(name: "flat"), Dense(name: "head", units: 10, activation: Softmax)],
    train: (
        data: Idx(dir: "{mnist}", limit: {limit}),
        loss: SparseCategoricalCrossentropy,
        optimizer: RMSprop(learning_rate: 1e-3),
        batch_size: 32,
        epochs: 1,
        validation: TestSplit,
        seed: 3,
    ),
)"#,
        mnist = repo("data/mnist"),
    )
}

/// A classifier on stored features.
fn on_features(file: &str, input: &str, extra: &str) -> String {
    format!(
        r#"Model(
    name: "tiny_head",
    input: {input},
    layers: [Flatten(), Dense(units: 10, activation: Softmax)],
    train: (
        data: Features(file: "{file}"),
        loss: SparseCategoricalCrossentropy,
        optimizer: RMSprop(learning_rate: 1e-3),
        epochs: 5,
        validation: TestSplit,
        seed: 1,{extra}
    ),
)"#
    )
}

fn test_accuracy(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("test_accuracy: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no test_accuracy in:\n{stdout}"))
}

#[test]
fn extract_stores_the_bases_output_and_a_classifier_learns_from_it() {
    let dir = TempDir::new("transfer-extract");
    dir.file("base.ron", BASE.as_bytes());
    let model = dir.file(
        "frozen.ron",
        over_base(", trainable: false", 600).as_bytes(),
    );
    let out = dir.path("features.safetensors");
    let run = cnntui(&["extract", &model, "--out", &out]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("train: 600 samples -> [5, 5, 16] features of `pool_b`")
            && run.stdout.contains("test: 10000 samples"),
        "the base's last layer, both splits:\n{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("no weights"),
        "random features are said: {}",
        run.stderr
    );

    let stored = features::read(Path::new(&out)).expect("reads back");
    let mnist = load_idx_dir(Path::new(&repo("data/mnist")), 1.0).expect("MNIST");
    assert_eq!(stored.train.shape, [5, 5, 16]);
    assert_eq!(stored.train.labels, mnist.train.labels[..600]);
    let test = stored.test.as_ref().expect("test split");
    assert_eq!(test.labels, mnist.test.labels);
    assert_eq!(stored.metadata["layer"], "pool_b");
    let train = &stored.train.images;
    assert!(train.iter().all(|&v| v >= 0.0), "after ReLU and max-pool");
    assert!(train.iter().filter(|&&v| v > 0.0).count() > train.len() / 10);

    // The reference kernels compute the same features.
    let reference = dir.path("reference.safetensors");
    cnntui(&[
        "extract",
        &model,
        "--out",
        &reference,
        "--backend",
        "reference",
    ])
    .assert_ok();
    let reference = features::read(Path::new(&reference)).expect("reads back");
    let worst = train
        .iter()
        .zip(&reference.train.images)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "JIT and reference features differ by {worst}");

    // A classifier on the stored features of this random (untrained) base learns far above
    // chance (0.1) in 5 epochs on 600 images: 0.65 when this test was written.
    let head = dir.file(
        "head.ron",
        on_features("features.safetensors", "(5, 5, 16)", "").as_bytes(),
    );
    let run = cnntui(&["train", &head, "--headless", "--save", &dir.path("run")]);
    run.assert_ok();
    let acc = test_accuracy(&run.stdout);
    assert!(acc > 0.5, "test accuracy on stored features: {acc}");
}

#[test]
fn bad_features_data_and_extract_arguments_are_named() {
    let dir = TempDir::new("transfer-bad");
    dir.file("base.ron", BASE.as_bytes());
    let model = dir.file("frozen.ron", over_base(", trainable: false", 64).as_bytes());
    let save = dir.path("run");

    let missing = dir.file(
        "missing.ron",
        on_features("nowhere.safetensors", "(5, 5, 16)", "").as_bytes(),
    );
    cnntui(&["train", &missing, "--headless", "--save", &save])
        .assert_bad_input(&["nowhere.safetensors", "cannot read"]);

    let weights = repo("tests/fixtures/weights/narrow_vgg16_timm.safetensors");
    let not_features = dir.file(
        "not_features.ron",
        on_features(&weights, "(5, 5, 16)", "").as_bytes(),
    );
    cnntui(&["train", &not_features, "--headless", "--save", &save]).assert_bad_input(&[
        "narrow_vgg16_timm.safetensors",
        "not a features file",
        "cnntui extract",
    ]);

    let out = dir.path("f.safetensors");
    cnntui(&["extract", &model, "--out", &out, "--limit", "64"]).assert_ok();
    let wrong_input = dir.file(
        "wrong_input.ron",
        on_features("f.safetensors", "(4, 4, 16)", "").as_bytes(),
    );
    cnntui(&["train", &wrong_input, "--headless", "--save", &save])
        .assert_bad_input(&["[5, 5, 16]", "change `input`"]);
    let augmented = dir.file(
        "augmented.ron",
        on_features(
            "f.safetensors",
            "(5, 5, 16)",
            "\n        augment: (horizontal_flip: true),",
        )
        .as_bytes(),
    );
    cnntui(&["train", &augmented, "--headless", "--save", &save])
        .assert_bad_input(&["augment", "cannot be augmented"]);

    cnntui(&["extract", &model, "--out", &out, "--layer", "pool_c"]).assert_bad_input(&[
        "pool_c",
        "names no layer",
        "did you mean",
    ]);
    cnntui(&["extract", "models/mnist.ron", "--out", &out])
        .assert_bad_input(&["no `base`", "--layer"]);
    cnntui(&[
        "extract",
        &model,
        "--out",
        &dir.path("no/such/dir/f.safetensors"),
    ])
    .assert_bad_input(&["does not exist"]);
}

#[test]
fn idx_images_are_resized_and_made_rgb_for_a_pretrained_base() {
    let dir = TempDir::new("transfer-idx");
    let text = format!(
        r#"Model(
    name: "resized",
    input: (40, 40, 3),
    layers: [Conv2D(filters: 4, kernel_size: 3), Flatten(), Dense(units: 10, activation: Softmax)],
    train: (
        data: Idx(dir: "{}", limit: 8, image_size: (40, 40), color_mode: "rgb"),
        loss: SparseCategoricalCrossentropy,
    ),
)"#,
        repo("data/mnist")
    );
    let model = dir.file("resized.ron", text.as_bytes());
    let overrides = Overrides {
        save: Some(dir.0.join("run")),
        ..Overrides::default()
    };
    let prepared = prepare(Path::new(&model), &overrides).expect("prepares");
    let train = &prepared.trainer.data.train;
    assert_eq!(train.shape, [40, 40, 3]);
    let mnist = load_idx_dir(Path::new(&repo("data/mnist")), 1.0).expect("MNIST");
    let grey = Image {
        width: 28,
        height: 28,
        channels: 1,
        data: mnist.train.image(0).to_vec(),
    };
    let want = resize(&grey, 40, 40, Filter::Bilinear, Rounding::Bytes).expect("resizes");
    let got = train.raw(0).expect("sample 0");
    assert_eq!((got.width, got.height, got.channels), (40, 40, 3));
    for (px, &g) in got.data.chunks_exact(3).zip(&want.data) {
        assert_eq!(
            px,
            [g, g, g],
            "the grey value repeated, as PIL's convert(\"RGB\")"
        );
    }

    let bad = dir.file("bad.ron", text.replace("\"rgb\"", "\"cmyk\"").as_bytes());
    cnntui(&["train", &bad, "--headless", "--save", &dir.path("run")]).assert_bad_input(&[
        "bad.ron",
        "data.color_mode",
        "cmyk",
        "rgb, grayscale",
    ]);
}

#[test]
fn a_base_with_imagenet_weights_gets_normalised_input() {
    let dir = TempDir::new("transfer-normalise");
    let text = format!(
        r#"Model(
    name: "normalised",
    base: (model: "{base}", include_top: false, input_shape: (32, 32, 3), weights: "{weights}",
           trainable: false),
    layers: [GlobalAveragePooling2D(), Dense(units: 10, activation: Softmax)],
    train: (
        data: Idx(dir: "{mnist}", limit: 4, image_size: (32, 32), color_mode: "rgb"),
        loss: SparseCategoricalCrossentropy,
    ),
)"#,
        base = repo("models/mobilenet_v2.ron"),
        weights = repo("assets/weights/mobilenet_v2-b0353104.pth"),
        mnist = repo("data/mnist"),
    );
    let model = dir.file("normalised.ron", text.as_bytes());
    let overrides = Overrides {
        save: Some(dir.0.join("run")),
        ..Overrides::default()
    };
    let prepared = prepare(Path::new(&model), &overrides).expect("prepares");
    assert!(
        prepared.warnings.iter().any(|w| w.contains("ImageNet")),
        "{:?}",
        prepared.warnings
    );
    let train = prepared.trainer.data.train.clone();
    let raw = train.raw(1).expect("sample 1");
    let loader = Loader::new(Arc::clone(&train), None, 0);
    let mut x = vec![0.0; train.image_len()];
    loader.sample_into(1, None, &mut x).expect("sample 1");
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    for (px, raw) in x.chunks_exact(3).zip(raw.data.chunks_exact(3)) {
        for c in 0..3 {
            let want = (raw[c] / 255.0 - mean[c]) / std[c];
            assert!((px[c] - want).abs() < 1e-5, "{} vs {want}", px[c]);
        }
    }
}

#[test]
fn fine_tuning_updates_only_the_layers_above_the_freeze() {
    let dir = TempDir::new("transfer-finetune");
    dir.file("base.ron", BASE.as_bytes());
    let text = over_base("", 256).replace(
        "    train: (",
        "    freeze: UpTo(\"pool_a\"),\n    train: (",
    );
    let model = dir.file("finetune.ron", text.as_bytes());
    let overrides = Overrides {
        save: Some(dir.0.join("run")),
        ..Overrides::default()
    };
    let prepared = prepare(Path::new(&model), &overrides).expect("prepares");
    let graph = prepared.trainer.graph.clone();
    let before = prepared.trainer.params.clone();
    let (_tx, rx) = mpsc::channel();
    let (events, handle) = prepared.trainer.spawn(rx);
    events.iter().for_each(drop);
    let outcome = handle.join().expect("trainer thread ends");
    let ckpt = checkpoint::load(&outcome.checkpoint).expect("checkpoint");
    let mut after = before.clone();
    ckpt.apply(&graph, &mut after, None).expect("fits");
    let node = |name: &str| graph.node_by_name(name).expect(name);
    for frozen in ["conv_a", "bn_a"] {
        assert_eq!(
            before.tensors[node(frozen)],
            after.tensors[node(frozen)],
            "{frozen} is frozen: weights and moving statistics unchanged"
        );
    }
    for trained in ["conv_b", "bn_b", "head"] {
        assert_ne!(
            before.tensors[node(trained)][0],
            after.tensors[node(trained)][0],
            "{trained} trains"
        );
    }
    // bn_b trains on batch statistics and folds them into its moving mean.
    assert_ne!(
        before.tensors[node("bn_b")][2],
        after.tensors[node("bn_b")][2]
    );
}
