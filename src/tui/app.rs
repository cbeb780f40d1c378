//! The dashboard's state and its one transition, [`App::update`]: an [`Event`] in, the
//! [`Command`]s for the trainer out. No I/O, no clock: time arrives as [`Event::Tick`], sizes as
//! [`Event::Resize`], so every transition is a plain function a unit test can call.
//!
//! Owns what the screen shows (the model with its trainable flags as the trainer reports them,
//! progress, curves, health, feature maps, log) and the UI's own state (selection, focus,
//! toggles, popups, quitting). Must not depend on the terminal or on rendering code other than
//! the pure layout used to hit-test mouse clicks and size pages.

use std::collections::VecDeque;
use std::path::PathBuf;

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};

use super::event::Event;
use super::layout;
use super::theme::Theme;
use super::widgets::feature_maps;
use crate::ir::Graph;
use crate::runtime::trainer::Trainer;
use crate::runtime::{self, Command, FeatureMaps, LayerHealth, View};

/// Batches into an epoch (of this run) before an ETA is shown: the first batches run slower
/// while caches and threads warm up.
pub const WARMUP_BATCHES: usize = 5;

mod progress;

pub use progress::{Curves, Finished, Progress};

/// Log lines kept; older ones are dropped.
const LOG_CAPACITY: usize = 1000;

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Lowering the model and loading its data.
    Preparing,
    /// The trainer waits for `t`.
    Ready,
    Training,
    Paused,
    /// `s` was pressed: the trainer finishes its batch and saves.
    Stopping,
    /// Training ended (or stopped); the figures stay until `q`.
    Finished,
    /// The model has nothing to train on (no `train` section): only the model is shown.
    Inspecting,
}

/// The pane that receives ↑/↓ and is drawn with a heavy border.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Model,
    Training,
    FeatureMaps,
    Health,
    Log,
}

impl Focus {
    const ORDER: [Focus; 5] = [
        Focus::Model,
        Focus::Training,
        Focus::FeatureMaps,
        Focus::Health,
        Focus::Log,
    ];

    fn step(self, forward: bool) -> Focus {
        let i = Focus::ORDER.iter().position(|&f| f == self).unwrap_or(0);
        let n = Focus::ORDER.len();
        Focus::ORDER[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }]
    }
}

/// Whether the loop should end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quit {
    No,
    /// The trainer was told to stop (it saves); quit when it has exited.
    AfterTrainer,
    /// End the loop now.
    Now,
}

/// What the dashboard knows about a prepared run.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub graph: Graph,
    /// A fused-group label per node (from the fusion pass; `None` where a layer runs alone).
    pub groups: Vec<Option<String>>,
    pub warnings: Vec<String>,
    pub epochs: usize,
    pub batch_size: usize,
    pub train_samples: usize,
    pub has_test: bool,
    pub has_validation: bool,
    pub learning_rate: f64,
    pub optimizer: String,
    pub save_dir: PathBuf,
}

impl Loaded {
    /// The facts the dashboard shows about `trainer`, with preparation's `warnings`.
    pub fn from_trainer(trainer: &Trainer, warnings: Vec<String>) -> Self {
        Loaded {
            graph: trainer.graph.clone(),
            groups: vec![None; trainer.graph.nodes.len()],
            warnings,
            epochs: trainer.config.epochs,
            batch_size: trainer.config.batch_size,
            train_samples: trainer.data.train.len(),
            has_test: trainer.data.test.as_ref().is_some_and(|t| !t.is_empty()),
            has_validation: trainer
                .data
                .validation
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
            learning_rate: trainer.optimizer.learning_rate,
            optimizer: trainer.optimizer.name().to_string(),
            save_dir: trainer.config.save_dir.clone(),
        }
    }
}

/// How a log line is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Good,
    Warn,
    Error,
}

/// One line of the log, with the epoch and batch it happened at (1-based, as shown).
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub level: Level,
    pub at: Option<(usize, usize)>,
    pub text: String,
}

/// A non-finite loss: where, and its value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Alarm {
    pub epoch: usize,
    pub batch: usize,
    pub loss: f64,
}

