//! The real terminal: raw mode, the alternate screen and mouse capture for the dashboard's
//! lifetime, restored however it ends — normal return, error, or panic (the hook restores the
//! terminal first, then prints the panic). Also wires the input, ticker and preparation threads
//! and SIGINT into the channel, and prints the run's last lines after the restore.
//!
//! The only module that writes terminal control sequences.

use std::io::{self, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread::ThreadId;

use crossterm::cursor;
use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use super::app::App;
use super::event::{Event, spawn_input, spawn_prepare, spawn_ticker};
use super::runner::{Exit, Runner, TuiError, stash_panic, take_panics};
use super::theme::Theme;
use crate::runtime::setup::Overrides;

/// The thread that owns the screen: its panics restore the terminal before printing.
static UI_THREAD: OnceLock<ThreadId> = OnceLock::new();

/// Leaves raw mode and the alternate screen, releases the mouse, shows the cursor. Safe to
/// call more than once.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        cursor::Show
    );
}

/// Restores the terminal when dropped.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

fn enter() -> io::Result<Guard> {
    enable_raw_mode()?;
    let guard = Guard;
    execute!(
        io::stdout(),
        EnterAlternateScreen,
        EnableMouseCapture,
        cursor::Hide
    )?;
    Ok(guard)
}

/// A panic on the UI thread restores the terminal, then prints as usual. A panic on another
/// thread (the trainer, preparation) must not print into the dashboard: its message is kept
/// for the Log pane and printed after the terminal is restored.
fn install_panic_hook() {
    let _ = UI_THREAD.set(std::thread::current().id());
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if UI_THREAD.get() == Some(&std::thread::current().id()) {
            restore();
            default(info);
        } else {
            let message = super::event::panic_message(info.payload());
            let place = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            stash_panic(format!("{message}{place}"));
        }
    }));
}

/// Runs the dashboard on stdout's terminal (see [`super::run_dashboard`]).
pub fn run(model: &Path, overrides: Overrides, theme: Theme) -> Result<Exit, TuiError> {
    let (tx, rx) = mpsc::channel();
    // Raw mode turns Ctrl-C into a key; this catches SIGINT sent from elsewhere.
    let sigint = tx.clone();
    let _ = ctrlc::set_handler(move || {
        let _ = sigint.send(Event::Interrupt);
    });
    install_panic_hook();
    let guard = enter().map_err(|e| TuiError::Terminal(e.to_string()))?;
    let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))
        .map_err(|e| TuiError::Terminal(e.to_string()))?;
    spawn_input(tx.clone());
    spawn_ticker(tx.clone());
    spawn_prepare(model.to_path_buf(), overrides, tx.clone());
    let app = App::new(model.display().to_string(), theme);
    let mut runner = Runner::new(terminal, app, rx, tx);
    let result = runner.run();
    drop(runner);
    drop(guard);
    let mut err = io::stderr();
    for m in take_panics() {
        let _ = writeln!(err, "error: a thread panicked: {m}");
    }
    if let Ok(exit) = &result {
        if let Some(path) = &exit.checkpoint {
            println!("Saved {}", path.display());
        }
        if let Some(acc) = exit.test_accuracy {
            println!("test_accuracy: {acc:.4}");
        }
    }
    result
}
