//! Graph passes: small, one per file, each verified after it runs.
//!
//! Passes annotate the graph rather than merge its nodes, so the summary keeps Keras's rows
//! and every layer keeps its name; the runtime executes an annotated group as one kernel.
//!
//! Must not depend on `runtime` or `tui`.

mod fuse_conv_pool;
mod verify;

pub use fuse_conv_pool::FuseConvPool;
pub use verify::verify;

use crate::ir::{Graph, NodeId};

/// Why a pass or the verifier rejected a graph (an internal error: lowering has already
/// validated the model).
#[derive(Debug, thiserror::Error)]
#[error("pass `{pass}` left an invalid graph: {problem}")]
pub struct PassError {
    pub pass: &'static str,
    pub problem: String,
}

/// A rewrite or annotation of the graph.
pub trait Pass {
    fn name(&self) -> &'static str;
    /// Runs the pass; returns whether it changed anything.
    ///
    /// # Errors
    /// [`PassError`] when the pass cannot apply.
    fn run(&self, g: &mut Graph) -> Result<bool, PassError>;
}

/// What the graph will be run for: it decides what may be fused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// Training needs batch statistics, so batch normalisation is folded only for inference.
    pub training: bool,
    /// Nodes whose output (or gradient) a caller asked for: they stay materialised.
    pub requested: Vec<NodeId>,
}

/// Runs the standard pipeline for `target`, verifying the graph after every pass.
///
/// # Errors
/// [`PassError`] from a pass or the verifier.
pub fn optimize(g: &mut Graph, target: &Target) -> Result<(), PassError> {
    let passes: Vec<Box<dyn Pass>> = vec![Box::new(FuseConvPool::new(target.clone()))];
    for pass in passes {
        pass.run(g)?;
        verify(g).map_err(|problem| PassError {
            pass: pass.name(),
            problem,
        })?;
    }
    Ok(())
}
