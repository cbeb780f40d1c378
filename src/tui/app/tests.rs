//! `App::update` for every key and every trainer event.

use std::path::{Path, PathBuf};

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use super::*;
use crate::runtime::{EpochMetrics, Event as T};

fn mnist() -> Graph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mnist.ron");
    crate::ir::load(&path).expect("models/mnist.ron lowers")
}

fn loaded(graph: Graph) -> Loaded {
    Loaded {
        groups: vec![None; graph.nodes.len()],
        graph,
        warnings: vec!["a warning from preparation".into()],
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

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ch(c: char) -> Event {
    key(KeyCode::Char(c))
}

fn ctrl_c() -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL))
}

/// A dashboard whose trainer is up and waiting for `t`, at 80×24.
fn ready() -> App {
    let mut app = App::new("models/mnist.ron", Theme::ascii());
    app.update(Event::Resize(80, 24));
    let cmds = app.update(Event::Loaded(Box::new(loaded(mnist()))));
    assert_eq!(cmds, vec![Command::Watch("conv2d".into())]);
    app.update(Event::Trainer(T::Started {
        epochs: 5,
        batches_per_epoch: 32,
        samples: 2000,
        epoch: 0,
        batch: 0,
    }));
    app.update(Event::Trainer(T::EpochStarted { epoch: 0 }));
    app
}

/// A dashboard that is training.
fn training() -> App {
    let mut app = ready();
    assert_eq!(app.update(ch('t')), vec![Command::Resume]);
    app.update(Event::Trainer(T::Resumed));
    assert_eq!(app.phase, Phase::Training);
    app
}

fn batch(epoch: usize, batch: usize, loss: f64, accuracy: f64) -> Event {
    Event::Trainer(T::Batch {
        epoch,
        batch,
        batches: 32,
        loss,
        accuracy,
        samples_per_s: 1000.0,
        learning_rate: 1e-3,
    })
}

fn maps(layer: &str, c: usize) -> Event {
    Event::Trainer(T::FeatureMaps(Box::new(FeatureMaps {
        view: crate::runtime::View::Activations,
        layer: layer.into(),
        shape: vec![26, 26, c],
        values: vec![0.5; 26 * 26 * c],
        input_shape: vec![28, 28, 1],
        input: vec![0.0; 28 * 28],
        label: 7,
    })))
}

fn last_log(app: &App) -> &str {
    app.log.back().map_or("", |l| l.text.as_str())
}

// Keys.

#[test]
fn loading_selects_the_first_convolution_and_asks_for_its_feature_maps() {
    let app = ready();
    assert_eq!(app.phase, Phase::Ready);
    assert_eq!(app.selected_node().map(|n| n.name.as_str()), Some("conv2d"));
    assert_eq!(app.trainable_params, 93_322);
    assert!(app.log.iter().any(|l| l.level == Level::Warn));
}

#[test]
fn t_starts_pauses_and_resumes_training() {
    let mut app = training();
    assert_eq!(last_log(&app), "training");
    assert_eq!(app.update(ch('t')), vec![Command::Pause]);
    app.update(Event::Trainer(T::Paused));
    assert_eq!(app.phase, Phase::Paused);
    assert_eq!(app.update(ch('t')), vec![Command::Resume]);
    app.update(Event::Trainer(T::Resumed));
    assert_eq!((app.phase, last_log(&app)), (Phase::Training, "resumed"));
}

#[test]
fn t_does_nothing_while_preparing_or_after_training() {
    let mut app = App::new("m.ron", Theme::ascii());
    assert!(app.update(ch('t')).is_empty());
    assert_eq!(last_log(&app), "still preparing the model");
    let mut app = training();
    app.update(Event::Trainer(T::Finished {
        stopped_early: false,
        test_accuracy: Some(0.9),
        seconds: 3.0,
    }));
    assert!(app.update(ch('t')).is_empty());
}

