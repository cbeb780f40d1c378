//! The intermediate representation: a closed [`Op`] enum, the [`Graph`] of layers with
//! inferred shapes and parameters, lowering from a [`crate::model::ModelSpec`] (where all
//! validation happens, once), and the Keras-layout summary.
//!
//! One IR node is one Keras layer: a `Conv2D` node carries its bias and activation, so the
//! summary shows Keras's rows and parameter counts without reassembling anything; the fusion
//! pass (`crate::passes`) groups whole nodes. Window arithmetic (output sizes, `same` padding)
//! comes from `cnntui_kernels::geom`, its one home.
//!
//! Must not depend on `runtime` or `tui`.

mod error;
mod graph;
mod lower;
mod op;
mod summary;

pub use error::{LoadError, LowerError};
pub use graph::{FusedGroup, Graph, Node, NodeId, Param, ParamInit, ParamKind, Shape};
pub use lower::{load, lower};
pub use op::Op;
pub use summary::{render_summary, summary_json, thousands};
