//! The run loop, generic over ratatui's [`Backend`]: it takes events from the one channel,
//! applies them to the `App`, sends the resulting commands to the trainer, and draws at most
//! once per frame interval (10 Hz), only when something changed. It also starts the trainer
//! when preparation succeeds, and ends when the `App` says so.
//!
//! Owns the trainer's thread and command channel. Must not touch a real terminal: the caller
//! hands it a `Terminal` (crossterm in the binary, `TestBackend` in tests and benchmarks).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::Backend;

use super::app::{App, Loaded, Quit};
use super::event::{Event, PrepareFailed, spawn_forwarder};
use crate::runtime::setup::{Prepared, SetupError};
use crate::runtime::{self, Command, Outcome};

/// The shortest time between two frames: at most 10 frames a second.
pub const FRAME: Duration = Duration::from_millis(100);

/// Events applied between two frames at most, so a flood cannot starve the screen.
const MAX_EVENTS_PER_FRAME: usize = 10_000;

/// Panic messages of threads other than the UI's, kept until the loop can show them.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps the message of a panic on another thread for the loop (see `terminal`'s hook).
pub fn stash_panic(message: String) {
    if let Ok(mut p) = PANICS.lock() {
        p.push(message);
    }
}

/// Takes the stashed panic messages.
pub fn take_panics() -> Vec<String> {
    PANICS
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default()
}

/// Why the dashboard could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The model, its data, the save directory or a checkpoint is bad (exit status 2).
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("preparing the model panicked: {0}")]
    PreparePanicked(String),
    #[error("cannot drive the terminal: {0}")]
    Terminal(String),
}

/// How the dashboard ended.
#[derive(Debug)]
pub struct Exit {
    /// 130 after Ctrl-C (as the headless trainer), else 0.
    pub code: i32,
    pub outcome: Option<Outcome>,
    /// Frames drawn.
    pub frames: u64,
    pub checkpoint: Option<PathBuf>,
    pub test_accuracy: Option<f64>,
}

/// The loop and what it owns.
pub struct Runner<B: Backend> {
    terminal: Terminal<B>,
    pub app: App,
    events: Receiver<Event>,
    sender: Sender<Event>,
    commands: Option<Sender<Command>>,
    trainer: Option<JoinHandle<Outcome>>,
    interrupt: Option<Arc<AtomicBool>>,
    frame: Duration,
    frames: u64,
}

fn terminal_error(e: impl std::fmt::Display) -> TuiError {
    TuiError::Terminal(e.to_string())
}

impl<B: Backend> Runner<B> {
    /// A loop drawing `app` on `terminal`, reading `events`; `sender` feeds the same channel
    /// (the trainer's events are forwarded through it).
    pub fn new(
        terminal: Terminal<B>,
        app: App,
        events: Receiver<Event>,
        sender: Sender<Event>,
    ) -> Self {
        Runner {
            terminal,
            app,
            events,
            sender,
            commands: None,
            trainer: None,
            interrupt: None,
            frame: FRAME,
            frames: 0,
        }
    }

    /// The terminal, for inspecting a `TestBackend`'s buffer.
    pub fn terminal(&self) -> &Terminal<B> {
        &self.terminal
    }

