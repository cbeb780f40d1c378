//! `cnntui summary --json` against Keras's parameter counts, and the shipped models' shapes.
//!
//! The expected counts are Keras's (`model.count_params()` and the summary's trainable /
//! non-trainable split) for the same architectures, as listed in the foundation issue and
//! `shared/REFERENCE.md`.

use std::process::Command;

fn summary_json(model: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_cnntui"))
        .args(["summary", model, "--json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cnntui runs");
    assert!(
        out.status.success(),
        "{model}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary --json prints JSON")
}

fn counts(v: &serde_json::Value) -> (u64, u64, u64) {
    (
        v["total_params"].as_u64().unwrap(),
        v["trainable_params"].as_u64().unwrap(),
        v["non_trainable_params"].as_u64().unwrap(),
    )
}

#[test]
fn shipped_models_have_keras_parameter_counts() {
    let expected = [
        ("models/mnist.ron", 93_322, 93_322, 0),
        ("models/vgg16.ron", 138_357_544, 138_357_544, 0),
        ("models/vgg16_base.ron", 14_714_688, 14_714_688, 0),
        ("models/vgg19.ron", 143_667_240, 143_667_240, 0),
        ("models/cats_and_dogs_small.ron", 3_453_121, 3_453_121, 0),
        ("models/mobilenet_v2.ron", 3_538_984, 3_504_872, 34_112),
        ("models/fashion_small.ron", 225_034, 225_034, 0),
        ("models/fashion_small_augmented.ron", 225_034, 225_034, 0),
        // MobileNetV2 without its top at 96×96 (Keras: 2,257,984), under a 12,810-parameter head.
        (
            "models/fashion_mobilenet_frozen.ron",
            2_270_794,
            12_810,
            2_257_984,
        ),
        (
            "models/fashion_mobilenet_finetune.ron",
            2_270_794,
            1_694_154,
            576_640,
        ),
        ("models/fashion_mobilenet_features.ron", 12_810, 12_810, 0),
    ];
    for (model, total, trainable, frozen) in expected {
        assert_eq!(
            counts(&summary_json(model)),
            (total, trainable, frozen),
            "{model}"
        );
    }
}

#[test]
fn mnist_layers_have_keras_names_types_and_shapes() {
    let v = summary_json("models/mnist.ron");
    let layers = v["layers"].as_array().unwrap();
    let rows: Vec<(String, String, String, u64)> = layers
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["type"].as_str().unwrap().to_string(),
                l["output_shape"].to_string(),
                l["params"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect = [
        ("conv2d", "Conv2D", "[null,26,26,32]", 320),
        ("max_pooling2d", "MaxPooling2D", "[null,13,13,32]", 0),
        ("conv2d_1", "Conv2D", "[null,11,11,64]", 18_496),
        ("max_pooling2d_1", "MaxPooling2D", "[null,5,5,64]", 0),
        ("conv2d_2", "Conv2D", "[null,3,3,64]", 36_928),
        ("flatten", "Flatten", "[null,576]", 0),
        ("dense", "Dense", "[null,64]", 36_928),
        ("dense_1", "Dense", "[null,10]", 650),
    ];
    assert_eq!(rows.len(), expect.len());
    for (row, e) in rows.iter().zip(expect) {
        assert_eq!((row.0.as_str(), row.1.as_str(), row.2.as_str(), row.3), e);
    }
    assert!(layers.iter().all(|l| l["trainable"] == true));
}

#[test]
fn vgg16_base_ends_in_block5_pool_at_4x4x512() {
    let v = summary_json("models/vgg16_base.ron");
    let last = v["layers"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["name"], "block5_pool");
    assert_eq!(last["output_shape"].to_string(), "[null,4,4,512]");
}

#[test]
fn mobilenet_v2_keeps_keras_names_with_torchvision_padding() {
    let v = summary_json("models/mobilenet_v2.ron");
    let layers = v["layers"].as_array().unwrap();
    let find = |name: &str| {
        layers
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    assert_eq!(
        find("Conv1")["output_shape"].to_string(),
        "[null,112,112,32]"
    );
    assert_eq!(
        find("block_1_pad")["output_shape"].to_string(),
        "[null,114,114,96]"
    );
    assert_eq!(
        find("block_1_depthwise")["output_shape"].to_string(),
        "[null,56,56,96]"
    );
    assert_eq!(
        find("out_relu")["output_shape"].to_string(),
        "[null,7,7,1280]"
    );
    assert_eq!(find("block_16_project_BN")["params"], 1280);
    assert_eq!(find("predictions")["params"], 1_281_000);
    assert_eq!(find("block_2_add")["type"], "Add");
}

#[test]
fn the_table_has_keras_columns_and_totals() {
    let out = Command::new(env!("CARGO_BIN_EXE_cnntui"))
        .args(["summary", "models/mnist.ron"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cnntui runs");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Model: \"mnist_convnet\"\n"), "{text}");
    for needle in [
        "Layer (type)",
        "Output Shape",
        "Param #",
        "│ conv2d (Conv2D)",
        "(None, 26, 26, 32)",
        "320 │",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(
        text.contains(" Total params: 93,322 (364.54 KB)\n"),
        "{text}"
    );
    assert!(
        text.contains(" Trainable params: 93,322 (364.54 KB)\n"),
        "{text}"
    );
    assert!(
        text.ends_with(" Non-trainable params: 0 (0.00 B)\n"),
        "{text}"
    );
}

#[test]
fn fused_groups_are_marked_without_merging_rows() {
    let v = summary_json("models/mnist.ron");
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 8, "one row per Keras layer");
    assert_eq!(layers[0]["fused_group"]["kind"], "ConvBiasReluMaxPool");
    assert_eq!(layers[1]["fused_group"]["kind"], "ConvBiasReluMaxPool");
    assert_eq!(
        layers[0]["fused_group"]["index"],
        layers[1]["fused_group"]["index"]
    );
    assert_eq!(
        layers[5]["fused_group"],
        serde_json::Value::Null,
        "Flatten is not fused"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cnntui"))
        .args(["summary", "models/mnist.ron"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cnntui runs");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("↳ fused #1: ConvBiasReluMaxPool"), "{text}");
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    // `cnntui summary … | head -2`: the pipe closes while the summary is being printed.
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnntui"))
        .args(["summary", "models/mobilenet_v2.ron"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let mut first = [0u8; 64];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("some output");
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
