//! Seeing what a convnet learned, and how its training went: pictures written as PNG.
//!
//! Owns the three classic ways of looking inside a convnet — intermediate activations
//! ([`activations`]), filter patterns by gradient ascent ([`filters`]) and class-activation
//! heatmaps ([`gradcam`]) — each asked of a [`Probe`] (a frozen copy of the model on either
//! backend), the pictures they make ([`grid`]), and the training plot ([`plot`]). `viz` reads the runtime's types (a [`History`],
//! later a `Session`'s activations and gradients) and writes pictures; the trainer calls
//! [`plot::write_history_plot`] with every checkpoint, so the plot depends on nothing of the
//! runtime but `History`.
//!
//! Must not depend on `tui`.
//!
//! [`History`]: crate::runtime::History

pub mod activations;
mod error;
pub mod filters;
pub mod gradcam;
pub mod grid;
pub mod layers;
pub mod plot;
mod probe;

pub use error::VizError;
pub use probe::{Cut, Probe};
