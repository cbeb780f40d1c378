//! The dashboard's whole screen at 80×24 and 140×45, drawn on ratatui's `TestBackend` from
//! scripted events: before training, during training, paused with a frozen layer, the quit
//! popup, the help overlay and the NaN alarm; and once in ASCII. Throughput and times are
//! redacted so the snapshots depend on layout only.

use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use cnntui::runtime::{EpochMetrics, Event as T, FeatureMaps, LayerHealth};
use cnntui::tui::{App, Event, Loaded, Theme, render};

const SIZES: [(u16, u16); 2] = [(80, 24), (140, 45)];

fn loaded() -> Loaded {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mnist.ron");
    let graph = cnntui::ir::load(&path).expect("models/mnist.ron lowers");
    Loaded {
        groups: vec![None; graph.nodes.len()],
        graph,
        warnings: Vec::new(),
        epochs: 5,
        batch_size: 64,
        train_samples: 2000,
        has_test: true,
        has_validation: true,
        learning_rate: 1e-3,
        optimizer: "RMSprop".into(),
        save_dir: PathBuf::from("runs/mnist_convnet"),
    }
}

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// A seven-ish sample image and smooth, channel-dependent activations: deterministic.
fn feature_maps(layer: &str, h: usize, w: usize, c: usize) -> Event {
    let mut input = vec![0.0f32; 28 * 28];
    for x in 6..22 {
        input[6 * 28 + x] = 1.0;
    }
    for y in 6..23 {
        let x = 21 - (y - 6) * 2 / 3;
        input[y * 28 + x] = 1.0;
        input[y * 28 + x - 1] = 0.6;
    }
    let mut values = vec![0.0f32; h * w * c];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let (fy, fx, fc) = (y as f32, x as f32, ch as f32);
                values[(y * w + x) * c + ch] =
                    ((fx * 0.35 + fc).sin() * (fy * 0.25 - fc * 0.5).cos()).max(0.0);
            }
        }
    }
    Event::Trainer(T::FeatureMaps(Box::new(FeatureMaps {
        view: cnntui::runtime::View::Activations,
        layer: layer.into(),
        shape: vec![h, w, c],
        values,
        input_shape: vec![28, 28, 1],
        input,
        label: 7,
    })))
}

fn health() -> Event {
    let layer = |name: &str, g: f32, r: f32, dead: Option<f32>| LayerHealth {
        layer: name.into(),
        grad_norm: g,
        update_ratio: r,
        dead_fraction: dead,
        trainable: true,
    };
    Event::Trainer(T::Health(vec![
        layer("conv2d", 0.042, 2.1e-3, Some(0.31)),
        layer("conv2d_1", 0.085, 1.4e-3, Some(0.62)),
        layer("conv2d_2", 0.11, 9.0e-4, Some(0.18)),
        layer("dense", 0.27, 6.0e-6, Some(0.05)),
        layer("dense_1", 0.33, 2.5e-3, None),
    ]))
}

/// Ready to train, the first layer's feature maps shown.
fn before_training() -> App {
    let mut app = App::new("models/mnist.ron", Theme::truecolor());
    app.update(Event::Loaded(Box::new(loaded())));
    app.update(Event::Trainer(T::Started {
        epochs: 5,
        batches_per_epoch: 32,
        samples: 2000,
        epoch: 0,
        batch: 0,
    }));
    app.update(Event::Trainer(T::EpochStarted { epoch: 0 }));
    app.update(feature_maps("conv2d", 26, 26, 32));
    app
}

/// One and a half epochs in, with validation figures, health and fresh feature maps.
fn during_training() -> App {
    let mut app = before_training();
    app.update(key('t'));
    app.update(Event::Trainer(T::Resumed));
    let mut loss_sum = 0.0;
    let mut correct = 0.0;
    for epoch in 0..2 {
        if epoch > 0 {
            app.update(Event::Trainer(T::EpochStarted { epoch }));
            (loss_sum, correct) = (0.0, 0.0);
        }
        let batches = if epoch == 0 { 32 } else { 16 };
        for b in 1..=batches {
            let t = (epoch * 32 + b) as f64;
            let loss = 2.3 * (-t / 25.0).exp() + 0.15 + 0.08 * ((t * 1.7).sin());
            let acc = (1.0 - loss / 2.6).clamp(0.0, 1.0);
            loss_sum += loss;
            correct += acc;
            app.update(Event::Trainer(T::Batch {
                epoch,
                batch: b,
                batches: 32,
                loss: loss_sum / b as f64,
                accuracy: correct / b as f64,
                samples_per_s: 1234.5,
                learning_rate: 1e-3,
            }));
        }
        if epoch == 0 {
            app.update(Event::Trainer(T::EpochEnded(EpochMetrics {
                epoch: 0,
                loss: loss_sum / 32.0,
                accuracy: correct / 32.0,
                val_loss: Some(0.42),
                val_accuracy: Some(0.871),
                learning_rate: 1e-3,
            })));
            app.update(Event::Trainer(T::CheckpointSaved(PathBuf::from(
                "runs/mnist_convnet/checkpoint.safetensors",
            ))));
        }
    }
    app.update(health());
    app.update(feature_maps("conv2d", 26, 26, 32));
    app
}

