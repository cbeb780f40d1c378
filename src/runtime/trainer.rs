//! The trainer: epochs of seeded mini-batches on its own thread, sending [`Event`]s and obeying
//! [`Command`]s at batch boundaries; validation every epoch, checkpoints and the history beside
//! them, exact resumption, and a final evaluation on the test split. Samples arrive through the
//! data pipeline ([`crate::data::pipeline`]): decoded, augmented and rescaled on worker threads
//! ahead of the batch that needs them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::Instant;

use super::checkpoint::{self, TrainState};
use super::{
    Command, EpochMetrics, Event, FeatureMaps, History, LayerHealth, Loss, Mode, Optimizer,
    ParamStore, Plan, Rng, Session,
};
use crate::data::Samples;
use crate::data::augment::Augment;
use crate::data::pipeline::{Feed, Loader};
use crate::ir::Graph;

/// The samples a run trains, validates and tests on, and how training samples are augmented.
#[derive(Clone, Debug)]
pub struct TrainData {
    pub train: Arc<Samples>,
    pub validation: Option<Arc<Samples>>,
    pub test: Option<Arc<Samples>>,
    /// Random augmentation of each training sample, drawn per (seed, epoch, sample).
    pub augment: Option<Augment>,
}

/// Settings of one run (the model file's `train` section, overridden by flags).
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Where checkpoints and `history.json` go.
    pub save_dir: PathBuf,
    /// sha256 of the model file, stored in checkpoints.
    pub model_hash: String,
    /// What runs the convolutions and dense layers.
    pub backend: super::Backend,
    /// Wait for `Command::Resume` before the first batch (the dashboard's `t`).
    pub start_paused: bool,
    /// After training ends, keep answering `Watch` and `Evaluate` until the command channel
    /// closes (the dashboard stays open with the final state).
    pub linger: bool,
}

/// How often feature maps of the watched layer are sampled during training.
const FEATURE_MAP_EVERY: std::time::Duration = std::time::Duration::from_millis(300);

/// How often (in batches) health statistics are computed and sent.
const HEALTH_EVERY: usize = 25;

/// The name of the checkpoint file inside the save directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Everything a training run owns. Build it, then [`Trainer::run`] it (usually on its own
/// thread, see [`Trainer::spawn`]).
pub struct Trainer {
    pub graph: Graph,
    pub params: ParamStore,
    pub optimizer: Optimizer,
    pub loss: Loss,
    pub data: TrainData,
    pub config: TrainConfig,
    pub history: History,
    /// Set by Ctrl-C: finish the batch, save, stop.
    pub interrupt: Arc<AtomicBool>,
    state: TrainState,
    /// The layer whose feature maps are sampled, and when they were last sent.
    watched: Option<(usize, Instant)>,
    /// Augmented versions drawn for the dashboard so far (each snapshot draws new ones).
    augment_draws: usize,
    shuffle_rng: Rng,
    dropout_rng: Rng,
    plan: Plan,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub stopped_early: bool,
    pub test_accuracy: Option<f64>,
    pub history: History,
    pub checkpoint: PathBuf,
}

impl Trainer {
    pub fn new(
        graph: Graph,
        params: ParamStore,
        optimizer: Optimizer,
        loss: Loss,
        data: TrainData,
        config: TrainConfig,
    ) -> Self {
        let plan = Plan::new(&graph, &[]);
        let state = TrainState {
            learning_rate: optimizer.learning_rate,
            optimizer: optimizer.name().to_string(),
            model_hash: config.model_hash.clone(),
            ..TrainState::default()
        };
        Trainer {
            shuffle_rng: Rng::derived(config.seed, 2),
            dropout_rng: Rng::derived(config.seed, 3),
            graph,
            params,
            optimizer,
            loss,
            data,
            config,
            history: History::default(),
            interrupt: Arc::new(AtomicBool::new(false)),
            state,
            watched: None,
            augment_draws: 0,
            plan,
        }
    }

