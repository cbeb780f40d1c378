//! The graph verifier run after every pass: topological order, shapes of inputs present, and
//! fused groups that are chains whose intermediates have one consumer.

use crate::ir::Graph;

/// Checks the invariants passes must keep.
///
/// # Errors
/// A description of the first broken invariant.
pub fn verify(g: &Graph) -> Result<(), String> {
    for (id, node) in g.nodes.iter().enumerate() {
        if let Some(&bad) = node.inputs.iter().find(|&&i| i >= id) {
            return Err(format!(
                "`{}` reads node {bad}, which does not come before it",
                node.name
            ));
        }
    }
    let consumers = g.consumers();
    let mut seen = vec![false; g.nodes.len()];
    for group in &g.groups {
        for (k, &m) in group.members.iter().enumerate() {
            if std::mem::replace(&mut seen[m], true) {
                return Err(format!("`{}` is in two fused groups", g.nodes[m].name));
            }
            if k + 1 < group.members.len() {
                let next = group.members[k + 1];
                if consumers[m] != [next] || m == g.output {
                    return Err(format!(
                        "`{}` is fused but its output is used elsewhere",
                        g.nodes[m].name
                    ));
                }
                if !g.nodes[next].inputs.contains(&m) {
                    return Err(format!("fused group `{}` is not a chain", group.kind));
                }
            }
        }
    }
    Ok(())
}
