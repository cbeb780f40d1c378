//! The training history, with Keras's `history.history` keys, written as JSON beside the
//! checkpoints.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::EpochMetrics;

/// The file name of the history inside the save directory.
pub const HISTORY_FILE: &str = "history.json";
/// The file name of the training plot written beside it (see `viz::plot`).
pub const PLOT_FILE: &str = "history.png";

/// Per-epoch metrics, one list per Keras key. Validation lists are empty without validation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub loss: Vec<f64>,
    pub accuracy: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_loss: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_accuracy: Vec<f64>,
    pub learning_rate: Vec<f64>,
}

impl History {
    pub fn push(&mut self, m: &EpochMetrics) {
        self.loss.push(m.loss);
        self.accuracy.push(m.accuracy);
        if let (Some(l), Some(a)) = (m.val_loss, m.val_accuracy) {
            self.val_loss.push(l);
            self.val_accuracy.push(a);
        }
        self.learning_rate.push(m.learning_rate);
    }

    /// Keeps the first `epochs` epochs (when resuming from an earlier checkpoint).
    pub fn truncate(&mut self, epochs: usize) {
        for v in [
            &mut self.loss,
            &mut self.accuracy,
            &mut self.val_loss,
            &mut self.val_accuracy,
            &mut self.learning_rate,
        ] {
            v.truncate(epochs);
        }
    }

    pub fn epochs(&self) -> usize {
        self.loss.len()
    }

    /// Writes the history atomically.
    ///
    /// # Errors
    /// The I/O error of writing.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        super::checkpoint::write_atomic(path, json.as_bytes())
    }

    /// Reads a history written by [`History::write`].
    ///
    /// # Errors
    /// I/O and JSON errors.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }
}