    /// Records the preprocessing imported weights came with (JSON), for the checkpoints.
    pub fn record_preprocessing(&mut self, json: Option<String>) {
        self.state.preprocessing = json;
    }

    /// Restores weights, optimizer state, trainable set, learning rate, random generators and
    /// position from a checkpoint written by this trainer.
    ///
    /// # Errors
    /// A message naming the tensor and both shapes when the checkpoint does not fit the model.
    pub fn resume(
        &mut self,
        ckpt: &checkpoint::Checkpoint,
    ) -> Result<Vec<String>, checkpoint::CheckpointError> {
        ckpt.apply(&self.graph, &mut self.params, None)?;
        ckpt.apply_optimizer(&self.graph, &mut self.optimizer);
        let mut warnings = Vec::new();
        if let Some(state) = &ckpt.state {
            if state.model_hash != self.config.model_hash {
                warnings.push(format!(
                    "{}: the model file changed since this checkpoint was written",
                    ckpt.path.display()
                ));
            }
            self.optimizer.learning_rate = state.learning_rate;
            self.optimizer.step = state.optimizer_step;
            for node in &mut self.graph.nodes[1..] {
                node.trainable = state.trainable.contains(&node.name);
            }
            self.plan = Plan::new(&self.graph, &[]);
            self.shuffle_rng = Rng::from_state(state.epoch_rng);
            self.dropout_rng = Rng::from_state(state.dropout_rng);
            self.state = state.clone();
        }
        if let Some(dir) = ckpt.path.parent() {
            self.history =
                History::read(&dir.join(super::history::HISTORY_FILE)).unwrap_or_default();
            self.history.truncate(self.state.epoch);
        }
        Ok(warnings)
    }

    /// Runs the trainer on a new thread. Events arrive on the returned receiver; commands are
    /// read from `commands`.
    pub fn spawn(
        mut self,
        commands: Receiver<Command>,
    ) -> (Receiver<Event>, std::thread::JoinHandle<Outcome>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("trainer".into())
            .spawn(move || self.run(&tx, &commands))
            .unwrap_or_else(|e| panic!("cannot start the trainer thread: {e}"));
        (rx, handle)
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.config.save_dir.join(CHECKPOINT_FILE)
    }

    fn save(&mut self, events: &Sender<Event>) {
        self.state.learning_rate = self.optimizer.learning_rate;
        self.state.optimizer_step = self.optimizer.step;
        self.state.trainable = self.graph.nodes[1..]
            .iter()
            .filter(|n| n.trainable)
            .map(|n| n.name.clone())
            .collect();
        self.state.dropout_rng = self.dropout_rng.state();
        let path = self.checkpoint_path();
        let result = checkpoint::save(
            &path,
            &self.graph,
            &self.params,
            &self.optimizer,
            &self.state,
        )
        .map_err(|e| e.to_string())
        .and_then(|()| {
            self.history
                .write(&self.config.save_dir.join(super::history::HISTORY_FILE))
                .map_err(|e| e.to_string())
        })
        .and_then(|()| {
            if self.history.epochs() == 0 {
                return Ok(());
            }
            let plot = self.config.save_dir.join(super::history::PLOT_FILE);
            crate::viz::plot::write_history_plot(&self.history, &plot).map_err(|e| e.to_string())
        });
        let _ = events.send(match result {
            Ok(()) => Event::CheckpointSaved(path),
            Err(e) => Event::Error(e),
        });
    }

    /// Evaluates on a dataset in inference mode: (mean loss, accuracy).
    pub fn evaluate(&self, session: &mut Session, data: &Arc<Samples>) -> (f64, f64) {
        evaluate(
            &self.graph,
            &self.params,
            &self.loss,
            session,
            data,
            self.config.batch_size.max(256),
        )
    }

