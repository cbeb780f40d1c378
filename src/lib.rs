//! cnntui: learn, train and inspect convolutional networks on a CPU, from a terminal.
//!
//! The pipeline, one stage per module (see the README's diagram):
//! `model` (RON → `ModelSpec`) → `ir` (`Graph`: shapes, parameters, validation) → `runtime`
//! (plan, sessions on the reference kernels, trainer, checkpoints, `Event`s) → consumers (the
//! headless printer; later the dashboard and the benchmark). `data` reads datasets.

// Errors carry what a person needs (file, layer, both shapes) and are built once, on the cold
// path; boxing them all would only add noise.
#![allow(clippy::result_large_err)]

pub mod bench;
pub mod data;
pub mod headless;
pub mod ir;
pub mod model;
pub mod passes;
pub mod runtime;
pub mod tui;
pub mod viz;
pub mod weights;