#[test]
fn down_and_up_select_layers_and_watch_them_once_the_selection_rests() {
    let mut app = ready();
    assert!(app.update(key(KeyCode::Down)).is_empty());
    assert!(app.update(key(KeyCode::Down)).is_empty());
    assert_eq!(
        app.selected_node().map(|n| n.name.as_str()),
        Some("conv2d_1")
    );
    assert_eq!(
        app.update(Event::Tick),
        vec![Command::Watch("conv2d_1".into())]
    );
    assert!(app.update(Event::Tick).is_empty(), "asked once");
    app.update(key(KeyCode::Up));
    assert_eq!(app.selected, 1);
    for _ in 0..5 {
        app.update(key(KeyCode::Up));
    }
    assert_eq!(app.selected, 0, "stops at the first layer");
    app.update(key(KeyCode::End));
    assert_eq!(app.selected, app.rows().len() - 1);
}

#[test]
fn selection_scrolls_a_long_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/vgg16.ron");
    let graph = crate::ir::load(&path).expect("vgg16 lowers");
    let mut app = App::new("models/vgg16.ron", Theme::ascii());
    app.update(Event::Resize(80, 24));
    app.update(Event::Loaded(Box::new(loaded(graph))));
    assert_eq!(app.rows().len(), 22);
    app.update(key(KeyCode::End));
    let visible = layout::model_rows_visible(&app);
    assert!(app.model_offset > 0);
    assert!(app.selected < app.model_offset + visible);
    app.update(key(KeyCode::Home));
    assert_eq!((app.selected, app.model_offset), (0, 0));
}

#[test]
fn arrows_scroll_the_log_when_it_has_the_focus() {
    let mut app = ready();
    for i in 0..5 {
        app.update(Event::Trainer(T::Warning(format!("w{i}"))));
    }
    while app.focus != Focus::Log {
        app.update(key(KeyCode::Tab));
    }
    let selected = app.selected;
    app.update(key(KeyCode::Up));
    app.update(key(KeyCode::Up));
    assert_eq!((app.log_scroll, app.selected), (2, selected));
    app.update(key(KeyCode::Down));
    assert_eq!(app.log_scroll, 1);
}

#[test]
fn space_freezes_and_unfreezes_the_selected_layer() {
    let mut app = ready();
    assert_eq!(
        app.update(ch(' ')),
        vec![Command::SetTrainable {
            layer: "conv2d".into(),
            trainable: false
        }]
    );
    app.update(Event::Trainer(T::TrainableChanged {
        layer: "conv2d".into(),
        trainable: false,
        trainable_params: 93_002,
    }));
    assert!(!app.rows()[0].trainable);
    assert_eq!(app.trainable_params, 93_002);
    assert_eq!(last_log(&app), "conv2d frozen: 93,002 trainable params");
    assert_eq!(
        app.update(ch(' ')),
        vec![Command::SetTrainable {
            layer: "conv2d".into(),
            trainable: true
        }]
    );
}

#[test]
fn space_on_a_layer_without_weights_explains_instead() {
    let mut app = ready();
    app.update(key(KeyCode::Down));
    assert!(app.update(ch(' ')).is_empty());
    assert_eq!(last_log(&app), "max_pooling2d has no weights to freeze");
}

#[test]
fn f_fine_tunes_from_the_selected_layer_and_the_model_follows_the_trainer() {
    let mut app = ready();
    app.update(key(KeyCode::End));
    app.update(key(KeyCode::Up));
    let dense = app.selected_node().map(|n| n.name.clone());
    assert_eq!(dense.as_deref(), Some("dense"));
    assert_eq!(
        app.update(ch('f')),
        vec![Command::FineTuneFrom("dense".into())]
    );
    // The trainer reports every layer; only the conv layers change.
    let names: Vec<String> = app.rows().iter().map(|n| n.name.clone()).collect();
    for (i, name) in names.iter().enumerate() {
        app.update(Event::Trainer(T::TrainableChanged {
            layer: name.clone(),
            trainable: i >= 6,
            trainable_params: 37_610,
        }));
    }
    assert_eq!(app.trainable_params, 37_610);
    let frozen: Vec<&str> = app
        .rows()
        .iter()
        .filter(|n| !n.trainable && n.param_count() > 0)
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(frozen, ["conv2d", "conv2d_1", "conv2d_2"]);
    let logged = app.log.iter().filter(|l| l.text.contains("frozen")).count();
    assert_eq!(logged, 3, "one line per layer whose weights changed state");
}