    /// Obeys one command; returns true when training must stop.
    fn obey(
        &mut self,
        cmd: Command,
        events: &Sender<Event>,
        paused: &mut bool,
        eval: &mut Session,
    ) -> bool {
        match cmd {
            Command::Pause => {
                *paused = true;
                let _ = events.send(Event::Paused);
            }
            Command::Resume => {
                *paused = false;
                let _ = events.send(Event::Resumed);
            }
            Command::Stop => return true,
            Command::Save => self.save(events),
            Command::Evaluate => {
                if let Some(test) = self.data.test.clone() {
                    let (loss, accuracy) = self.evaluate(eval, &test);
                    let _ = events.send(Event::Evaluated {
                        split: "test",
                        loss,
                        accuracy,
                    });
                }
            }
            Command::SetLearningRate(lr) => {
                self.optimizer.learning_rate = lr;
                let _ = events.send(Event::LearningRate(lr));
            }
            Command::Watch(layer) => match self.graph.node_by_name(&layer) {
                Some(v) => {
                    self.watched = Some((v, Instant::now()));
                    self.send_feature_maps(v, events);
                }
                None => {
                    let _ = events.send(Event::Warning(format!("no layer named `{layer}`")));
                }
            },
            Command::Snapshot => {
                let (data, i) = self.sample();
                if !data.is_empty() {
                    let mut input = vec![0.0; data.image_len()];
                    if let Err(why) =
                        Loader::new(data.clone(), None, 0).sample_into(i, None, &mut input)
                    {
                        let _ = events.send(Event::Warning(why));
                    }
                    let label = data.labels[i];
                    let input_shape = data.shape.to_vec();
                    let (train_image, augmented) = self.augmented_versions(events);
                    let snapshot = super::Snapshot {
                        graph: self.graph.clone(),
                        params: self.params.clone(),
                        backend: self.config.backend,
                        input_shape,
                        input,
                        label,
                        train_image,
                        augmented,
                    };
                    let _ = events.send(Event::Snapshot(std::sync::Arc::new(snapshot)));
                }
            }
            Command::FineTuneFrom(layer) => {
                if self.graph.fine_tune_from(&layer) {
                    self.plan = Plan::new(&self.graph, &[]);
                    for node in &self.graph.nodes[1..] {
                        let _ = events.send(Event::TrainableChanged {
                            layer: node.name.clone(),
                            trainable: node.trainable,
                            trainable_params: self.graph.trainable_params(),
                        });
                    }
                } else {
                    let _ = events.send(Event::Warning(format!("no layer named `{layer}`")));
                }
            }
            Command::SetTrainable { layer, trainable } => match self.graph.node_by_name(&layer) {
                Some(v) => {
                    self.graph.nodes[v].trainable = trainable;
                    self.plan = Plan::new(&self.graph, &[]);
                    let trainable_params = self.graph.trainable_params();
                    let _ = events.send(Event::TrainableChanged {
                        layer,
                        trainable,
                        trainable_params,
                    });
                }
                None => {
                    let _ = events.send(Event::Warning(format!("no layer named `{layer}`")));
                }
            },
        }
        false
    }

    /// The first training image and eight augmented versions of it, new draws each call.
    fn augmented_versions(&mut self, events: &Sender<Event>) -> (Vec<f32>, Vec<Vec<f32>>) {
        const VERSIONS: usize = 8;
        let train = self.data.train.clone();
        if train.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let mut plain = vec![0.0; train.image_len()];
        if let Err(why) = Loader::new(train.clone(), None, 0).sample_into(0, None, &mut plain) {
            let _ = events.send(Event::Warning(why));
        }
        let Some(augment) = self.data.augment.clone() else {
            return (plain, Vec::new());
        };
        let loader = Loader::new(train, Some(augment), self.config.seed);
        let first = self.augment_draws;
        self.augment_draws += VERSIONS;
        let versions = (first..first + VERSIONS)
            .map(|draw| {
                let mut out = vec![0.0; plain.len()];
                // Draws past the run's epochs, so they differ from what training saw.
                let _ = loader.sample_into(0, Some(usize::MAX / 2 - draw), &mut out);
                out
            })
            .collect();
        (plain, versions)
    }

    /// The sample image: the first test image, or the first training image.
    fn sample(&self) -> (&Arc<Samples>, usize) {
        match &self.data.test {
            Some(t) if !t.is_empty() => (t, 0),
            _ => (&self.data.train, 0),
        }
    }

