//! The dashboard: `cnntui MODEL` in a terminal. It owns the [`App`] state and its pure
//! [`App::update`], the one [`Event`] channel (keys, mouse, ticks, resizes and the trainer's
//! events), the layout, one widget per file under `widgets/`, and the run loop, generic over
//! ratatui's [`Backend`] so tests and benchmarks drive it with a `TestBackend`.
//!
//! Data flows one way: events → `App::update` (no I/O; returns the [`Command`]s for the
//! trainer) → [`render`] (lays out only). The trainer runs on its own thread and the dashboard
//! never runs model code on the UI thread; model preparation (lowering, loading data) runs on a
//! thread of its own too, so the first frame ("preparing") is drawn at once.
//!
//! Choices written down here:
//! - Frames are drawn only when something changed, and at most every 100 ms (10 Hz); events
//!   arriving in between are all applied before the next frame.
//! - Quitting stops the trainer with [`Command::Stop`], which finishes the batch and saves a
//!   checkpoint, and waits for it; a second Ctrl-C quits at once.
//! - `--ascii` and `NO_COLOR` draw plain ASCII without colour: every cell of a finished frame
//!   is mapped to ASCII in one final pass ([`theme::Theme::finish`]), so no widget can leak a
//!   box-drawing or block character.
//! - Feature maps need 256 colours or true colour (half blocks `▀` with a foreground and a
//!   background colour); on other terminals they are drawn with ASCII shades.
//! - Model compilation progress ("kernel n of N") will arrive as trainer events when the JIT
//!   exists; until then the preparing view shows the model table as soon as it is lowered and a
//!   spinner while the data loads.
//!
//! Depends on `runtime` (events, commands, setup) and `ir` (the graph it shows); nothing
//! depends on it but the command line.

pub mod app;
pub mod event;
mod layout;
mod runner;
mod terminal;
pub mod theme;
mod visual;
mod widgets;

use std::path::Path;

use ratatui::Frame;

pub use app::{App, Focus, Loaded, Phase, Quit};
pub use event::{Event, PrepareFailed, spawn_prepare, spawn_ticker};
pub use runner::{Exit, Runner, TuiError};
pub use theme::{ColorMode, Theme};

use crate::runtime::setup::Overrides;

/// Draws the whole screen for `app`: the panes, the footer and any overlay.
pub fn render(frame: &mut Frame, app: &App) {
    widgets::render_screen(frame, app);
}

/// Runs the dashboard on the real terminal: alternate screen, raw mode and mouse capture until
/// it returns (also on a panic: the terminal is restored, then the panic message printed).
///
/// # Errors
/// [`TuiError::Setup`] when the model, its data or a checkpoint is bad (printed after the
/// terminal is restored); [`TuiError::Terminal`] when the terminal cannot be driven.
pub fn run_dashboard(model: &Path, overrides: Overrides, theme: Theme) -> Result<Exit, TuiError> {
    terminal::run(model, overrides, theme)
}
