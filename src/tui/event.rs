//! The dashboard's one channel: every input of the loop — keys, mouse, ticks, resizes, the
//! trainer's events, the end of model preparation — is an [`Event`] on one `mpsc` channel, fed
//! by small threads (terminal input, ticker, trainer forwarder, preparation).
//!
//! Owns the threads that feed the channel; must not touch the terminal's output or the `App`.

use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use crossterm::event::{KeyEvent, KeyEventKind, MouseEvent};

use super::app::Loaded;
use crate::ir::Graph;
use crate::runtime;
use crate::runtime::setup::{self, Overrides, Prepared, SetupError};

/// How often the ticker sends [`Event::Tick`] (drives the spinner and the debounced feature-map
/// requests, and lets the loop redraw at its pace).
pub const TICK: Duration = Duration::from_millis(100);

/// Everything the dashboard reacts to.
pub enum Event {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Tick,
    Resize(u16, u16),
    /// The model lowered (shown while the data still loads).
    Preview(Box<Graph>),
    /// Preparation ended. Handled by the loop (it starts the trainer and turns this into
    /// [`Event::Loaded`]); `App::update` ignores it.
    Prepared(Result<Box<Prepared>, PrepareFailed>),
    /// The trainer is running and waiting for `t`: what the App shows about the run.
    Loaded(Box<Loaded>),
    /// The model cannot be trained (it has no `train` section); the reason. The dashboard
    /// still shows the model.
    Untrainable(String),
    Trainer(runtime::Event),
    /// The trainer thread ended (its event channel closed).
    TrainerExited,
    /// SIGINT from outside the terminal (inside it, Ctrl-C arrives as a key).
    Interrupt,
    /// A visualisation computed from a snapshot (filters or heatmap), for the Feature maps
    /// pane.
    Visual(Box<runtime::FeatureMaps>),
    /// A visualisation could not be computed; why.
    VisualFailed(String),
}

/// Why preparation did not produce a trainer.
#[derive(Debug)]
pub enum PrepareFailed {
    Setup(SetupError),
    /// Preparation panicked (a bug); the message of the panic.
    Panicked(String),
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Key(k) => write!(f, "Key({k:?})"),
            Event::Mouse(m) => write!(f, "Mouse({m:?})"),
            Event::Tick => write!(f, "Tick"),
            Event::Resize(w, h) => write!(f, "Resize({w}, {h})"),
            Event::Preview(g) => write!(f, "Preview({})", g.name),
            Event::Prepared(Ok(_)) => write!(f, "Prepared(Ok(..))"),
            Event::Prepared(Err(e)) => write!(f, "Prepared(Err({e:?}))"),
            Event::Loaded(l) => write!(f, "Loaded({})", l.graph.name),
            Event::Untrainable(why) => write!(f, "Untrainable({why})"),
            Event::Trainer(e) => write!(f, "Trainer({e:?})"),
            Event::TrainerExited => write!(f, "TrainerExited"),
            Event::Interrupt => write!(f, "Interrupt"),
            Event::Visual(m) => write!(f, "Visual({:?}, {})", m.view, m.layer),
            Event::VisualFailed(why) => write!(f, "VisualFailed({why})"),
        }
    }
}

/// Reads the terminal's input (keys, mouse, resizes) into the channel until the receiver is
/// gone or the terminal fails. Key releases and repeats are dropped: a key acts once.
pub fn spawn_input(tx: Sender<Event>) {
    let _ = std::thread::Builder::new()
        .name("tui-input".into())
        .spawn(move || {
            loop {
                let event = match crossterm::event::read() {
                    Ok(crossterm::event::Event::Key(k)) if k.kind == KeyEventKind::Press => {
                        Event::Key(k)
                    }
                    Ok(crossterm::event::Event::Mouse(m)) => Event::Mouse(m),
                    Ok(crossterm::event::Event::Resize(w, h)) => Event::Resize(w, h),
                    Ok(_) => continue,
                    Err(_) => return,
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
}

/// Sends [`Event::Tick`] every [`TICK`] until the receiver is gone.
pub fn spawn_ticker(tx: Sender<Event>) {
    let _ = std::thread::Builder::new()
        .name("tui-ticker".into())
        .spawn(move || {
            while tx.send(Event::Tick).is_ok() {
                std::thread::sleep(TICK);
            }
        });
}

/// Forwards the trainer's events into the channel, then [`Event::TrainerExited`].
pub fn spawn_forwarder(events: Receiver<runtime::Event>, tx: Sender<Event>) {
    let _ = std::thread::Builder::new()
        .name("tui-forwarder".into())
        .spawn(move || {
            for e in events {
                if tx.send(Event::Trainer(e)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Event::TrainerExited);
        });
}

/// Prepares `model` off the UI thread: sends [`Event::Preview`] as soon as the model is lowered,
/// then [`Event::Prepared`] (a panic inside preparation arrives as
/// [`PrepareFailed::Panicked`], never as silence).
pub fn spawn_prepare(model: PathBuf, overrides: Overrides, tx: Sender<Event>) {
    let _ = std::thread::Builder::new()
        .name("tui-prepare".into())
        .spawn(move || {
            // A bad model is reported by `prepare` below, with its full context.
            if let Ok(graph) = crate::ir::load(&model) {
                let _ = tx.send(Event::Preview(Box::new(graph)));
            }
            let result = std::panic::catch_unwind(|| setup::prepare(&model, &overrides));
            let event = match result {
                Ok(Ok(prepared)) => Ok(Box::new(prepared)),
                Ok(Err(e)) => Err(PrepareFailed::Setup(e)),
                Err(payload) => Err(PrepareFailed::Panicked(panic_message(payload.as_ref()))),
            };
            let _ = tx.send(Event::Prepared(event));
        });
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