/// Paused after freezing `conv2d_1`.
fn paused_with_a_frozen_layer() -> App {
    let mut app = during_training();
    app.update(Event::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)));
    app.update(Event::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)));
    app.update(Event::Tick);
    app.update(feature_maps("conv2d_1", 11, 11, 64));
    app.update(key(' '));
    app.update(Event::Trainer(T::TrainableChanged {
        layer: "conv2d_1".into(),
        trainable: false,
        trainable_params: 74_826,
    }));
    app.update(key('t'));
    app.update(Event::Trainer(T::Paused));
    app
}

fn quit_popup() -> App {
    let mut app = during_training();
    app.update(key('q'));
    app
}

fn help_overlay() -> App {
    let mut app = during_training();
    app.update(key('?'));
    app
}

fn nan_alarm() -> App {
    let mut app = during_training();
    app.update(Event::Trainer(T::NonFinite {
        epoch: 1,
        batch: 16,
        loss: f64::NAN,
    }));
    app.update(Event::Trainer(T::Paused));
    app
}

/// The screen as text, one quoted line per row (`TestBackend`'s display).
fn screen(app: &mut App, (w, h): (u16, u16)) -> String {
    app.update(Event::Resize(w, h));
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    terminal.draw(|f| render(f, app)).expect("draws");
    terminal.backend().to_string()
}

fn check(name: &str, build: fn() -> App) {
    for size in SIZES {
        let mut app = build();
        let text = screen(&mut app, size);
        insta::with_settings!({
            filters => vec![
                (r"\d[\d,]* samples/s", "[rate] samples/s"),
                (r"ETA [0-9:]+s?", "ETA [eta]"),
                (r"done in [0-9:]+s?", "done in [time]"),
            ],
            snapshot_suffix => format!("{}x{}", size.0, size.1),
        }, {
            insta::assert_snapshot!(name, text);
        });
    }
}

#[test]
fn before_training_screen() {
    check("before_training", before_training);
}

#[test]
fn during_training_screen() {
    check("during_training", during_training);
}

#[test]
fn paused_with_a_frozen_layer_screen() {
    check("paused_frozen", paused_with_a_frozen_layer);
}

#[test]
fn quit_popup_screen() {
    check("quit_popup", quit_popup);
}

#[test]
fn help_overlay_screen() {
    check("help", help_overlay);
}

#[test]
fn nan_alarm_screen() {
    check("nan_alarm", nan_alarm);
}

#[test]
fn ascii_mode_draws_only_ascii() {
    let mut app = during_training();
    app.theme = Theme::ascii();
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    app.update(Event::Resize(80, 24));
    terminal.draw(|f| render(f, &app)).expect("draws");
    let buf = terminal.backend().buffer();
    for cell in buf.content() {
        assert!(cell.symbol().is_ascii(), "non-ASCII {:?}", cell.symbol());
        assert_eq!(
            (cell.fg, cell.bg),
            (ratatui::style::Color::Reset, ratatui::style::Color::Reset)
        );
    }
    insta::with_settings!({
        filters => vec![(r"\d[\d,]* samples/s", "[rate] samples/s"), (r"ETA [0-9:]+s?", "ETA [eta]")],
    }, {
        insta::assert_snapshot!("ascii_during_training", terminal.backend().to_string());
    });
}

#[test]
fn the_model_pane_shows_every_vgg16_layer_with_keras_counts_by_scrolling() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/vgg16.ron");
    let graph = cnntui::ir::load(&path).expect("vgg16 lowers");
    let names: Vec<String> = graph.nodes[1..].iter().map(|n| n.name.clone()).collect();
    let mut app = App::new("models/vgg16.ron", Theme::truecolor());
    app.update(Event::Loaded(Box::new(Loaded {
        groups: vec![None; graph.nodes.len()],
        graph,
        ..loaded()
    })));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..names.len() {
        let text = screen(&mut app, (80, 24));
        for n in &names {
            if text.contains(&format!("{n} ")) {
                seen.insert(n.clone());
            }
        }
        assert!(text.contains("138,357,544"), "{text}");
        app.update(Event::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)));
    }
    assert_eq!(seen.len(), 22, "13 convolutions, 5 pools, flatten, 3 dense");
    let convs = names.iter().filter(|n| n.contains("conv")).count();
    let pools = names.iter().filter(|n| n.contains("pool")).count();
    assert_eq!((convs, pools), (13, 5));
}