    /// Runs the sample image through the model and sends node `v`'s activations.
    fn send_feature_maps(&mut self, v: usize, events: &Sender<Event>) {
        let (data, i) = self.sample();
        if data.is_empty() {
            return;
        }
        let mut input = vec![0.0; data.image_len()];
        if let Err(why) = Loader::new(data.clone(), None, 0).sample_into(i, None, &mut input) {
            let _ = events.send(Event::Warning(why));
        }
        let label = data.labels[i];
        let input_shape = data.shape.to_vec();
        // The reference kernels materialise every layer's output, fused or not.
        let mut session = Session::new(&self.graph, self.loss.link);
        session.forward(
            &self.graph,
            &self.params,
            &input,
            1,
            Mode::Infer,
            &mut Rng::new(0),
        );
        let maps = FeatureMaps {
            view: super::View::Activations,
            layer: self.graph.nodes[v].name.clone(),
            shape: self.graph.nodes[v].shape.0.clone(),
            values: session.activation(v).to_vec(),
            input_shape,
            input,
            label,
        };
        let _ = events.send(Event::FeatureMaps(Box::new(maps)));
        self.watched = Some((v, Instant::now()));
    }

    /// Sends the watched layer's feature maps when they are due.
    fn refresh_feature_maps(&mut self, events: &Sender<Event>) {
        if let Some((v, at)) = self.watched
            && at.elapsed() >= FEATURE_MAP_EVERY
        {
            self.send_feature_maps(v, events);
        }
    }