    /// Runs until the `App` quits: draws the first frame at once, then applies events and
    /// redraws at most every [`FRAME`].
    ///
    /// # Errors
    /// A failed preparation ([`TuiError::Setup`], [`TuiError::PreparePanicked`]) or a terminal
    /// that cannot be drawn on.
    pub fn run(&mut self) -> Result<Exit, TuiError> {
        let size = self.terminal.size().map_err(terminal_error)?;
        self.app.update(Event::Resize(size.width, size.height));
        self.draw()?;
        let mut dirty = false;
        let mut next_frame = Instant::now() + self.frame;
        while self.app.quit != Quit::Now {
            let first = if dirty {
                self.events
                    .recv_timeout(next_frame.saturating_duration_since(Instant::now()))
            } else {
                self.events
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected)
            };
            match first {
                Ok(event) => {
                    self.handle(event)?;
                    dirty = true;
                    for _ in 0..MAX_EVENTS_PER_FRAME {
                        match self.events.try_recv() {
                            Ok(event) => self.handle(event)?,
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if dirty && Instant::now() >= next_frame && self.app.quit != Quit::Now {
                self.draw()?;
                dirty = false;
                next_frame = Instant::now() + self.frame;
            }
        }
        Ok(self.finish())
    }

    fn finish(&mut self) -> Exit {
        // Dropping the command channel ends a trainer that lingers after training.
        self.commands = None;
        let outcome = if self.app.trainer_alive {
            // Quitting at once (a second Ctrl-C): the trainer saves at its next batch boundary
            // if the process lives that long.
            if let Some(flag) = &self.interrupt {
                flag.store(true, Ordering::Relaxed);
            }
            None
        } else {
            self.trainer.take().and_then(|h| h.join().ok())
        };
        Exit {
            code: if self.app.interrupted { 130 } else { 0 },
            checkpoint: self.app.last_checkpoint.clone(),
            test_accuracy: self.app.progress.finished.and_then(|f| f.test_accuracy),
            outcome,
            frames: self.frames,
        }
    }

    fn draw(&mut self) -> Result<(), TuiError> {
        let app = &self.app;
        self.terminal
            .draw(|frame| super::render(frame, app))
            .map_err(terminal_error)?;
        self.frames += 1;
        Ok(())
    }

    fn send(&self, commands: Vec<Command>) {
        if let Some(tx) = &self.commands {
            for c in commands {
                let _ = tx.send(c);
            }
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), TuiError> {
        match event {
            Event::Prepared(Ok(prepared)) => self.start(*prepared),
            // A model without a `train` section is still worth looking at.
            Event::Prepared(Err(PrepareFailed::Setup(e @ SetupError::NoTrainSection { .. })))
                if self.app.graph.is_some() =>
            {
                self.app.update(Event::Untrainable(e.to_string()));
            }
            Event::Prepared(Err(PrepareFailed::Setup(e))) => return Err(TuiError::Setup(e)),
            Event::Prepared(Err(PrepareFailed::Panicked(m))) => {
                take_panics();
                return Err(TuiError::PreparePanicked(m));
            }
            Event::Trainer(runtime::Event::Snapshot(snapshot)) => {
                let view = self.app.view;
                let layer = self.app.selected_node().map(|n| n.name.clone());
                let tx = self.sender.clone();
                let _ = std::thread::Builder::new()
                    .name("tui-visual".into())
                    .spawn(move || {
                        let event = match super::visual::compute(&snapshot, view, layer.as_deref())
                        {
                            Ok(Some(maps)) => Event::Visual(Box::new(maps)),
                            Ok(None) => return,
                            Err(why) => Event::VisualFailed(why),
                        };
                        let _ = tx.send(event);
                    });
            }
            Event::TrainerExited => {
                for m in take_panics() {
                    self.app
                        .update(Event::Trainer(runtime::Event::Error(format!(
                            "the trainer panicked: {m}"
                        ))));
                }
                let commands = self.app.update(Event::TrainerExited);
                self.send(commands);
            }
            other => {
                let commands = self.app.update(other);
                self.send(commands);
            }
        }
        Ok(())
    }

    /// Starts the trainer of a prepared run, paused until `t` and lingering after training.
    fn start(&mut self, prepared: Prepared) {
        let Prepared {
            mut trainer,
            warnings,
            ..
        } = prepared;
        trainer.config.start_paused = true;
        trainer.config.linger = true;
        let loaded = Loaded::from_trainer(&trainer, warnings);
        self.interrupt = Some(trainer.interrupt.clone());
        let (tx, rx) = mpsc::channel();
        let (events, handle) = trainer.spawn(rx);
        spawn_forwarder(events, self.sender.clone());
        self.commands = Some(tx);
        self.trainer = Some(handle);
        let commands = self.app.update(Event::Loaded(Box::new(loaded)));
        self.send(commands);
    }
}
