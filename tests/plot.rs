//! `cnntui plot` and the plot the trainer writes beside its checkpoint, run as a user would.

use std::path::PathBuf;
use std::process::{Command, Output};

fn cnntui(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnntui"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the cnntui binary runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cnntui-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn training_writes_a_plot_beside_the_checkpoint_and_plot_redraws_it() {
    let dir = temp_dir("train");
    let save = dir.join("run");
    let out = cnntui(&[
        "train",
        "models/mnist.ron",
        "--headless",
        "--epochs",
        "2",
        "--limit",
        "256",
        "--save",
        save.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = image::open(save.join("history.png")).expect("history.png is a PNG");
    assert_eq!((written.width(), written.height()), (1200, 480));

    let redrawn = dir.join("again.png");
    let out = cnntui(&[
        "plot",
        save.to_str().unwrap(),
        "--out",
        redrawn.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 epochs"));
    let again = image::open(&redrawn).unwrap();
    assert_eq!(
        again.to_rgb8().as_raw(),
        written.to_rgb8().as_raw(),
        "the same history draws the same picture"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_history_is_named_with_the_fix() {
    let out = cnntui(&["plot", "no/such/run", "--out", "/tmp/never.png"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no/such/run") && err.contains("history.json"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn an_empty_history_is_refused_and_writes_nothing() {
    let dir = temp_dir("empty");
    let history = dir.join("history.json");
    std::fs::write(
        &history,
        r#"{"loss": [], "accuracy": [], "learning_rate": []}"#,
    )
    .unwrap();
    let png = dir.join("out.png");
    let out = cnntui(&[
        "plot",
        history.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no epochs"));
    assert!(!png.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
