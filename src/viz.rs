//! Seeing what a convnet learned, and how its training went: pictures written as PNG.
//!
//! Owns the training plot ([`plot`]) now; the activation grids, filter visualisations and
//! class-activation heatmaps grow beside it. `viz` reads the runtime's types (a [`History`],
//! later a `Session`'s activations and gradients) and writes pictures; the trainer calls
//! [`plot::write_history_plot`] with every checkpoint, so the plot depends on nothing of the
//! runtime but `History`.
//!
//! Must not depend on `tui`.
//!
//! [`History`]: crate::runtime::History

pub mod plot;