    /// Reads pending commands (blocking while paused); returns true when training must stop.
    fn poll(
        &mut self,
        commands: &Receiver<Command>,
        events: &Sender<Event>,
        paused: &mut bool,
        eval: &mut Session,
    ) -> bool {
        loop {
            if self.interrupt.load(Ordering::Relaxed) {
                return true;
            }
            let cmd = if *paused {
                match commands.recv_timeout(std::time::Duration::from_millis(100)) {
                    Ok(c) => c,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return true,
                }
            } else {
                match commands.try_recv() {
                    Ok(c) => c,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                        self.refresh_feature_maps(events);
                        return false;
                    }
                }
            };
            if self.obey(cmd, events, paused, eval) {
                return true;
            }
        }
    }

    /// Trains to the end (or until stopped), then tests. Never panics on bad data: problems
    /// are sent as events.
    pub fn run(&mut self, events: &Sender<Event>, commands: &Receiver<Command>) -> Outcome {
        let started = Instant::now();
        let n = self.data.train.len();
        let bs = self.config.batch_size.min(n.max(1));
        let batches = n.div_ceil(bs);
        let elems = self.data.train.image_len();
        let loader = Arc::new(Loader::new(
            self.data.train.clone(),
            self.data.augment.clone(),
            self.config.seed,
        ));
        let threads = loader.suggested_threads();
        let mut session =
            Session::new(&self.graph, self.loss.link).with_backend(self.config.backend);
        if self.config.backend == super::Backend::Jit
            && let Err(why) = self.optimizer.use_jit(&self.graph)
        {
            let _ = events.send(Event::Warning(format!(
                "the optimizer runs on the reference kernels: {why}"
            )));
        }
        let mut eval = Session::new(&self.graph, self.loss.link).with_backend(self.config.backend);
        let mut grad = Vec::new();
        let mut paused = self.config.start_paused;
        let mut stopped = false;
        let mut unsaved = false;
        let mut samples_per_s = 0.0;
        // Compile before the first batch, with progress, and say which layers the JIT left to
        // the reference kernels.
        session.precompile(&self.graph, bs, Mode::Train, &mut |done, total| {
            let _ = events.send(Event::Compiling { done, total });
        });
        for w in session.take_warnings() {
            let _ = events.send(Event::Warning(w));
        }
        let _ = events.send(Event::Started {
            epochs: self.config.epochs,
            batches_per_epoch: batches,
            samples: n,
            epoch: self.state.epoch,
            batch: self.state.batch,
        });
        'epochs: while self.state.epoch < self.config.epochs {
            let epoch = self.state.epoch;
            if self.state.batch == 0 {
                self.state.epoch_rng = self.shuffle_rng.state();
                self.state.epoch_loss_sum = 0.0;
                self.state.epoch_correct = 0;
                self.state.epoch_seen = 0;
            }
            let mut rng = Rng::from_state(self.state.epoch_rng);
            let mut order: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut order);
            self.shuffle_rng = rng;
            let _ = events.send(Event::EpochStarted { epoch });
            let mut feed = Feed::new(
                loader.clone(),
                order,
                bs,
                self.state.batch,
                Some(epoch),
                threads,
            );
            // A batch whose loss was not finite is kept, to run again after the pause.
            let mut pending = None;
            while self.state.batch < batches {
                if self.poll(commands, events, &mut paused, &mut eval) {
                    stopped = true;
                    break 'epochs;
                }
                let batch_start = Instant::now();
                let b = self.state.batch;
                let Some(batch) = pending.take().or_else(|| feed.next()) else {
                    break;
                };
                for problem in &batch.problems {
                    let _ = events.send(Event::Warning(format!(
                        "{problem}; a zero image was used instead"
                    )));
                }
                let m = batch.labels.len();
                let labels = &batch.labels;
                session.forward(
                    &self.graph,
                    &self.params,
                    &batch.x[..m * elems],
                    m,
                    Mode::Train,
                    &mut self.dropout_rng,
                );
                let bl = self.loss.evaluate(
                    session.output(&self.graph),
                    session.logits(),
                    &labels[..m],
                    Some(&mut grad),
                );
                if !bl.loss_sum.is_finite() {
                    let _ = events.send(Event::NonFinite {
                        epoch,
                        batch: b,
                        loss: bl.loss_sum,
                    });
                    paused = true;
                    let _ = events.send(Event::Paused);
                    pending = Some(batch);
                    continue;
                }
                session.backward(&self.graph, &self.params, &self.plan, &grad);
                session.update_moving_statistics(&self.graph, &mut self.params);
                let health = (b.is_multiple_of(HEALTH_EVERY) || b + 1 == batches)
                    .then(|| self.params.clone());
                self.optimizer.apply(
                    &self.graph,
                    &mut self.params,
                    &session.param_grads,
                    &self.plan.weight_grad,
                );
                if let Some(before) = health {
                    let _ = events.send(Event::Health(self.health(&before, &session)));
                }
                self.state.epoch_loss_sum += bl.loss_sum;
                self.state.epoch_correct += bl.correct;
                self.state.epoch_seen += m;
                self.state.batch += 1;
                unsaved = true;
                let seen = self.state.epoch_seen as f64;
                // Throughput of the computation itself (pauses excluded), smoothed.
                let rate = m as f64 / batch_start.elapsed().as_secs_f64().max(1e-9);
                samples_per_s = if samples_per_s == 0.0 {
                    rate
                } else {
                    0.9 * samples_per_s + 0.1 * rate
                };
                let _ = events.send(Event::Batch {
                    epoch,
                    batch: self.state.batch,
                    batches,
                    loss: self.state.epoch_loss_sum / seen,
                    accuracy: self.state.epoch_correct as f64 / seen,
                    samples_per_s,
                    learning_rate: self.optimizer.learning_rate,
                });
            }
            let seen = self.state.epoch_seen.max(1) as f64;
            let (val_loss, val_accuracy) = match self.data.validation.clone() {
                Some(val) => {
                    let (l, a) = self.evaluate(&mut eval, &val);
                    (Some(l), Some(a))
                }
                None => (None, None),
            };
            let metrics = EpochMetrics {
                epoch,
                loss: self.state.epoch_loss_sum / seen,
                accuracy: self.state.epoch_correct as f64 / seen,
                val_loss,
                val_accuracy,
                learning_rate: self.optimizer.learning_rate,
            };
            self.history.push(&metrics);
            let _ = events.send(Event::EpochEnded(metrics));
            self.state.epoch += 1;
            self.state.batch = 0;
            self.save(events);
            unsaved = false;
        }
        // Stopping before any batch ran since the last save must not overwrite a checkpoint
        // (opening the dashboard and quitting is not a reason to touch saved work).
        if stopped && unsaved {
            self.save(events);
        }
        let test_accuracy = match (&self.data.test, stopped) {
            (Some(test), false) => {
                let test = test.clone();
                let (loss, accuracy) = self.evaluate(&mut eval, &test);
                let _ = events.send(Event::Evaluated {
                    split: "test",
                    loss,
                    accuracy,
                });
                Some(accuracy)
            }
            _ => None,
        };
        let seconds = started.elapsed().as_secs_f64();
        let _ = events.send(Event::Finished {
            stopped_early: stopped,
            test_accuracy,
            seconds,
        });
        if self.config.linger && !self.interrupt.load(Ordering::Relaxed) {
            // Until the consumer hangs up: `poll` returns true on disconnect or `Stop`; there
            // is nothing left to resume, so it stays paused (blocking) whatever it is told.
            loop {
                let mut paused = true;
                if self.poll(commands, events, &mut paused, &mut eval) {
                    break;
                }
            }
        }
        Outcome {
            stopped_early: stopped,
            test_accuracy,
            history: self.history.clone(),
            checkpoint: self.checkpoint_path(),
        }
    }

    fn health(&self, before: &ParamStore, session: &Session) -> Vec<LayerHealth> {
        self.graph
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| {
                node.params
                    .iter()
                    .any(|p| p.kind == crate::ir::ParamKind::Weight)
            })
            .map(|(v, node)| {
                let weights = |store: &ParamStore| -> Vec<f32> {
                    node.params
                        .iter()
                        .zip(&store.tensors[v])
                        .filter(|(p, _)| p.kind == crate::ir::ParamKind::Weight)
                        .flat_map(|(_, t)| t.iter().copied())
                        .collect()
                };
                let (old, new, grad) = (
                    weights(before),
                    weights(&self.params),
                    weights(&session.param_grads),
                );
                let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
                let delta: f32 = old
                    .iter()
                    .zip(&new)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt();
                LayerHealth {
                    layer: node.name.clone(),
                    grad_norm: norm(&grad),
                    update_ratio: delta / norm(&old).max(1e-12),
                    dead_fraction: session.dead_fraction[v],
                    trainable: node.trainable,
                }
            })
            .collect()
    }
}

