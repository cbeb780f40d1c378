//! A model file's `train.data.preprocess` steps run on every sample, and steps that cannot
//! apply are refused before training with the file and the fix.

use std::process::Command;

fn train_with(name: &str, preprocess: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("cnntui-pre-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::fs::read_to_string("models/mnist.ron").unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let patched = source.replace(
        "data: Idx(dir: \"data/mnist\")",
        &format!(
            "data: Idx(dir: \"{}\", preprocess: {preprocess})",
            data.display()
        ),
    );
    assert_ne!(
        patched, source,
        "models/mnist.ron names its data as expected"
    );
    let model = dir.join("model.ron");
    std::fs::write(&model, patched).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cnntui"))
        .args([
            "train",
            model.to_str().unwrap(),
            "--headless",
            "--epochs",
            "1",
            "--limit",
            "128",
            "--save",
        ])
        .arg(dir.join("run"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn a_blur_and_tv_denoising_run_on_every_sample() {
    let out = train_with("ok", "[Gaussian(sigma: 1.0), TvDenoise(weight: 0.1)]");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("test_accuracy"));
}

#[test]
fn steps_that_change_the_shape_or_are_out_of_range_are_refused_before_training() {
    for (ops, needle) in [
        ("[Grey]", "use `color_mode` and `image_size` instead"),
        ("[Gaussian(sigma: -1.0)]", "sigma"),
    ] {
        let out = train_with("bad", ops);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{ops}: {err}");
        assert!(
            err.contains("train.data.preprocess") && err.contains(needle),
            "{ops}: {err}"
        );
        assert!(!err.contains("panicked"));
    }
}