/// The dashboard's state.
#[derive(Debug)]
pub struct App {
    pub theme: Theme,
    /// The terminal's size, as last reported.
    pub size: Rect,
    pub phase: Phase,
    /// What the title shows before the model is lowered.
    pub model_path: String,
    /// The model as the trainer has it (trainable flags follow `TrainableChanged`).
    pub graph: Option<Graph>,
    pub groups: Vec<Option<String>>,
    pub trainable_params: usize,
    /// Index into the layer rows (graph nodes after the input).
    pub selected: usize,
    /// First layer row shown (the table scrolls to keep the selection visible).
    pub model_offset: usize,
    pub focus: Focus,
    /// Which of feature maps, health and log a small screen shows in its bottom pane.
    pub bottom: Focus,
    pub progress: Progress,
    pub curves: Curves,
    pub smooth: bool,
    pub log_scale: bool,
    pub feature_maps: Option<Box<FeatureMaps>>,
    /// What the Feature maps pane shows (`v` cycles activations, filters, heatmap).
    pub view: View,
    /// Page of feature-map channels.
    pub page: usize,
    pub health: Vec<LayerHealth>,
    pub log: VecDeque<LogLine>,
    /// Lines scrolled back from the newest log line.
    pub log_scroll: usize,
    pub alarm: Option<Alarm>,
    pub help: bool,
    pub confirm_quit: bool,
    pub quit: Quit,
    /// Ctrl-C (or SIGINT) ended the dashboard: exit status 130.
    pub interrupted: bool,
    pub has_test: bool,
    pub has_validation: bool,
    /// JIT compilation in progress: (layers done, layers in all).
    pub compiling: Option<(usize, usize)>,
    /// What the trainer evaluates between batches ("validating…", "testing…"), if anything.
    pub evaluating: Option<&'static str>,
    pub save_dir: Option<PathBuf>,
    pub last_checkpoint: Option<PathBuf>,
    pub optimizer: String,
    pub trainer_alive: bool,
    pub ticks: u64,
    /// A layer to watch once the selection has rested for a tick.
    watch_due: Option<u64>,
    /// Quit on its own when training finishes (benchmarks, tests).
    pub exit_when_finished: bool,
    /// Start training as soon as the trainer is ready, without `t` (benchmarks, tests).
    pub autostart: bool,
}

impl App {
    /// A dashboard preparing `model_path`, drawn with `theme`.
    pub fn new(model_path: impl Into<String>, theme: Theme) -> Self {
        App {
            theme,
            size: Rect::new(0, 0, 80, 24),
            phase: Phase::Preparing,
            model_path: model_path.into(),
            graph: None,
            groups: Vec::new(),
            trainable_params: 0,
            selected: 0,
            model_offset: 0,
            focus: Focus::Model,
            bottom: Focus::FeatureMaps,
            progress: Progress::default(),
            curves: Curves::default(),
            smooth: true,
            log_scale: false,
            feature_maps: None,
            view: View::Activations,
            page: 0,
            health: Vec::new(),
            log: VecDeque::new(),
            log_scroll: 0,
            alarm: None,
            help: false,
            confirm_quit: false,
            quit: Quit::No,
            interrupted: false,
            has_test: false,
            has_validation: false,
            compiling: None,
            evaluating: None,
            save_dir: None,
            last_checkpoint: None,
            optimizer: String::new(),
            trainer_alive: false,
            ticks: 0,
            watch_due: None,
            exit_when_finished: false,
            autostart: false,
        }
    }

    /// The layer rows: graph nodes after the input (as Keras's summary of a sequential model).
    pub fn rows(&self) -> &[crate::ir::Node] {
        self.graph
            .as_ref()
            .map_or(&[], |g| &g.nodes[1.min(g.nodes.len())..])
    }

    /// The selected layer's node, if the model is known.
    pub fn selected_node(&self) -> Option<&crate::ir::Node> {
        self.rows().get(self.selected)
    }

    /// Whether the trainer is between `t` and the end of training (quitting asks first).
    pub fn training_runs(&self) -> bool {
        matches!(
            self.phase,
            Phase::Training | Phase::Paused | Phase::Stopping
        )
    }