/// Evaluates `graph` on `data` in inference mode, in batches: (mean loss, accuracy).
pub fn evaluate(
    graph: &Graph,
    params: &ParamStore,
    loss: &Loss,
    session: &mut Session,
    data: &Arc<Samples>,
    batch: usize,
) -> (f64, f64) {
    let mut rng = Rng::new(0);
    let (mut loss_sum, mut correct) = (0.0, 0usize);
    let loader = Arc::new(Loader::new(data.clone(), None, 0));
    let threads = loader.suggested_threads();
    let order = (0..data.len()).collect();
    // A file that stopped decoding since setup counts as a zero image here; training reports it.
    for b in Feed::new(loader, order, batch.max(1), 0, None, threads) {
        let m = b.labels.len();
        session.forward(graph, params, &b.x, m, Mode::Infer, &mut rng);
        let bl = loss.evaluate(session.output(graph), session.logits(), &b.labels, None);
        loss_sum += bl.loss_sum;
        correct += bl.correct;
    }
    let count = data.len().max(1) as f64;
    (loss_sum / count, correct as f64 / count)
}

/// Checks that `dir` can hold checkpoints (creating it), before any training starts.
///
/// # Errors
/// A message naming the directory and the reason.
pub fn check_writable(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "{}: cannot create the save directory: {e}; pass a writable `--save DIR`",
            dir.display()
        )
    })?;
    let probe = dir.join(format!(".cnntui-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        format!(
            "{}: the save directory is not writable: {e}; pass a writable `--save DIR`",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