#[test]
fn plus_and_minus_double_and_halve_the_learning_rate() {
    let mut app = training();
    assert_eq!(app.update(ch('+')), vec![Command::SetLearningRate(2e-3)]);
    assert_eq!(app.update(ch('+')), vec![Command::SetLearningRate(4e-3)]);
    assert_eq!(app.update(ch('-')), vec![Command::SetLearningRate(2e-3)]);
    app.update(Event::Trainer(T::LearningRate(2e-3)));
    assert_eq!(last_log(&app), "learning rate 2.00e-3");
}

#[test]
fn left_and_right_page_through_channels() {
    let mut app = ready();
    app.update(maps("conv2d", 32));
    let pages = app.pages();
    assert!(pages > 1, "32 channels need several pages at 80x24");
    assert!(app.update(key(KeyCode::Right)).is_empty());
    assert_eq!(app.page, 1);
    for _ in 0..100 {
        app.update(key(KeyCode::Right));
    }
    assert_eq!(app.page, pages - 1);
    app.update(key(KeyCode::Left));
    assert_eq!(app.page, pages - 2);
    app.update(key(KeyCode::Down));
    assert_eq!(app.page, 0, "a new layer starts at its first channel");
}

#[test]
fn tab_cycles_the_focus_and_the_bottom_pane_follows() {
    let mut app = ready();
    let mut seen = vec![app.focus];
    for _ in 0..5 {
        app.update(key(KeyCode::Tab));
        seen.push(app.focus);
        if app.focus == Focus::Health {
            assert_eq!(app.bottom, Focus::Health);
        }
    }
    assert_eq!(
        seen,
        [
            Focus::Model,
            Focus::Training,
            Focus::FeatureMaps,
            Focus::Health,
            Focus::Log,
            Focus::Model
        ]
    );
    app.update(key(KeyCode::BackTab));
    assert_eq!(app.focus, Focus::Log);
}

#[test]
fn c_saves_and_e_evaluates() {
    let mut app = training();
    assert_eq!(app.update(ch('c')), vec![Command::Save]);
    assert_eq!(app.update(ch('e')), vec![Command::Evaluate]);
    app.has_test = false;
    assert!(app.update(ch('e')).is_empty());
}

#[test]
fn s_stops_training_and_the_dashboard_stays() {
    let mut app = training();
    assert_eq!(app.update(ch('s')), vec![Command::Stop]);
    assert_eq!(app.phase, Phase::Stopping);
    assert!(app.update(ch('s')).is_empty(), "asked once");
    app.update(Event::Trainer(T::CheckpointSaved(PathBuf::from(
        "runs/x/c",
    ))));
    app.update(Event::Trainer(T::Finished {
        stopped_early: true,
        test_accuracy: None,
        seconds: 2.0,
    }));
    assert_eq!((app.phase, app.quit), (Phase::Finished, Quit::No));
}

#[test]
fn q_quits_at_once_when_nothing_trains_after_the_trainer_saves() {
    let mut app = ready();
    assert_eq!(app.update(ch('q')), vec![Command::Stop]);
    assert_eq!(app.quit, Quit::AfterTrainer);
    app.update(Event::TrainerExited);
    assert_eq!(app.quit, Quit::Now);
    let mut app = App::new("m.ron", Theme::ascii());
    assert!(app.update(ch('q')).is_empty());
    assert_eq!(app.quit, Quit::Now, "while preparing there is no trainer");
}

#[test]
fn q_while_training_asks_first() {
    let mut app = training();
    assert!(app.update(ch('q')).is_empty());
    assert!(app.confirm_quit);
    assert!(app.update(ch('t')).is_empty(), "the popup takes the keys");
    app.update(ch('n'));
    assert!(!app.confirm_quit);
    assert_eq!(app.quit, Quit::No);
    app.update(ch('q'));
    assert_eq!(app.update(ch('y')), vec![Command::Stop]);
    assert_eq!((app.confirm_quit, app.quit), (false, Quit::AfterTrainer));
    // The trainer stops, saves and then lingers: it is told again, then exits.
    let cmds = app.update(Event::Trainer(T::Finished {
        stopped_early: true,
        test_accuracy: None,
        seconds: 1.0,
    }));
    assert_eq!(cmds, vec![Command::Stop]);
    app.update(Event::TrainerExited);
    assert_eq!(app.quit, Quit::Now);
}

#[test]
fn question_mark_opens_and_closes_the_help() {
    let mut app = ready();
    app.update(ch('?'));
    assert!(app.help);
    assert!(app.update(ch('t')).is_empty(), "help takes the keys");
    app.update(key(KeyCode::Esc));
    assert!(!app.help);
    app.update(ch('?'));
    app.update(ch('?'));
    assert!(!app.help);
}

