//! `cnntui predict` and `cnntui weights` as a person runs them: the answers on real photographs,
//! the JSON shape, and every kind of bad weights file or image, each asserting exit status 2
//! (0 with a warning for unused tensors) and the words a person needs.

mod common;

use std::path::Path;

use common::{TempDir, cnntui, repo};

const MOBILENET: &str = "models/mobilenet_v2.ron";
const MOBILENET_WEIGHTS: &str = "assets/weights/mobilenet_v2-b0353104.pth";
const NARROW: &str = "tests/fixtures/weights/narrow_vgg16.ron";
const NARROW_PTH: &str = "tests/fixtures/weights/narrow_vgg16.pth";
const NARROW_ST: &str = "tests/fixtures/weights/narrow_vgg16_timm.safetensors";

/// The first `fraction` of a file's bytes.
fn head(path: &str, fraction: f64) -> Vec<u8> {
    let b = std::fs::read(path).expect("fixture");
    b[..(b.len() as f64 * fraction) as usize].to_vec()
}

// PyTorch's answer with torchvision's full transform (Resize(256), CenterCrop(224), ToTensor,
// Normalize) on the whole photograph:
//
//     m(tf(PIL.Image.open("assets/images/chelsea.png").convert("RGB"))[None])[0].softmax(0).topk(5)
//     # 285 0.7166, 282 0.1471, 281 0.1295, 287 0.0050, 728 0.0011
#[test]
fn predict_says_egyptian_cat_for_chelsea_with_pytorchs_probabilities() {
    let run = cnntui(&[
        "predict",
        MOBILENET,
        "--weights",
        MOBILENET_WEIGHTS,
        "assets/images/chelsea.png",
        "--json",
    ]);
    run.assert_ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let top5 = v[0]["top5"].as_array().expect("top5");
    assert_eq!(v[0]["file"], "assets/images/chelsea.png");
    assert_eq!(top5.len(), 5);
    assert_eq!(top5[0]["class_name"], "Egyptian cat");
    for (k, (index, p)) in [(285, 0.7166), (282, 0.1471), (281, 0.1295), (287, 0.0050)]
        .into_iter()
        .enumerate()
    {
        assert_eq!(top5[k]["class_index"], index, "{top5:?}");
        let got = top5[k]["probability"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (got - p).abs() < 2e-3,
            "class {index}: {got} vs PyTorch {p}"
        );
    }
}

#[test]
fn predict_prints_one_block_per_image_and_logits_on_request() {
    let run = cnntui(&[
        "predict",
        MOBILENET,
        "--weights",
        MOBILENET_WEIGHTS,
        "assets/images/chelsea.png",
        "assets/images/coffee.png",
        "--logits",
        "--backend",
        "reference",
    ]);
    run.assert_ok();
    let blocks: Vec<&str> = run.stdout.split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{}", run.stdout);
    assert!(blocks[0].starts_with("assets/images/chelsea.png\n  1. Egyptian cat (285)"));
    assert!(blocks[1].starts_with("assets/images/coffee.png\n  1. espresso (967)"));
    assert!(blocks[0].contains("logit"), "{}", run.stdout);
}