    /// Applies one event; returns what the trainer must be told.
    pub fn update(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::Key(k) => self.key(k),
            Event::Mouse(m) => self.mouse(m),
            Event::Tick => self.tick(),
            Event::Resize(w, h) => {
                self.size = Rect::new(0, 0, w, h);
                self.keep_selection_visible();
                Vec::new()
            }
            Event::Preview(graph) => {
                if self.graph.is_none() {
                    self.set_graph(*graph);
                }
                Vec::new()
            }
            // The loop turns a successful preparation into `Loaded`; failures end the loop.
            Event::Prepared(_) => Vec::new(),
            Event::Loaded(loaded) => self.loaded(*loaded),
            Event::Untrainable(why) => {
                self.phase = Phase::Inspecting;
                self.note(Level::Warn, why);
                Vec::new()
            }
            Event::Trainer(e) => self.trainer(e),
            Event::TrainerExited => {
                self.trainer_alive = false;
                if self.quit == Quit::AfterTrainer {
                    self.quit = Quit::Now;
                } else if self.phase != Phase::Finished {
                    self.note(Level::Error, "the trainer stopped unexpectedly");
                    self.phase = Phase::Finished;
                }
                Vec::new()
            }
            Event::Interrupt => self.interrupt(),
            Event::Visual(maps) => {
                if maps.view == self.view {
                    self.feature_maps = Some(maps);
                    self.page = 0;
                }
                Vec::new()
            }
            Event::VisualFailed(why) => {
                self.note(Level::Warn, why);
                Vec::new()
            }
        }
    }

    fn set_graph(&mut self, graph: Graph) {
        self.trainable_params = graph.trainable_params();
        self.selected = graph.nodes[1.min(graph.nodes.len())..]
            .iter()
            .position(|n| n.param_count() > 0 && n.shape.rank() == 3)
            .unwrap_or(0);
        self.groups = vec![None; graph.nodes.len()];
        self.graph = Some(graph);
        self.keep_selection_visible();
    }

    fn loaded(&mut self, l: Loaded) -> Vec<Command> {
        let keep = self.selected;
        let had_graph = self.graph.is_some();
        self.set_graph(l.graph);
        if had_graph {
            self.selected = keep.min(self.rows().len().saturating_sub(1));
            self.keep_selection_visible();
        }
        self.groups = l.groups;
        self.progress.epochs = l.epochs;
        self.progress.batch_size = l.batch_size;
        self.progress.samples = l.train_samples;
        self.progress.batches = l.train_samples.div_ceil(l.batch_size.max(1));
        self.progress.learning_rate = l.learning_rate;
        self.has_test = l.has_test;
        self.has_validation = l.has_validation;
        self.optimizer = l.optimizer;
        self.save_dir = Some(l.save_dir);
        self.trainer_alive = true;
        self.phase = Phase::Ready;
        for w in l.warnings {
            self.note(Level::Warn, w);
        }
        self.note(Level::Info, "ready: press t to train");
        let mut commands = self.watch_selected();
        if self.autostart {
            commands.push(Command::Resume);
        }
        commands
    }

    fn watch_selected(&mut self) -> Vec<Command> {
        self.watch_due = None;
        match self.selected_node() {
            Some(node) if self.trainer_alive => {
                let mut commands = vec![Command::Watch(node.name.clone())];
                // Filters follow the selected layer; the heatmap is of the whole model.
                if self.view == View::Filters {
                    commands.push(Command::Snapshot);
                }
                commands
            }
            _ => Vec::new(),
        }
    }

    /// `v`: the next of activations, filters, heatmap, augmented versions and image
    /// operations. All but the first are computed from a snapshot of the model, away from the
    /// trainer.
    fn cycle_view(&mut self) -> Vec<Command> {
        self.view = self.view.next();
        let what = match self.view {
            View::Activations => "activations of the selected layer",
            View::Filters => "filters of the selected layer by gradient ascent (computing…)",
            View::Heatmap => "Grad-CAM heatmap of the predicted class (computing…)",
            View::Augmented => "a training image and eight augmented versions (a: new draws)",
            View::ImageOps => "the sample through grey, blur, TV denoising, Sobel, Canny, k-means",
        };
        self.note(Level::Info, format!("showing {what}"));
        if !self.trainer_alive {
            return Vec::new();
        }
        match self.view {
            View::Activations => self.watch_selected(),
            View::Filters | View::Heatmap | View::Augmented | View::ImageOps => {
                vec![Command::Snapshot]
            }
        }
    }

    /// Appends a log line at the current position.
    fn note(&mut self, level: Level, text: impl Into<String>) {
        let p = &self.progress;
        let at = (self.phase != Phase::Preparing && p.epochs > 0).then_some((p.epoch + 1, p.batch));
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(LogLine {
            level,
            at,
            text: text.into(),
        });
        if self.log_scroll > 0 {
            self.log_scroll += 1;
        }
    }

    fn tick(&mut self) -> Vec<Command> {
        self.ticks += 1;
        match self.watch_due {
            Some(due) if self.ticks >= due => self.watch_selected(),
            _ => Vec::new(),
        }
    }

    fn key(&mut self, k: KeyEvent) -> Vec<Command> {
        if k.kind != KeyEventKind::Press {
            return Vec::new();
        }
        if k.modifiers.contains(KeyModifiers::CONTROL) {
            return match k.code {
                KeyCode::Char('c') => self.interrupt(),
                _ => Vec::new(),
            };
        }
        if self.confirm_quit {
            match k.code {
                KeyCode::Char('y' | 'Y' | 'q') | KeyCode::Enter => return self.stop_and_quit(),
                KeyCode::Char('n' | 'N') | KeyCode::Esc => self.confirm_quit = false,
                _ => {}
            }
            return Vec::new();
        }
        if self.help {
            if matches!(k.code, KeyCode::Char('?' | 'q') | KeyCode::Esc) {
                self.help = false;
            }
            return Vec::new();
        }
        match k.code {
            KeyCode::Char('t') => self.toggle_training(),
            KeyCode::Up => self.arrow(-1),
            KeyCode::Down => self.arrow(1),
            KeyCode::PageUp => self.select_by(-10),
            KeyCode::PageDown => self.select_by(10),
            KeyCode::Home => self.select_by(isize::MIN / 2),
            KeyCode::End => self.select_by(isize::MAX / 2),
            KeyCode::Char(' ') => self.toggle_freeze(),
            KeyCode::Char('f') => self.fine_tune(),
            KeyCode::Char('+' | '=') => self.scale_learning_rate(2.0),
            KeyCode::Char('-' | '_') => self.scale_learning_rate(0.5),
            KeyCode::Left => self.turn_page(-1),
            KeyCode::Right => self.turn_page(1),
            KeyCode::Tab => self.set_focus(self.focus.step(true)),
            KeyCode::BackTab => self.set_focus(self.focus.step(false)),
            KeyCode::Char('c') => self.command(Command::Save, "saving a checkpoint"),
            KeyCode::Char('e') => self.evaluate(),
            KeyCode::Char('s') => self.stop(),
            KeyCode::Char('q') => self.ask_quit(),
            KeyCode::Char('?') => {
                self.help = true;
                Vec::new()
            }
            KeyCode::Char('m') => {
                self.smooth = !self.smooth;
                Vec::new()
            }
            KeyCode::Char('l') => {
                self.log_scale = !self.log_scale;
                Vec::new()
            }
            KeyCode::Char('v') => self.cycle_view(),
            KeyCode::Char('a') if self.view == View::Augmented && self.trainer_alive => {
                vec![Command::Snapshot]
            }
            _ => Vec::new(),
        }
    }

    /// Whether a command can go to the trainer now; logs why not.
    fn trainer_ready(&mut self) -> bool {
        if self.phase == Phase::Inspecting {
            self.note(
                Level::Warn,
                "this model has no `train` section: nothing to train",
            );
            return false;
        }
        if self.phase == Phase::Preparing {
            self.note(Level::Warn, "still preparing the model");
            return false;
        }
        if !self.trainer_alive {
            self.note(Level::Warn, "the trainer has stopped");
            return false;
        }
        true
    }

    fn command(&mut self, cmd: Command, what: &str) -> Vec<Command> {
        if !self.trainer_ready() {
            return Vec::new();
        }
        self.note(Level::Info, format!("{what}…"));
        vec![cmd]
    }

    fn toggle_training(&mut self) -> Vec<Command> {
        if !self.trainer_ready() {
            return Vec::new();
        }
        match self.phase {
            Phase::Ready | Phase::Paused => vec![Command::Resume],
            Phase::Training => vec![Command::Pause],
            Phase::Stopping => Vec::new(),
            Phase::Finished | Phase::Preparing => {
                self.note(Level::Info, "training has ended; q quits");
                Vec::new()
            }
            Phase::Inspecting => Vec::new(),
        }
    }

    fn evaluate(&mut self) -> Vec<Command> {
        if !self.has_test && self.phase != Phase::Preparing {
            self.note(Level::Warn, "the data has no test split to evaluate on");
            return Vec::new();
        }
        self.command(Command::Evaluate, "evaluating on the test split")
    }

    fn stop(&mut self) -> Vec<Command> {
        if matches!(self.phase, Phase::Stopping | Phase::Finished) {
            return Vec::new();
        }
        let cmds = self.command(
            Command::Stop,
            "stopping after this batch (a checkpoint is saved)",
        );
        if !cmds.is_empty() {
            self.phase = Phase::Stopping;
        }
        cmds
    }

    fn ask_quit(&mut self) -> Vec<Command> {
        if self.training_runs() {
            self.confirm_quit = true;
            Vec::new()
        } else {
            self.stop_and_quit()
        }
    }

    /// Tells the trainer to stop (it saves) and quits once it has exited.
    fn stop_and_quit(&mut self) -> Vec<Command> {
        self.confirm_quit = false;
        if !self.trainer_alive {
            self.quit = Quit::Now;
            return Vec::new();
        }
        self.quit = Quit::AfterTrainer;
        if self.training_runs() {
            self.note(Level::Info, "quitting: finishing the batch and saving…");
        }
        vec![Command::Stop]
    }

    /// Ctrl-C: quit, saving; a second one while the trainer saves quits at once.
    fn interrupt(&mut self) -> Vec<Command> {
        self.interrupted = true;
        if self.quit == Quit::AfterTrainer {
            self.quit = Quit::Now;
            return Vec::new();
        }
        self.stop_and_quit()
    }

    fn arrow(&mut self, delta: isize) -> Vec<Command> {
        if self.focus == Focus::Log {
            self.log_scroll = if delta < 0 {
                (self.log_scroll + 1).min(self.log.len().saturating_sub(1))
            } else {
                self.log_scroll.saturating_sub(1)
            };
            return Vec::new();
        }
        self.select_by(delta)
    }

    fn select_by(&mut self, delta: isize) -> Vec<Command> {
        let n = self.rows().len();
        if n == 0 {
            return Vec::new();
        }
        let to = self.selected.saturating_add_signed(delta).min(n - 1);
        self.select(to, false)
    }

    /// Selects layer row `row`; the trainer is asked for its feature maps at once (`now`) or
    /// after the selection has rested for a tick (arrow keys held down).
    fn select(&mut self, row: usize, now: bool) -> Vec<Command> {
        if row == self.selected {
            return Vec::new();
        }
        self.selected = row;
        self.page = 0;
        self.keep_selection_visible();
        if now {
            return self.watch_selected();
        }
        self.watch_due = Some(self.ticks + 1);
        Vec::new()
    }

    fn keep_selection_visible(&mut self) {
        let visible = layout::model_rows_visible(self).max(1);
        if self.selected < self.model_offset {
            self.model_offset = self.selected;
        } else if self.selected >= self.model_offset + visible {
            self.model_offset = self.selected + 1 - visible;
        }
        let max_offset = self.rows().len().saturating_sub(visible);
        self.model_offset = self.model_offset.min(max_offset);
    }

    fn toggle_freeze(&mut self) -> Vec<Command> {
        let Some(node) = self.selected_node() else {
            return Vec::new();
        };
        let (layer, trainable, weights) =
            (node.name.clone(), node.trainable, node.param_count() > 0);
        if !weights {
            self.note(Level::Warn, format!("{layer} has no weights to freeze"));
            return Vec::new();
        }
        if !self.trainer_ready() {
            return Vec::new();
        }
        vec![Command::SetTrainable {
            layer,
            trainable: !trainable,
        }]
    }

    fn fine_tune(&mut self) -> Vec<Command> {
        let Some(layer) = self.selected_node().map(|n| n.name.clone()) else {
            return Vec::new();
        };
        self.command(
            Command::FineTuneFrom(layer.clone()),
            &format!("fine-tuning from {layer}: freezing the layers below it"),
        )
    }

    fn scale_learning_rate(&mut self, factor: f64) -> Vec<Command> {
        if !self.trainer_ready() {
            return Vec::new();
        }
        let lr = self.progress.learning_rate * factor;
        if !(lr.is_finite() && lr > 0.0) {
            return Vec::new();
        }
        self.progress.learning_rate = lr;
        vec![Command::SetLearningRate(lr)]
    }

    fn turn_page(&mut self, delta: isize) -> Vec<Command> {
        let pages = self.pages();
        self.page = self
            .page
            .saturating_add_signed(delta)
            .min(pages.saturating_sub(1));
        Vec::new()
    }

    /// Pages of channels the feature-map pane needs at the current size.
    pub fn pages(&self) -> usize {
        let Some(maps) = &self.feature_maps else {
            return 0;
        };
        let area = layout::panes(self).feature_maps.unwrap_or_default();
        let per_page = feature_maps::per_page(area, maps).max(1);
        feature_maps::channels(maps).div_ceil(per_page)
    }

    fn set_focus(&mut self, focus: Focus) -> Vec<Command> {
        self.focus = focus;
        if matches!(focus, Focus::FeatureMaps | Focus::Health | Focus::Log) {
            self.bottom = focus;
        }
        Vec::new()
    }

    fn mouse(&mut self, m: MouseEvent) -> Vec<Command> {
        let at = Position::new(m.column, m.row);
        let panes = layout::panes(self);
        let hit = |r: Option<Rect>| r.is_some_and(|r| r.contains(at));
        let pane = if hit(Some(panes.model)) {
            Some(Focus::Model)
        } else if hit(Some(panes.training)) {
            Some(Focus::Training)
        } else if hit(panes.feature_maps) {
            Some(Focus::FeatureMaps)
        } else if hit(panes.health) {
            Some(Focus::Health)
        } else if hit(panes.log) {
            Some(Focus::Log)
        } else {
            None
        };
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if let Some(p) = pane {
                    self.set_focus(p);
                }
                if pane == Some(Focus::Model)
                    && let Some(row) = layout::model_row_at(self, panes.model, at)
                {
                    return self.select(row, true);
                }
                Vec::new()
            }
            MouseEventKind::ScrollUp if pane == Some(Focus::Log) => {
                self.log_scroll = (self.log_scroll + 1).min(self.log.len().saturating_sub(1));
                Vec::new()
            }
            MouseEventKind::ScrollDown if pane == Some(Focus::Log) => {
                self.log_scroll = self.log_scroll.saturating_sub(1);
                Vec::new()
            }
            MouseEventKind::ScrollUp if pane == Some(Focus::Model) => self.select_by(-1),
            MouseEventKind::ScrollDown if pane == Some(Focus::Model) => self.select_by(1),
            _ => Vec::new(),
        }
    }

    fn trainer(&mut self, e: runtime::Event) -> Vec<Command> {
        use runtime::Event as T;
        match e {
            T::Started {
                epochs,
                batches_per_epoch,
                samples,
                epoch,
                batch,
            } => {
                let p = &mut self.progress;
                (p.epochs, p.batches, p.samples, p.epoch, p.batch) =
                    (epochs, batches_per_epoch, samples, epoch, batch);
                if epoch > 0 || batch > 0 {
                    self.note(
                        Level::Info,
                        format!("resuming at epoch {}, batch {batch}", epoch + 1),
                    );
                }
            }
            T::EpochStarted { epoch } => {
                if epoch != self.progress.epoch {
                    self.progress.batch = 0;
                }
                self.progress.epoch = epoch;
                self.progress.run_batches = 0;
                self.evaluating = None;
            }
            T::Batch {
                epoch,
                batch,
                batches,
                loss,
                accuracy,
                samples_per_s,
                learning_rate,
            } => {
                let p = &mut self.progress;
                (p.epoch, p.batch, p.batches) = (epoch, batch, batches);
                (p.loss, p.accuracy) = (Some(loss), Some(accuracy));
                p.samples_per_s = Some(samples_per_s);
                p.learning_rate = learning_rate;
                p.run_batches += 1;
                self.curves
                    .push(epoch, batch, &self.progress, loss, accuracy);
                self.alarm = None;
                if batch == batches && self.has_validation {
                    self.evaluating = Some("validating…");
                }
            }
            T::EpochEnded(m) => {
                let last = m.epoch + 1 == self.progress.epochs;
                self.evaluating = (last && self.has_test).then_some("testing…");
                self.progress.val_loss = m.val_loss;
                self.progress.val_accuracy = m.val_accuracy;
                self.curves.push_epoch(&m);
                let mut text = format!(
                    "epoch {}/{}: loss {:.4} · accuracy {:.4}",
                    m.epoch + 1,
                    self.progress.epochs,
                    m.loss,
                    m.accuracy
                );
                if let (Some(vl), Some(va)) = (m.val_loss, m.val_accuracy) {
                    text += &format!(" · val_loss {vl:.4} · val_accuracy {va:.4}");
                }
                self.note(Level::Good, text);
            }
            T::Health(h) => self.health = h,
            T::Compiling { done, total } => {
                self.compiling = (done < total).then_some((done, total));
                if done == total {
                    self.note(
                        Level::Info,
                        format!("compiled the JIT kernels of {total} layers"),
                    );
                }
            }
            T::FeatureMaps(maps) => {
                if self.view == View::Activations {
                    self.feature_maps = Some(maps);
                    self.page = self.page.min(self.pages().saturating_sub(1));
                }
            }
            // The loop computes visualisations from snapshots; they arrive as `Visual`.
            T::Snapshot(_) => {}
            T::Evaluated {
                split,
                loss,
                accuracy,
            } => {
                self.progress.test = Some((loss, accuracy));
                self.note(
                    Level::Good,
                    format!("{split}: loss {loss:.4} · accuracy {accuracy:.4}"),
                );
            }
            T::CheckpointSaved(path) => {
                self.note(Level::Info, format!("saved {}", path.display()));
                self.last_checkpoint = Some(path);
            }
            T::Paused => {
                if matches!(self.phase, Phase::Training | Phase::Ready) {
                    self.phase = Phase::Paused;
                    // After a non-finite loss the alarm line already says so.
                    if self.alarm.is_none() {
                        self.note(Level::Info, "paused");
                    }
                }
            }
            T::Resumed => {
                if matches!(self.phase, Phase::Ready | Phase::Paused) {
                    let started = self.phase == Phase::Ready;
                    self.phase = Phase::Training;
                    self.note(Level::Info, if started { "training" } else { "resumed" });
                }
            }
            T::LearningRate(lr) => {
                self.progress.learning_rate = lr;
                self.note(Level::Info, format!("learning rate {lr:.2e}"));
            }
            T::TrainableChanged {
                layer,
                trainable,
                trainable_params,
            } => {
                self.trainable_params = trainable_params;
                let changed = self.graph.as_mut().and_then(|g| {
                    let node = g.nodes.iter_mut().find(|n| n.name == layer)?;
                    let was = std::mem::replace(&mut node.trainable, trainable);
                    (was != trainable && node.param_count() > 0).then_some(())
                });
                if changed.is_some() {
                    let what = if trainable { "unfrozen" } else { "frozen" };
                    self.note(
                        Level::Info,
                        format!(
                            "{layer} {what}: {} trainable params",
                            crate::ir::thousands(trainable_params)
                        ),
                    );
                }
            }
            T::Warning(w) => self.note(Level::Warn, w),
            T::NonFinite { epoch, batch, loss } => {
                self.alarm = Some(Alarm { epoch, batch, loss });
                self.note(
                    Level::Error,
                    format!(
                        "loss is {loss} at epoch {}, batch {}: training paused; lower the learning rate (-) and press t",
                        epoch + 1,
                        batch + 1
                    ),
                );
            }
            T::Error(e) => self.note(Level::Error, e),
            T::Finished {
                stopped_early,
                test_accuracy,
                seconds,
            } => {
                self.phase = Phase::Finished;
                self.evaluating = None;
                self.progress.finished = Some(Finished {
                    stopped_early,
                    test_accuracy,
                    seconds,
                });
                let how = if stopped_early {
                    "stopped"
                } else {
                    "training finished"
                };
                self.note(
                    Level::Good,
                    format!(
                        "{how} after {}; q quits",
                        crate::headless::keras_time(seconds)
                    ),
                );
                if self.exit_when_finished && self.quit == Quit::No {
                    return self.stop_and_quit();
                }
                // Quitting stopped the run; the trainer now lingers and needs a second `Stop`.
                if self.quit == Quit::AfterTrainer {
                    return vec![Command::Stop];
                }
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests;
