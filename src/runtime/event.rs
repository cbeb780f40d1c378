//! What the trainer tells its consumers ([`Event`]) and what they may ask of it
//! ([`Command`]). The headless printer and the dashboard consume the same stream.

use std::path::PathBuf;

/// Per-layer training health, for layers with weights.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerHealth {
    pub layer: String,
    /// L2 norm of the layer's weight gradients in the last step.
    pub grad_norm: f32,
    /// ‖Δw‖ / ‖w‖ of the last update (about 1e-3 is healthy).
    pub update_ratio: f32,
    /// Fraction of the layer's outputs that were exactly zero (ReLU-family layers).
    pub dead_fraction: Option<f32>,
    pub trainable: bool,
}

/// Metrics at the end of an epoch, with Keras's `history.history` keys.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub learning_rate: f64,
}

/// One layer's activations for the fixed sample image the dashboard shows.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMaps {
    /// What the maps show: a layer's activations, or a visualisation of it.
    pub view: View,
    pub layer: String,
    /// The layer's output shape without the batch: `[h, w, c]` or `[features]`.
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
    /// The sample image, `[h, w, c]`, and its label.
    pub input_shape: Vec<usize>,
    pub input: Vec<f32>,
    pub label: u32,
}

/// What the Feature maps pane shows (the dashboard's `v` cycles them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    /// The layer's output for the sample image, one tile per channel.
    #[default]
    Activations,
    /// For each of the layer's first filters, the input that maximises its mean activation
    /// (gradient ascent), one tile per filter.
    Filters,
    /// Grad-CAM of the predicted class over the sample image, at the last feature map.
    Heatmap,
    /// A training image and eight augmented versions of it (the lecture's figure).
    Augmented,
    /// The sample after each classic image operation (grey, blur, TV denoising, Sobel,
    /// Canny, k-means).
    ImageOps,
}

impl View {
    /// The next view in the `v` cycle.
    pub fn next(self) -> View {
        match self {
            View::Activations => View::Filters,
            View::Filters => View::Heatmap,
            View::Heatmap => View::Augmented,
            View::Augmented => View::ImageOps,
            View::ImageOps => View::Activations,
        }
    }
}

/// Something that happened in training.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Training starts (or resumes) at `epoch` (0-based), batch `batch`.
    Started {
        epochs: usize,
        batches_per_epoch: usize,
        samples: usize,
        epoch: usize,
        batch: usize,
    },
    EpochStarted {
        epoch: usize,
    },
    /// A batch finished: running means over the epoch so far.
    Batch {
        epoch: usize,
        batch: usize,
        batches: usize,
        loss: f64,
        accuracy: f64,
        samples_per_s: f64,
        learning_rate: f64,
    },
    EpochEnded(EpochMetrics),
    Health(Vec<LayerHealth>),
    /// JIT compilation progress: `done` of `total` layers' kernels compiled.
    Compiling {
        done: usize,
        total: usize,
    },
    /// The watched layer's activations on the sample image (after `Command::Watch`, and every
    /// few hundred milliseconds while training).
    FeatureMaps(Box<FeatureMaps>),
    /// The answer to [`Command::Snapshot`].
    Snapshot(std::sync::Arc<Snapshot>),
    /// Result of a `Command::Evaluate` or of the final test evaluation.
    Evaluated {
        split: &'static str,
        loss: f64,
        accuracy: f64,
    },
    CheckpointSaved(PathBuf),
    Paused,
    Resumed,
    LearningRate(f64),
    TrainableChanged {
        layer: String,
        trainable: bool,
        trainable_params: usize,
    },
    Warning(String),
    /// A non-finite loss: training pauses.
    NonFinite {
        epoch: usize,
        batch: usize,
        loss: f64,
    },
    Error(String),
    /// Training ended; `test_accuracy` on the test split when the data has one.
    Finished {
        stopped_early: bool,
        test_accuracy: Option<f64>,
        seconds: f64,
    },
}

/// Something a consumer asks of the trainer; it takes effect at the next batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Pause,
    Resume,
    /// Stop after the current batch (and save).
    Stop,
    Save,
    Evaluate,
    SetLearningRate(f64),
    SetTrainable {
        layer: String,
        trainable: bool,
    },
    /// Freeze every layer below this one; unfreeze it and every layer above (fine-tuning).
    FineTuneFrom(String),
    /// Sample this layer's activations on the sample image, now and while training.
    Watch(String),
    /// Send a [`Snapshot`] of the model as it is now (for visualisations computed elsewhere).
    Snapshot,
}

/// The model as it is at one batch boundary, with the sample image: what a visualisation
/// needs, computed away from the trainer's thread.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub graph: crate::ir::Graph,
    pub params: super::ParamStore,
    pub backend: super::Backend,
    /// The sample image, `[h, w, c]` on the model's input scale, and its label.
    pub input_shape: Vec<usize>,
    pub input: Vec<f32>,
    pub label: u32,
    /// The first training image, `[h, w, c]` on the model's input scale, and augmented
    /// versions of it (as the trainer would draw them; new draws with every snapshot). Empty
    /// versions when the model file asks for no augmentation.
    pub train_image: Vec<f32>,
    pub augmented: Vec<Vec<f32>>,
}
