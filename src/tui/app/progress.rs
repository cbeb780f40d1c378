//! Where a run is and what it has measured: epoch and batch position, running figures, the ETA
//! once warmed up, and the curves the charts draw. Plain data, updated by `App::update`.

use super::WARMUP_BATCHES;
use crate::runtime::EpochMetrics;

/// Epoch and batch position, figures of the running epoch, and the final ones.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub epochs: usize,
    /// The current epoch, 0-based.
    pub epoch: usize,
    pub batches: usize,
    /// Batches done in the current epoch.
    pub batch: usize,
    pub samples: usize,
    pub batch_size: usize,
    /// Running means over the epoch so far.
    pub loss: Option<f64>,
    pub accuracy: Option<f64>,
    pub samples_per_s: Option<f64>,
    pub learning_rate: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// The last evaluation on the test split: (loss, accuracy).
    pub test: Option<(f64, f64)>,
    /// Batches of the current epoch done in this run (for the ETA warm-up).
    pub run_batches: usize,
    pub finished: Option<Finished>,
}

/// How training ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Finished {
    pub stopped_early: bool,
    pub test_accuracy: Option<f64>,
    pub seconds: f64,
}

impl Progress {
    /// Seconds left in training (batches only, not validation), once warmed up.
    pub fn eta_seconds(&self) -> Option<f64> {
        let rate = self.samples_per_s.filter(|r| r.is_finite() && *r > 0.0)?;
        if self.run_batches < WARMUP_BATCHES || self.finished.is_some() {
            return None;
        }
        let left_epochs = self.epochs.saturating_sub(self.epoch + 1);
        let left = left_epochs * self.batches + self.batches.saturating_sub(self.batch);
        Some((left * self.batch_size) as f64 / rate)
    }

    /// The fraction of all epochs done.
    pub fn overall(&self) -> f64 {
        if self.finished.is_some_and(|f| !f.stopped_early) {
            return 1.0;
        }
        let per = self.batches.max(1) as f64;
        (self.epoch as f64 + self.batch as f64 / per) / self.epochs.max(1) as f64
    }
}

/// Training curves: x in epochs (epoch + batch / batches), y the metric.
#[derive(Clone, Debug, Default)]
pub struct Curves {
    /// Per-batch loss and accuracy (recovered from the trainer's running means).
    pub loss: Vec<(f64, f64)>,
    pub accuracy: Vec<(f64, f64)>,
    /// Validation figures at the end of each epoch.
    pub val_loss: Vec<(f64, f64)>,
    pub val_accuracy: Vec<(f64, f64)>,
    /// The previous batch event: (epoch, batch, loss mean, accuracy mean, samples seen).
    last: Option<(usize, usize, f64, f64, usize)>,
}

impl Curves {
    /// Records one batch. The trainer reports running means over the epoch; the batch's own
    /// figures are `(mean_b · seen_b − mean_{b−1} · seen_{b−1}) / (seen_b − seen_{b−1})`, which
    /// is noisy: that is what the smoothing toggle is for.
    pub(super) fn push(
        &mut self,
        epoch: usize,
        batch: usize,
        p: &Progress,
        loss: f64,
        accuracy: f64,
    ) {
        let seen = (batch * p.batch_size).min(p.samples.max(1));
        let prev = match self.last {
            Some((e, b, l, a, s)) if e == epoch && b + 1 == batch => Some((l, a, s)),
            _ if batch == 1 => Some((0.0, 0.0, 0)),
            _ => None,
        };
        self.last = Some((epoch, batch, loss, accuracy, seen));
        let Some((l0, a0, s0)) = prev else {
            return;
        };
        let n = seen.saturating_sub(s0);
        if n == 0 {
            return;
        }
        let x = epoch as f64 + batch as f64 / p.batches.max(1) as f64;
        let own = |mean: f64, mean0: f64| (mean * seen as f64 - mean0 * s0 as f64) / n as f64;
        self.loss.push((x, own(loss, l0)));
        self.accuracy.push((x, own(accuracy, a0).clamp(0.0, 1.0)));
    }

    pub(super) fn push_epoch(&mut self, m: &EpochMetrics) {
        let x = (m.epoch + 1) as f64;
        if let Some(v) = m.val_loss {
            self.val_loss.push((x, v));
        }
        if let Some(v) = m.val_accuracy {
            self.val_accuracy.push((x, v));
        }
    }
}