#[test]
fn weights_lists_the_tensors_and_where_they_go() {
    let run = cnntui(&["weights", MOBILENET_WEIGHTS, "--model", MOBILENET]);
    run.assert_ok();
    let out = &run.stdout;
    assert!(out.contains("PyTorch (legacy), 314 tensors"), "{out}");
    assert!(out.contains("features.0.0.weight"), "{out}");
    assert!(
        out.contains("→ Conv1/kernel (3, 3, 3, 32), OIHW → HWIO"),
        "{out}"
    );
    assert!(
        out.contains("→ expanded_conv_depthwise/depthwise_kernel (3, 3, 32, 1)"),
        "{out}"
    );
    assert!(out.contains("(ignored)"), "{out}");
    assert!(out.contains("preprocessing: torchvision ImageNet"), "{out}");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn unused_tensors_are_a_warning_naming_them() {
    let tmp = TempDir::new("predict-unused");
    let model = tmp.file(
        "base.ron",
        format!(
            r#"Model(name: "b", base: (model: "{}", include_top: false))"#,
            repo(NARROW)
        )
        .as_bytes(),
    );
    let run = cnntui(&["weights", NARROW_PTH, "--model", &model]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("warning: 6 tensor(s) are not used by the model")
            && run.stderr.contains("`classifier.0.weight` [256, 128]"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_file_that_is_not_weights_is_refused() {
    let run = cnntui(&[
        "predict",
        MOBILENET,
        "--weights",
        "Cargo.toml",
        "assets/images/chelsea.png",
    ]);
    run.assert_bad_input(&["Cargo.toml", "not a weights file", "safetensors", "PyTorch"]);
    let run = cnntui(&["weights", "assets/images/chelsea.png"]);
    run.assert_bad_input(&["chelsea.png", "not a weights file"]);
}

#[test]
fn a_pickle_calling_other_python_is_refused_by_name() {
    let tmp = TempDir::new("predict-evil");
    let evil = tmp.file("evil.pth", b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsR.");
    let run = cnntui(&["weights", &evil]);
    run.assert_bad_input(&["evil.pth", "`os.system`", "does not run"]);
}

#[test]
fn truncated_files_of_every_format_are_named_as_truncated() {
    let tmp = TempDir::new("predict-truncated");
    for (name, src) in [
        ("cut.pth", NARROW_PTH),
        ("cut.safetensors", NARROW_ST),
        ("cut_legacy.pth", MOBILENET_WEIGHTS),
    ] {
        let cut = tmp.file(name, &head(src, 0.6));
        let run = cnntui(&[
            "predict",
            NARROW,
            "--weights",
            &cut,
            "assets/images/chelsea.png",
        ]);
        run.assert_bad_input(&[name, "truncated"]);
    }
}

#[test]
fn a_tensor_of_the_wrong_shape_names_both_shapes() {
    let tmp = TempDir::new("predict-shape");
    let text = std::fs::read_to_string(NARROW).expect("fixture");
    let wide = tmp.file(
        "wide.ron",
        text.replacen("filters: 4,", "filters: 5,", 1).as_bytes(),
    );
    let run = cnntui(&[
        "predict",
        &wide,
        "--weights",
        NARROW_PTH,
        "assets/images/chelsea.png",
    ]);
    run.assert_bad_input(&[
        "`features.0.weight` has shape [4, 3, 3, 3]",
        "`block1_conv1` (Conv2D) needs [5, 3, 3, 3]",
        "OIHW",
    ]);
    assert!(run.stdout.is_empty(), "predicted anyway: {}", run.stdout);
}

#[test]
fn missing_tensors_are_listed_with_their_shapes() {
    let tmp = TempDir::new("predict-missing");
    let text = std::fs::read_to_string(NARROW).expect("fixture");
    let longer = tmp.file(
        "longer.ron",
        text.replace(
            r#"Dense(name: "predictions", units: 10, activation: Softmax),"#,
            r#"Dense(name: "fc3", units: 10), Dense(name: "predictions", units: 7, activation: Softmax),"#,
        )
        .as_bytes(),
    );
    let run = cnntui(&[
        "predict",
        &longer,
        "--weights",
        NARROW_PTH,
        "assets/images/chelsea.png",
    ]);
    run.assert_bad_input(&[
        "lacks tensors the model needs",
        "layer `predictions` (Dense): weight [7, 10], bias [7]",
    ]);
}

#[test]
fn an_image_that_cannot_be_read_is_named() {
    let run = cnntui(&[
        "predict",
        NARROW,
        "--weights",
        NARROW_PTH,
        "assets/images/chelsea.png",
        "Cargo.toml",
    ]);
    run.assert_bad_input(&["Cargo.toml", "not a readable image"]);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let run = cnntui(&["predict", NARROW, "--weights", NARROW_PTH, "no/such.png"]);
    run.assert_bad_input(&["no/such.png", "cannot read"]);
}

#[test]
fn predicting_without_weights_says_how_to_give_them() {
    let run = cnntui(&["predict", NARROW, "assets/images/chelsea.png"]);
    run.assert_bad_input(&["no weights", "--weights"]);
}

#[test]
fn a_failed_load_changes_nothing() {
    // The first tensors fit, a later one does not: the model's parameters stay as they were.
    let tmp = TempDir::new("predict-halfway");
    let text = std::fs::read_to_string(NARROW).expect("fixture");
    let changed = tmp.file(
        "late.ron",
        text.replace("units: 10,", "units: 11,").as_bytes(),
    );
    let mut g = cnntui::ir::load(Path::new(&changed)).expect("loads");
    cnntui::passes::optimize(&mut g, &Default::default()).expect("optimizes");
    let mut params = cnntui::runtime::ParamStore::init(&g, 3);
    let before = params.clone();
    let err = cnntui::weights::load_for_model(&g, &mut params.tensors, Some(Path::new(NARROW_PTH)))
        .expect_err("does not fit");
    assert!(err.to_string().contains("classifier.6.weight"), "{err}");
    assert_eq!(params, before);
}

#[test]
fn a_model_files_base_weights_load_by_structure_and_warn_about_the_classifier() {
    let tmp = TempDir::new("predict-base");
    let (narrow, narrow_pth) = (repo(NARROW), repo(NARROW_PTH));
    // The narrow VGG's convolutional base under a new, unnamed head: the base's layers take the
    // file's `features.*`; the file's classifier is left over.
    let model = tmp.file(
        "head.ron",
        format!(
            r#"Model(name: "h", base: (model: "{narrow}", include_top: false, weights: "{narrow_pth}"),
                layers: [Flatten(), Dense(units: 3, activation: Softmax)])"#
        )
        .as_bytes(),
    );
    let run = cnntui(&["predict", &model, "assets/images/chelsea.png", "--json"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("6 tensor(s) in the file are not used by the model")
            && run.stderr.contains("`classifier.6.bias` [10]"),
        "{}",
        run.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(v[0]["top5"].as_array().map(Vec::len), Some(3));
}

#[test]
fn train_with_weights_that_do_not_fit_stops_before_training() {
    let tmp = TempDir::new("predict-train");
    let save = tmp.path("run");
    let run = cnntui(&[
        "train",
        "models/mnist.ron",
        "--headless",
        "--epochs",
        "1",
        "--limit",
        "64",
        "--save",
        &save,
        "--weights",
        NARROW_PTH,
    ]);
    run.assert_bad_input(&[NARROW_PTH, "features.0.weight", "conv2d"]);
    assert!(!run.stdout.contains("Epoch 1/"), "{}", run.stdout);
}

#[test]
fn weights_json_shows_timms_names_going_into_keras_layers() {
    let run = cnntui(&["weights", NARROW_ST, "--model", NARROW, "--json"]);
    run.assert_ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(v["format"], "safetensors");
    let tensors = v["tensors"].as_array().expect("tensors");
    let fc1 = tensors
        .iter()
        .find(|t| t["name"] == "pre_logits.fc1.weight")
        .expect("listed");
    assert_eq!(fc1["dtype"], "F32");
    assert_eq!(fc1["shape"], serde_json::json!([256, 32, 2, 2]));
    assert_eq!(
        fc1["maps_to"],
        "fc1/kernel (128, 256), [out,in] → [in,out], flatten C-H-W → H-W-C (2×2×32)"
    );
    let head = tensors
        .iter()
        .find(|t| t["name"] == "head.fc.weight")
        .expect("listed");
    assert_eq!(
        head["maps_to"],
        "predictions/kernel (256, 10), [out,in] → [in,out]"
    );
}
