//! What the dashboard costs training: runs the same short MNIST training headless (events to
//! the Keras-style printer, written to a sink) and under the dashboard (the real run loop at
//! 10 frames a second on a 140×45 `TestBackend`, feature maps of the first layer sampled every
//! 300 ms), interleaved so drift in the machine's load hits both alike, and compares the medians
//! of the trainer's samples/s. Not a test: timing never decides one.
//!
//! `cargo bench --bench dashboard_overhead` (`ROUNDS=9 LIMIT=6400` for a longer run).

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use cnntui::headless::Printer;
use cnntui::runtime::Event as TrainerEvent;
use cnntui::runtime::setup::{self, Overrides, Prepared};
use cnntui::tui::{App, Event, Runner, Theme, spawn_ticker};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One epoch on the first `limit` training images, without validation or test passes, so the
/// figure is training throughput alone.
fn prepared(limit: usize, save: &Path) -> Prepared {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mnist.ron");
    let overrides = Overrides {
        epochs: Some(1),
        limit: Some(limit),
        save: Some(save.to_path_buf()),
        ..Overrides::default()
    };
    let mut p = setup::prepare(&model, &overrides).expect("models/mnist.ron prepares");
    p.trainer.data.validation = None;
    p.trainer.data.test = None;
    p
}

fn headless(limit: usize, save: &Path) -> f64 {
    let p = prepared(limit, save);
    let (_commands, rx) = mpsc::channel();
    let (events, handle) = p.trainer.spawn(rx);
    let mut printer = Printer::new(std::io::sink(), false);
    let mut rate = 0.0;
    for e in events {
        if let TrainerEvent::Batch { samples_per_s, .. } = e {
            rate = samples_per_s;
        }
        let _ = printer.event(&e);
    }
    let _ = handle.join();
    rate
}

fn dashboard(limit: usize, save: &Path) -> (f64, u64) {
    let (tx, rx) = mpsc::channel();
    let mut app = App::new("models/mnist.ron", Theme::truecolor());
    app.autostart = true;
    app.exit_when_finished = true;
    tx.send(Event::Prepared(Ok(Box::new(prepared(limit, save)))))
        .expect("the channel is open");
    spawn_ticker(tx.clone());
    let terminal = Terminal::new(TestBackend::new(140, 45)).expect("test terminal");
    let mut runner = Runner::new(terminal, app, rx, tx);
    let exit = runner.run().expect("the dashboard runs");
    (
        runner.app.progress.samples_per_s.unwrap_or(0.0),
        exit.frames,
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selecting nothing here skips the run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"dashboard_overhead".contains(&a))
    {
        return;
    }
    let rounds = env("ROUNDS", 5).max(1);
    let limit = env("LIMIT", 4096);
    let save: PathBuf = std::env::temp_dir().join(format!("cnntui-bench-{}", std::process::id()));
    let (mut plain, mut dash) = (Vec::new(), Vec::new());
    let _ = headless(limit / 4, &save); // warm caches and the thread pool
    for round in 0..rounds {
        // Alternate which goes first, so neither always follows the other.
        let (h, (d, frames)) = if round % 2 == 0 {
            let h = headless(limit, &save);
            (h, dashboard(limit, &save))
        } else {
            let d = dashboard(limit, &save);
            (headless(limit, &save), d)
        };
        println!(
            "round {}: headless {h:.0} samples/s, dashboard {d:.0} samples/s ({frames} frames)",
            round + 1
        );
        plain.push(h);
        dash.push(d);
    }
    let (h, d) = (median(&mut plain), median(&mut dash));
    println!(
        "median of {rounds}: headless {h:.0} samples/s, dashboard {d:.0} samples/s, overhead {:.1}%",
        (h - d) / h * 100.0
    );
    let _ = std::fs::remove_dir_all(&save);
}
