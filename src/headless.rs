//! The headless printer: the first consumer of the trainer's [`Event`]s. It prints Keras
//! `fit`-style progress (`Epoch 1/5`, step/total, a bar, ETA, time per step, loss and accuracy;
//! `val_loss` and `val_accuracy` at the end of each epoch). On a terminal the progress line is
//! redrawn in place; otherwise it prints plain lines, without control codes, about every tenth
//! of an epoch. Its last line is `test_accuracy: 0.XXXX`.

use std::io::Write;
use std::time::Instant;

use crate::runtime::{Command, Event};

/// Keras's compact duration: `7s`, `1:05`, `1:02:03`.
pub fn keras_time(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else if s >= 60 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!("{}{}", "━".repeat(filled), " ".repeat(WIDTH - filled))
}

/// Prints events as they come; `tty` chooses in-place redrawing.
pub struct Printer<W: Write> {
    out: W,
    tty: bool,
    epochs: usize,
    epoch_start: Instant,
    first_batch_at: Option<(Instant, usize)>,
    last_plain: usize,
    last_line: String,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, tty: bool) -> Self {
        Printer {
            out,
            tty,
            epochs: 0,
            epoch_start: Instant::now(),
            first_batch_at: None,
            last_plain: 0,
            last_line: String::new(),
        }
    }

    /// Prints one event; returns a command to send back, if any (a non-finite loss stops a
    /// headless run, since nobody is there to resume it).
    pub fn event(&mut self, event: &Event) -> std::io::Result<Option<Command>> {
        match event {
            Event::Started {
                epochs,
                samples,
                epoch,
                batch,
                ..
            } => {
                self.epochs = *epochs;
                if *epoch > 0 || *batch > 0 {
                    writeln!(
                        self.out,
                        "Resuming at epoch {}, batch {} ({samples} training samples)",
                        epoch + 1,
                        batch
                    )?;
                }
            }
            Event::EpochStarted { epoch } => {
                writeln!(self.out, "Epoch {}/{}", epoch + 1, self.epochs)?;
                self.epoch_start = Instant::now();
                self.first_batch_at = None;
                self.last_plain = 0;
            }
            Event::Batch {
                batch,
                batches,
                loss,
                accuracy,
                ..
            } => {
                let now = Instant::now();
                let (t0, b0) = *self
                    .first_batch_at
                    .get_or_insert((self.epoch_start, batch - 1));
                let per_step = now.duration_since(t0).as_secs_f64() / (batch - b0).max(1) as f64;
                let eta = per_step * (batches - batch) as f64;
                let line = format!(
                    "{batch:>w$}/{batches} {} {} {:.0}ms/step - accuracy: {accuracy:.4} - loss: {loss:.4}",
                    bar(*batch, *batches),
                    keras_time(eta),
                    per_step * 1e3,
                    w = batches.to_string().len()
                );
                if self.tty {
                    write!(self.out, "\r{line}\x1b[K")?;
                    self.out.flush()?;
                } else if *batch * 10 / batches > self.last_plain && *batch < *batches {
                    self.last_plain = *batch * 10 / batches;
                    writeln!(self.out, "{line}")?;
                }
                self.last_line = line;
            }
            Event::EpochEnded(m) => {
                let secs = self.epoch_start.elapsed().as_secs_f64();
                let mut line = self.last_line.clone();
                if let Some(eta_at) = line.find(" - accuracy") {
                    // Replace the ETA with the epoch's total time, as Keras does.
                    let head: Vec<&str> = line[..eta_at].rsplitn(3, ' ').collect();
                    if head.len() == 3 {
                        line = format!(
                            "{} {} {}{}",
                            head[2],
                            keras_time(secs),
                            head[0],
                            &line[eta_at..]
                        );
                    }
                }
                if let (Some(vl), Some(va)) = (m.val_loss, m.val_accuracy) {
                    line += &format!(" - val_accuracy: {va:.4} - val_loss: {vl:.4}");
                }
                if self.tty {
                    writeln!(self.out, "\r{line}\x1b[K")?;
                } else {
                    writeln!(self.out, "{line}")?;
                }
            }
            Event::Health(_)
            | Event::Compiling { .. }
            | Event::FeatureMaps(_)
            | Event::Snapshot(_)
            | Event::Paused
            | Event::Resumed => {}
            Event::Evaluated { split, loss, .. } => writeln!(self.out, "{split}_loss: {loss:.4}")?,
            Event::CheckpointSaved(path) => writeln!(self.out, "Saved {}", path.display())?,
            Event::LearningRate(lr) => writeln!(self.out, "learning_rate: {lr}")?,
            Event::TrainableChanged {
                layer,
                trainable,
                trainable_params,
            } => {
                writeln!(
                    self.out,
                    "{layer} is now {} ({trainable_params} trainable params)",
                    if *trainable { "trainable" } else { "frozen" }
                )?;
            }
            Event::Warning(w) => eprintln!("warning: {w}"),
            Event::Error(e) => eprintln!("error: {e}"),
            Event::NonFinite { epoch, batch, loss } => {
                eprintln!(
                    "error: the loss became {loss} at epoch {}, batch {batch}; stopping (try a lower learning rate)",
                    epoch + 1
                );
                return Ok(Some(Command::Stop));
            }
            Event::Finished {
                stopped_early,
                test_accuracy,
                seconds,
            } => {
                if *stopped_early {
                    writeln!(
                        self.out,
                        "Stopped early after {}; the checkpoint holds the state to `--resume` from",
                        keras_time(*seconds)
                    )?;
                } else {
                    writeln!(
                        self.out,
                        "Trained in {} ({seconds:.1} s)",
                        keras_time(*seconds)
                    )?;
                }
                if let Some(acc) = test_accuracy {
                    writeln!(self.out, "test_accuracy: {acc:.4}")?;
                }
            }
        }
        self.out.flush()?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::EpochMetrics;

    #[test]
    fn keras_time_matches_keras_formats() {
        assert_eq!(keras_time(7.4), "7s");
        assert_eq!(keras_time(65.0), "1:05");
        assert_eq!(keras_time(3723.0), "1:02:03");
    }

    #[test]
    fn plain_output_has_no_control_codes_and_ends_with_test_accuracy() {
        let mut buf = Vec::new();
        let mut p = Printer::new(&mut buf, false);
        p.event(&Event::Started {
            epochs: 1,
            batches_per_epoch: 20,
            samples: 100,
            epoch: 0,
            batch: 0,
        })
        .unwrap();
        p.event(&Event::EpochStarted { epoch: 0 }).unwrap();
        for b in 1..=20 {
            p.event(&Event::Batch {
                epoch: 0,
                batch: b,
                batches: 20,
                loss: 0.5,
                accuracy: 0.9,
                samples_per_s: 1.0,
                learning_rate: 1e-3,
            })
            .unwrap();
        }
        let m = EpochMetrics {
            epoch: 0,
            loss: 0.5,
            accuracy: 0.9,
            val_loss: Some(0.4),
            val_accuracy: Some(0.95),
            learning_rate: 1e-3,
        };
        p.event(&Event::EpochEnded(m)).unwrap();
        p.event(&Event::Finished {
            stopped_early: false,
            test_accuracy: Some(0.98765),
            seconds: 3.0,
        })
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text}");
        assert!(text.starts_with("Epoch 1/1\n"), "{text}");
        assert!(text.contains("20/20 ━━━━━━━━━━━━━━━━━━━━ "), "{text}");
        assert!(
            text.contains("- val_accuracy: 0.9500 - val_loss: 0.4000"),
            "{text}"
        );
        assert_eq!(text.lines().last(), Some("test_accuracy: 0.9877"));
        assert!(
            text.lines().count() < 15,
            "about one line per tenth of an epoch: {text}"
        );
    }
}
