//! The dashboard's run loop on ratatui's `TestBackend`: preparation off the UI thread, the
//! trainer started paused and driven by commands, frames at most 10 a second, a bad model
//! reported as an error, and a model without a `train` section still shown.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use cnntui::runtime::setup::{self, Overrides, SetupError};
use cnntui::tui::{
    App, Event, Phase, PrepareFailed, Runner, Theme, TuiError, render, spawn_prepare, spawn_ticker,
};

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cnntui-tui-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_loop_prepares_trains_saves_and_quits_drawing_at_most_ten_frames_a_second() {
    let (tx, rx) = mpsc::channel();
    let mut app = App::new("models/mnist.ron", Theme::truecolor());
    app.autostart = true;
    app.exit_when_finished = true;
    let save = temp_dir("loop");
    let overrides = Overrides {
        epochs: Some(1),
        batch_size: Some(64),
        limit: Some(256),
        save: Some(save.clone()),
        resume: None,
        seed: None,
        backend: cnntui::runtime::Backend::Jit,
        weights: None,
    };
    spawn_prepare(model("mnist.ron"), overrides, tx.clone());
    spawn_ticker(tx.clone());
    let terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    let mut runner = Runner::new(terminal, app, rx, tx);
    let start = Instant::now();
    let exit = runner.run().expect("the loop runs");
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(exit.code, 0);
    assert_eq!(
        exit.checkpoint,
        Some(save.join("checkpoint.safetensors")),
        "the epoch's checkpoint"
    );
    assert!(exit.outcome.is_some(), "the trainer thread was joined");
    assert!(exit.frames >= 2, "{} frames", exit.frames);
    assert!(
        exit.frames as f64 <= seconds * 10.0 + 2.0,
        "{} frames in {seconds:.1} s",
        exit.frames
    );
    assert_eq!(runner.app.phase, Phase::Finished);
    assert_eq!(runner.app.progress.batch, 4);
    let screen = runner.terminal().backend().to_string();
    assert!(screen.contains("Model · mnist_convnet"), "{screen}");
    let _ = std::fs::remove_dir_all(&save);
}

#[test]
fn a_bad_model_ends_the_loop_with_its_setup_error() {
    let (tx, rx) = mpsc::channel();
    spawn_prepare(model("no_such_model.ron"), Overrides::default(), tx.clone());
    let terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    let mut runner = Runner::new(terminal, App::new("x", Theme::ascii()), rx, tx);
    match runner.run() {
        Err(TuiError::Setup(e)) => assert!(e.to_string().contains("no_such_model.ron"), "{e}"),
        other => panic!("expected a setup error, got {other:?}"),
    }
    let screen = runner.terminal().backend().to_string();
    assert!(
        screen.contains("Preparing"),
        "never a blank screen: {screen}"
    );
}

#[test]
fn a_model_without_a_train_section_is_shown_for_inspection() {
    let (tx, rx) = mpsc::channel();
    let path = model("vgg16.ron");
    let graph = cnntui::ir::load(&path).expect("vgg16 lowers");
    let err = setup::prepare(&path, &Overrides::default())
        .err()
        .expect("vgg16.ron has no train section");
    assert!(matches!(err, SetupError::NoTrainSection { .. }));
    tx.send(Event::Preview(Box::new(graph))).expect("send");
    tx.send(Event::Prepared(Err(PrepareFailed::Setup(err))))
        .expect("send");
    tx.send(Event::Key(KeyEvent::new(
        KeyCode::Char('t'),
        KeyModifiers::NONE,
    )))
    .expect("send");
    tx.send(Event::Key(KeyEvent::new(
        KeyCode::Char('q'),
        KeyModifiers::NONE,
    )))
    .expect("send");
    let terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    let mut runner = Runner::new(
        terminal,
        App::new("models/vgg16.ron", Theme::ascii()),
        rx,
        tx,
    );
    let exit = runner.run().expect("inspection is not an error");
    assert_eq!(exit.code, 0);
    assert_eq!(runner.app.phase, Phase::Inspecting);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    terminal.draw(|f| render(f, &runner.app)).expect("draws");
    let screen = terminal.backend().to_string();
    assert!(screen.contains("no `train` section"), "{screen}");
    assert!(screen.contains("138,357,544"), "{screen}");
}
