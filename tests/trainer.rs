//! The trainer on real MNIST samples: commands at batch boundaries, exact resumption from a
//! checkpoint, the history file, and learning.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use cnntui::runtime::checkpoint;
use cnntui::runtime::setup::{Overrides, prepare};
use cnntui::runtime::{Command, Event, History, ParamStore};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cnntui-trainer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mnist.ron")
}

/// Runs training to the end, sending `on_batch(batch_number)`'s command after each batch event.
fn train(
    overrides: &Overrides,
    on_batch: impl Fn(usize) -> Option<Command>,
) -> (Vec<Event>, ParamStore) {
    let prepared = prepare(&model(), overrides).expect("prepares");
    let (tx, rx) = mpsc::channel();
    let (events, handle) = prepared.trainer.spawn(rx);
    let mut seen = Vec::new();
    let mut batches = 0;
    for e in events {
        if let Event::Batch { .. } = e {
            batches += 1;
            if let Some(c) = on_batch(batches) {
                tx.send(c).unwrap();
            }
        }
        seen.push(e);
    }
    let outcome = handle.join().expect("trainer thread ends");
    let ckpt = checkpoint::load(&outcome.checkpoint).expect("checkpoint readable");
    let prepared = prepare(&model(), overrides).expect("prepares");
    let mut params = prepared.trainer.params.clone();
    ckpt.apply(&prepared.trainer.graph, &mut params, None)
        .expect("fits");
    (seen, params)
}

#[test]
fn stopping_and_resuming_gives_exactly_the_uninterrupted_weights() {
    let whole_dir = temp_dir("whole");
    let whole = Overrides {
        epochs: Some(2),
        batch_size: Some(32),
        limit: Some(320),
        save: Some(whole_dir.clone()),
        resume: None,
        seed: None,
        backend: cnntui::runtime::Backend::Jit,
        weights: None,
    };
    let (_, expected) = train(&whole, |_| None);

    let part_dir = temp_dir("part");
    let part = Overrides {
        save: Some(part_dir.clone()),
        ..whole.clone()
    };
    let (events, _) = train(&part, |b| (b == 13).then_some(Command::Stop));
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Finished {
                stopped_early: true,
                ..
            }
        )),
        "stopped early"
    );
    let resumed = Overrides {
        resume: Some(part_dir.join("checkpoint.safetensors")),
        seed: None,
        backend: cnntui::runtime::Backend::Jit,
        ..part.clone()
    };
    let (events, got) = train(&resumed, |_| None);
    let started = events.iter().find(|e| matches!(e, Event::Started { .. }));
    assert!(
        matches!(started, Some(Event::Started { epoch: 1, .. })),
        "resumes in the second epoch: {started:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Compiling { done, total } if done == total)),
        "the JIT compiles before the first batch and says so"
    );
    assert_eq!(got, expected, "bitwise identical weights after resuming");

    let h_whole = History::read(&whole_dir.join("history.json")).unwrap();
    let h_resumed = History::read(&part_dir.join("history.json")).unwrap();
    assert_eq!(h_whole, h_resumed);
    assert_eq!(h_whole.epochs(), 2);
    assert_eq!(h_whole.val_accuracy.len(), 2);
    let text = std::fs::read_to_string(whole_dir.join("history.json")).unwrap();
    for key in [
        "\"loss\"",
        "\"accuracy\"",
        "\"val_loss\"",
        "\"val_accuracy\"",
        "\"learning_rate\"",
    ] {
        assert!(text.contains(key), "history.json has {key}: {text}");
    }
}

#[test]
fn commands_take_effect_at_the_next_batch() {
    let dir = temp_dir("commands");
    let o = Overrides {
        epochs: Some(1),
        batch_size: Some(32),
        limit: Some(320),
        save: Some(dir),
        resume: None,
        seed: None,
        backend: cnntui::runtime::Backend::Jit,
        weights: None,
    };
    let (events, _) = train(&o, |b| match b {
        1 => Some(Command::SetLearningRate(5e-4)),
        2 => Some(Command::SetTrainable {
            layer: "conv2d".into(),
            trainable: false,
        }),
        3 => Some(Command::Save),
        _ => None,
    });
    let lr_at = events
        .iter()
        .position(|e| matches!(e, Event::LearningRate(lr) if *lr == 5e-4))
        .expect("lr changed");
    let later_lr = events[lr_at..].iter().find_map(|e| match e {
        Event::Batch { learning_rate, .. } => Some(*learning_rate),
        _ => None,
    });
    assert_eq!(later_lr, Some(5e-4));
    assert!(events.iter().any(|e| matches!(e, Event::TrainableChanged { layer, trainable: false, trainable_params } if layer == "conv2d" && *trainable_params == 93_322 - 320)));
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, Event::CheckpointSaved(_)))
            .count()
            >= 2,
        "the save command and the epoch end"
    );
    let health = events.iter().rev().find_map(|e| match e {
        Event::Health(h) => Some(h.clone()),
        _ => None,
    });
    let health = health.expect("health reported");
    let conv = health.iter().find(|h| h.layer == "conv2d").unwrap();
    assert!(
        !conv.trainable && conv.update_ratio == 0.0,
        "a frozen layer is not updated: {conv:?}"
    );
    let dense = health.iter().find(|h| h.layer == "dense").unwrap();
    assert!(dense.update_ratio > 0.0 && dense.grad_norm > 0.0 && dense.dead_fraction.is_some());
}

#[test]
fn a_few_hundred_steps_learn_mnist() {
    let dir = temp_dir("learn");
    let o = Overrides {
        epochs: Some(1),
        batch_size: Some(64),
        limit: Some(6400),
        save: Some(dir),
        resume: None,
        seed: None,
        backend: cnntui::runtime::Backend::Jit,
        weights: None,
    };
    let (events, _) = train(&o, |_| None);
    let acc = events.iter().find_map(|e| match e {
        Event::Finished { test_accuracy, .. } => *test_accuracy,
        _ => None,
    });
    assert!(acc.expect("tested") > 0.85, "{acc:?}");
}