#[test]
fn ctrl_c_quits_with_a_save_and_twice_quits_at_once() {
    let mut app = training();
    assert_eq!(app.update(ctrl_c()), vec![Command::Stop]);
    assert_eq!(app.quit, Quit::AfterTrainer);
    assert!(app.interrupted);
    assert!(app.update(ctrl_c()).is_empty());
    assert_eq!(app.quit, Quit::Now);
    assert_ne!(app.update(ch('c')), Vec::<Command>::new(), "plain c saves");
}

#[test]
fn sigint_acts_as_ctrl_c() {
    let mut app = training();
    assert_eq!(app.update(Event::Interrupt), vec![Command::Stop]);
    assert!(app.interrupted);
}

#[test]
fn m_and_l_toggle_smoothing_and_the_log_scale() {
    let mut app = ready();
    let (smooth, log) = (app.smooth, app.log_scale);
    app.update(ch('m'));
    app.update(ch('l'));
    assert_eq!((app.smooth, app.log_scale), (!smooth, !log));
}

#[test]
fn clicking_a_layer_row_selects_it_at_once() {
    let mut app = ready();
    let model = layout::panes(&app).model;
    let click = |row: u16| {
        Event::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: model.x + 3,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    // Border, header, then the rows.
    assert_eq!(
        app.update(click(model.y + 2 + 4)),
        vec![Command::Watch("conv2d_2".into())]
    );
    assert_eq!(app.selected, 4);
    assert!(app.update(click(model.y + 1)).is_empty(), "the header row");
    let training = layout::panes(&app).training;
    app.update(Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: training.x + 2,
        row: training.y + 2,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.focus, Focus::Training);
}

#[test]
fn key_releases_are_ignored() {
    let mut app = ready();
    let mut release = KeyEvent::new(KeyCode::Char('t'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert!(app.update(Event::Key(release)).is_empty());
}

// Trainer events and the loop's own events.

#[test]
fn preview_shows_the_model_while_preparing() {
    let mut app = App::new("models/mnist.ron", Theme::ascii());
    app.update(Event::Preview(Box::new(mnist())));
    assert_eq!((app.phase, app.rows().len()), (Phase::Preparing, 8));
}

#[test]
fn resize_keeps_the_selection_visible() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/vgg16.ron");
    let mut app = App::new("vgg", Theme::ascii());
    app.update(Event::Resize(140, 45));
    app.update(Event::Loaded(Box::new(loaded(
        crate::ir::load(&path).expect("lowers"),
    ))));
    app.update(key(KeyCode::End));
    app.update(Event::Resize(80, 24));
    assert_eq!(app.size, Rect::new(0, 0, 80, 24));
    assert!(app.selected < app.model_offset + layout::model_rows_visible(&app));
}

#[test]
fn started_sets_the_run_and_logs_a_resumption() {
    let mut app = ready();
    app.update(Event::Trainer(T::Started {
        epochs: 3,
        batches_per_epoch: 10,
        samples: 640,
        epoch: 1,
        batch: 4,
    }));
    let p = &app.progress;
    assert_eq!((p.epochs, p.batches, p.epoch, p.batch), (3, 10, 1, 4));
    assert_eq!(last_log(&app), "resuming at epoch 2, batch 4");
}

#[test]
fn epoch_started_resets_the_batch_gauge() {
    let mut app = training();
    app.update(batch(0, 32, 0.5, 0.8));
    app.update(Event::Trainer(T::EpochStarted { epoch: 1 }));
    assert_eq!((app.progress.epoch, app.progress.batch), (1, 0));
}

#[test]
fn batches_move_the_gauges_recover_per_batch_figures_and_give_an_eta_after_warm_up() {
    let mut app = training();
    app.update(batch(0, 1, 2.0, 0.1));
    app.update(batch(0, 2, 1.5, 0.2));
    let p = &app.progress;
    assert_eq!((p.batch, p.loss, p.accuracy), (2, Some(1.5), Some(0.2)));
    // The second batch alone: 2 × 1.5 − 2.0 = 1.0.
    let (x, y) = app.curves.loss[1];
    assert!((x - 2.0 / 32.0).abs() < 1e-12 && (y - 1.0).abs() < 1e-9);
    assert_eq!(app.progress.eta_seconds(), None, "still warming up");
    for b in 3..=WARMUP_BATCHES + 2 {
        app.update(batch(0, b, 1.0, 0.5));
    }
    let eta = app
        .progress
        .eta_seconds()
        .expect("an ETA after the warm-up");
    let left = (4 * 32 + 32 - (WARMUP_BATCHES + 2)) * 64;
    assert!((eta - left as f64 / 1000.0).abs() < 1e-9);
}

#[test]
fn epoch_end_records_validation_and_logs_the_epoch() {
    let mut app = training();
    app.update(Event::Trainer(T::EpochEnded(EpochMetrics {
        epoch: 0,
        loss: 0.5,
        accuracy: 0.85,
        val_loss: Some(0.4),
        val_accuracy: Some(0.9),
        learning_rate: 1e-3,
    })));
    assert_eq!(app.progress.val_accuracy, Some(0.9));
    assert_eq!(app.curves.val_loss, vec![(1.0, 0.4)]);
    assert_eq!(
        last_log(&app),
        "epoch 1/5: loss 0.5000 · accuracy 0.8500 · val_loss 0.4000 · val_accuracy 0.9000"
    );
}

#[test]
fn health_and_feature_maps_are_kept_for_their_panes() {
    let mut app = training();
    let h = LayerHealth {
        layer: "conv2d".into(),
        grad_norm: 0.1,
        update_ratio: 1e-3,
        dead_fraction: Some(0.25),
        trainable: true,
    };
    app.update(Event::Trainer(T::Health(vec![h.clone()])));
    assert_eq!(app.health, vec![h]);
    app.update(maps("conv2d", 32));
    assert_eq!(
        app.feature_maps.as_ref().map(|m| m.layer.as_str()),
        Some("conv2d")
    );
}

#[test]
fn evaluation_and_checkpoints_are_logged() {
    let mut app = training();
    app.update(Event::Trainer(T::Evaluated {
        split: "test",
        loss: 0.3,
        accuracy: 0.91,
    }));
    assert_eq!(app.progress.test, Some((0.3, 0.91)));
    assert_eq!(last_log(&app), "test: loss 0.3000 · accuracy 0.9100");
    let path = PathBuf::from("runs/mnist_convnet/checkpoint.safetensors");
    app.update(Event::Trainer(T::CheckpointSaved(path.clone())));
    assert_eq!(app.last_checkpoint.as_ref(), Some(&path));
    assert!(last_log(&app).starts_with("saved runs/"));
}

#[test]
fn warnings_and_errors_are_logged_with_their_level() {
    let mut app = training();
    app.update(Event::Trainer(T::Warning("careful".into())));
    app.update(Event::Trainer(T::Error("disk full".into())));
    let levels: Vec<Level> = app.log.iter().rev().take(2).map(|l| l.level).collect();
    assert_eq!(levels, [Level::Error, Level::Warn]);
    assert_eq!(app.phase, Phase::Training, "an error does not stop the run");
}

#[test]
fn a_non_finite_loss_raises_the_alarm_until_a_batch_succeeds() {
    let mut app = training();
    app.update(Event::Trainer(T::NonFinite {
        epoch: 0,
        batch: 6,
        loss: f64::NAN,
    }));
    app.update(Event::Trainer(T::Paused));
    assert_eq!(app.phase, Phase::Paused);
    let alarm = app.alarm.expect("alarm raised");
    assert_eq!((alarm.epoch, alarm.batch), (0, 6));
    assert!(last_log(&app).contains("loss is NaN at epoch 1, batch 7"));
    assert_eq!(app.log.back().map(|l| l.level), Some(Level::Error));
    app.update(ch('-'));
    app.update(ch('t'));
    app.update(Event::Trainer(T::Resumed));
    app.update(batch(0, 7, 0.5, 0.5));
    assert_eq!(app.alarm, None);
}

#[test]
fn finishing_keeps_the_dashboard_with_the_final_figures() {
    let mut app = training();
    app.update(Event::Trainer(T::Finished {
        stopped_early: false,
        test_accuracy: Some(0.97),
        seconds: 65.0,
    }));
    assert_eq!((app.phase, app.quit), (Phase::Finished, Quit::No));
    assert_eq!(app.progress.overall(), 1.0);
    assert_eq!(last_log(&app), "training finished after 1:05; q quits");
    let mut app = training();
    app.exit_when_finished = true;
    let cmds = app.update(Event::Trainer(T::Finished {
        stopped_early: false,
        test_accuracy: None,
        seconds: 1.0,
    }));
    assert_eq!((cmds, app.quit), (vec![Command::Stop], Quit::AfterTrainer));
}

#[test]
fn a_trainer_that_exits_unasked_is_reported() {
    let mut app = training();
    app.update(Event::TrainerExited);
    assert_eq!(app.phase, Phase::Finished);
    assert_eq!(last_log(&app), "the trainer stopped unexpectedly");
    assert!(app.update(ch('c')).is_empty(), "nobody to save");
    assert_eq!(app.update(ch('q')), Vec::<Command>::new());
    assert_eq!(app.quit, Quit::Now);
}

#[test]
fn compiling_progress_shows_until_the_last_kernel_then_is_logged() {
    let mut app = training();
    app.update(Event::Trainer(T::Compiling { done: 2, total: 5 }));
    assert_eq!(app.compiling, Some((2, 5)));
    let backend = ratatui::backend::TestBackend::new(80, 24);
    let mut terminal = ratatui::Terminal::new(backend).unwrap();
    terminal
        .draw(|f| crate::tui::widgets::render_screen(f, &app))
        .unwrap();
    let screen: String = terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(screen.contains("compiling kernels 3/5"), "{screen}");
    app.update(Event::Trainer(T::Compiling { done: 5, total: 5 }));
    assert_eq!(app.compiling, None);
}

#[test]
fn v_cycles_activations_filters_heatmap_augmentation_and_image_ops() {
    let mut app = training();
    app.update(maps("conv2d", 32));
    assert_eq!(app.update(ch('v')), vec![Command::Snapshot]);
    assert_eq!(app.view, View::Filters);
    // Activations from the trainer no longer replace what the pane shows.
    app.update(maps("conv2d", 32));
    assert_eq!(app.feature_maps.as_ref().unwrap().view, View::Activations);
    let filters = FeatureMaps {
        view: View::Filters,
        layer: "conv2d".into(),
        shape: vec![28, 28, 16],
        values: vec![0.5; 28 * 28 * 16],
        input_shape: vec![28, 28, 1],
        input: vec![0.0; 28 * 28],
        label: 7,
    };
    app.update(Event::Visual(Box::new(filters)));
    assert_eq!(app.feature_maps.as_ref().unwrap().view, View::Filters);
    // Selecting another layer asks for its activations (kept for later) and its filters.
    let mut cmds = app.update(key(KeyCode::Down));
    cmds.extend(app.update(Event::Tick));
    cmds.extend(app.update(Event::Tick));
    assert!(cmds.contains(&Command::Snapshot), "{cmds:?}");
    assert_eq!(app.update(ch('v')), vec![Command::Snapshot]);
    assert_eq!(app.view, View::Heatmap);
    // A visualisation that arrives for a view left behind is dropped.
    let stale = FeatureMaps {
        view: View::Filters,
        layer: "conv2d".into(),
        shape: vec![28, 28, 1],
        values: vec![0.0; 28 * 28],
        input_shape: vec![28, 28, 1],
        input: vec![0.0; 28 * 28],
        label: 7,
    };
    app.update(Event::Visual(Box::new(stale)));
    assert_eq!(app.feature_maps.as_ref().unwrap().view, View::Filters);
    app.update(Event::VisualFailed("no feature maps".into()));
    assert!(last_log(&app).contains("no feature maps"));
    assert_eq!(app.update(ch('v')), vec![Command::Snapshot]);
    assert_eq!(app.view, View::Augmented);
    assert_eq!(
        app.update(ch('a')),
        vec![Command::Snapshot],
        "a draws new versions"
    );
    assert_eq!(app.update(ch('v')), vec![Command::Snapshot]);
    assert_eq!(app.view, View::ImageOps);
    assert!(
        app.update(ch('a')).is_empty(),
        "a does nothing outside the augmentation view"
    );
    let cmds = app.update(ch('v'));
    assert_eq!(app.view, View::Activations);
    assert!(matches!(cmds.as_slice(), [Command::Watch(_)]), "{cmds:?}");
}
