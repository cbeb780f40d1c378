//! The runtime: parameters, plans, sessions on the reference kernels, losses, optimizers, the
//! trainer with its `Event`/`Command` channel, checkpoints and the history.
//!
//! Must not depend on `tui`.

pub mod checkpoint;
pub mod compiled;
mod event;
pub mod history;
mod im2col;
mod loss;
mod optimizer;
mod params;
mod plan;
mod rng;
mod session;
pub mod setup;
pub mod trainer;

pub use event::{Command, EpochMetrics, Event, FeatureMaps, LayerHealth, Snapshot, View};
pub use history::History;
pub use loss::{BatchLoss, Loss, argmax};
pub use optimizer::Optimizer;
pub use params::ParamStore;
pub use plan::Plan;
pub use rng::Rng;
pub use session::{Backend, Mode, OutputLink, Session};
pub use trainer::{Outcome, TrainConfig, TrainData, Trainer};
