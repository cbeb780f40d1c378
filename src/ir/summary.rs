//! `cnntui summary`: Keras 3's `model.summary()` table and a JSON form of it.

use std::fmt::Write as _;

use super::{Graph, Op};

/// Keras's memory figure for `count` f32 parameters: `364.54 KB`.
fn memory(count: usize) -> String {
    let mut size = count as f64 * 4.0;
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < units.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.2} {}", units[unit])
}

/// `93322` → `93,322`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Renders the summary in Keras 3's layout: `Layer (type)`, `Output Shape`, `Param #` (and
/// `Connected to` for functional models, `Trainable` when some layer is frozen), then the
/// totals. Members of fused groups (see `crate::passes`) keep their own rows; a line under
/// each names its group, numbered in order.
pub fn render_summary(g: &Graph) -> String {
    let show_trainable = g
        .nodes
        .iter()
        .skip(1)
        .any(|n| !n.trainable && n.param_count() > 0);
    let mut header = vec!["Layer (type)", "Output Shape", "Param #"];
    if g.functional {
        header.push("Connected to");
    }
    if show_trainable {
        header.push("Trainable");
    }
    let rows: Vec<Vec<Vec<String>>> = g
        .nodes
        .iter()
        .enumerate()
        .skip(usize::from(!g.functional))
        .map(|(id, n)| {
            let mut name = vec![format!("{} ({})", n.name, n.op.class_name())];
            if let Some((k, group)) = g.group_of(id) {
                let label = if group.members.len() == 1 {
                    format!("  ↳ fused: {}", group.kind)
                } else {
                    format!("  ↳ fused #{}: {}", k + 1, group.kind)
                };
                name.push(label);
            }
            let mut row = vec![
                name,
                vec![n.shape.to_string()],
                vec![thousands(n.param_count())],
            ];
            if g.functional {
                let inputs = n
                    .inputs
                    .iter()
                    .map(|&i| format!("{}[0][0]", g.nodes[i].name))
                    .collect::<Vec<_>>();
                row.push(if inputs.is_empty() {
                    vec!["-".to_string()]
                } else {
                    inputs
                });
            }
            if show_trainable {
                let t = if matches!(n.op, Op::Input) || n.param_count() == 0 {
                    "-"
                } else if n.trainable {
                    "Y"
                } else {
                    "N"
                };
                row.push(vec![t.to_string()]);
            }
            row
        })
        .collect();
    let mins = [31usize, 22, 13, 23, 9];
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            let content = rows
                .iter()
                .flat_map(|r| r[c].iter().map(|l| l.chars().count()))
                .max()
                .unwrap_or(0);
            content
                .max(header[c].chars().count())
                .max(mins[c.min(mins.len() - 1)])
                + 2
        })
        .collect();
    let right = |c: usize| header[c] == "Param #";
    let rule = |l: &str, m: &str, r: &str, fill: &str| {
        let parts: Vec<String> = widths.iter().map(|&w| fill.repeat(w)).collect();
        format!("{l}{}{r}\n", parts.join(m))
    };
    let line = |cells: &[&str], bar: &str| {
        let mut s = String::from(bar);
        for (c, text) in cells.iter().enumerate() {
            let w = widths[c] - 2;
            if right(c) {
                let _ = write!(s, " {text:>w$} {bar}");
            } else {
                let _ = write!(s, " {text:<w$} {bar}");
            }
        }
        s.push('\n');
        s
    };
    let mut out = format!("Model: \"{}\"\n", g.name);
    out += &rule("┏", "┳", "┓", "━");
    out += &line(&header, "┃");
    out += &rule("┡", "╇", "┩", "━");
    for (i, row) in rows.iter().enumerate() {
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            let cells: Vec<&str> = row
                .iter()
                .map(|c| c.get(k).map_or("", String::as_str))
                .collect();
            out += &line(&cells, "│");
        }
        out += &if i + 1 < rows.len() {
            rule("├", "┼", "┤", "─")
        } else {
            rule("└", "┴", "┘", "─")
        };
    }
    let (total, trainable, frozen) = (
        g.total_params(),
        g.trainable_params(),
        g.non_trainable_params(),
    );
    let _ = writeln!(
        out,
        " Total params: {} ({})",
        thousands(total),
        memory(total)
    );
    let _ = writeln!(
        out,
        " Trainable params: {} ({})",
        thousands(trainable),
        memory(trainable)
    );
    let _ = writeln!(
        out,
        " Non-trainable params: {} ({})",
        thousands(frozen),
        memory(frozen)
    );
    out
}

/// The summary as one JSON object: `name`, `layers` (`name`, `type`, `output_shape`, `params`,
/// `trainable`, `inputs`, `fused_group`), `total_params`, `trainable_params`, `non_trainable_params`.
pub fn summary_json(g: &Graph) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = g
        .nodes
        .iter()
        .enumerate()
        .skip(1)
        .map(|(id, n)| {
            serde_json::json!({
                "name": n.name,
                "type": n.op.class_name(),
                "output_shape": n.shape.to_json(),
                "params": n.param_count(),
                "trainable": n.trainable,
                "inputs": n.inputs.iter().map(|&i| g.nodes[i].name.clone()).collect::<Vec<_>>(),
                "fused_group": g.group_of(id).map(|(k, group)| serde_json::json!({"index": k, "kind": group.kind})),
            })
        })
        .collect();
    serde_json::json!({
        "name": g.name,
        "input_shape": g.input_shape().to_json(),
        "layers": layers,
        "total_params": g.total_params(),
        "trainable_params": g.trainable_params(),
        "non_trainable_params": g.non_trainable_params(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_thousands_match_keras() {
        assert_eq!(thousands(93322), "93,322");
        assert_eq!(thousands(138357544), "138,357,544");
        assert_eq!(thousands(0), "0");
        assert_eq!(memory(93322), "364.54 KB");
        assert_eq!(memory(0), "0.00 B");
    }
}
