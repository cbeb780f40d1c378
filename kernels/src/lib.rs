//! `cnntui-kernels`: the numeric kernels of cnntui.
//!
//! Owns the kernel geometries ([`geom`]) and a plain-Rust reference implementation of every
//! forward and backward kernel ([`reference`](mod@reference)), generic over `f32` and `f64`. The reference
//! kernels are the oracle every JIT kernel is checked against, and the `--backend reference`
//! runtime. Layout is NHWC for activations and HWIO for convolution kernels (Keras order).
//!
//! Must not depend on anything of the `cnntui` crate.

pub mod geom;
pub mod jit;
pub mod reference;

pub use geom::{Conv2dGeom, Padding2d, Pool2dGeom};
pub use reference::Real;
