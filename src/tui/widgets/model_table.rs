//! The Model pane: one row per layer (name, type, output shape, parameters, trainable, fused
//! group), the selected layer highlighted, frozen layers marked, the totals underneath; the
//! table scrolls to keep the selection in view. Columns drop out as the pane narrows: the fused
//! group, then the type, then the Keras `(None, h, w, c)` shape becomes `h×w×c`.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, Widget};

use super::{pane, placeholder, title};
use crate::ir::{Node, thousands};
use crate::tui::app::{App, Focus};

/// Renders the Model pane.
pub fn render_model_table(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let name = app
        .graph
        .as_ref()
        .map_or(app.model_path.clone(), |g| g.name.clone());
    let rows = app.rows();
    let visible = usize::from(area.height.saturating_sub(4));
    let mut block = pane(app, Focus::Model, title(format!("Model · {name}")));
    if rows.len() > visible && visible > 0 {
        let last = (app.model_offset + visible).min(rows.len());
        block = block.title_bottom(
            Line::from(format!(
                " {}–{} of {} ",
                app.model_offset + 1,
                last,
                rows.len()
            ))
            .right_aligned(),
        );
    }
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(graph) = &app.graph else {
        placeholder(inner, buf, "lowering the model…", theme.dim());
        return;
    };
    if inner.height < 2 {
        return;
    }
    let width = usize::from(inner.width);
    let groups = app.groups.iter().any(Option::is_some) && width >= 90;
    let with_type = width >= 52;
    let keras_shape = width >= 70;
    let shape_w = rows
        .iter()
        .map(|n| shape(n, keras_shape).chars().count())
        .max()
        .unwrap_or(5)
        .max(5) as u16;
    // Narrow panes show VGG-sized counts as `102.8M` so the names keep their room.
    let short_counts = width < 52;
    let count = |n: usize| {
        if short_counts {
            compact(n)
        } else {
            thousands(n)
        }
    };
    let params_w = rows
        .iter()
        .map(|n| count(n.param_count()).len())
        .chain([6])
        .max()
        .unwrap_or(6) as u16;
    let mut header = vec!["Layer"];
    let mut widths = vec![Constraint::Fill(1)];
    if with_type {
        header.push("Type");
        widths.push(Constraint::Length(12));
    }
    header.extend(["Shape", "Params", if width >= 60 { "Train" } else { "T" }]);
    widths.extend([
        Constraint::Length(shape_w),
        Constraint::Length(params_w),
        Constraint::Length(if width >= 60 { 5 } else { 1 }),
    ]);
    if groups {
        header.push("Fused");
        widths.push(Constraint::Fill(1));
    }
    let body: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(app.model_offset)
        .take(visible)
        .map(|(i, n)| {
            let has_weights = n.param_count() > 0;
            let (mark, mark_style) = match (has_weights, n.trainable) {
                (false, _) => ("", theme.dim()),
                (true, true) => ("✓", theme.good()),
                (true, false) => ("✗", theme.frozen()),
            };
            let params_style = if has_weights && !n.trainable {
                theme.frozen()
            } else {
                ratatui::style::Style::default()
            };
            let mut cells = vec![Cell::from(n.name.clone())];
            if with_type {
                cells.push(Cell::from(n.op.class_name()).style(theme.label()));
            }
            cells.extend([
                Cell::from(Line::from(shape(n, keras_shape)).right_aligned()),
                Cell::from(Line::from(count(n.param_count())).right_aligned()).style(params_style),
                Cell::from(Line::from(mark).centered()).style(mark_style),
            ]);
            if groups {
                let g = app.groups.get(i + 1).cloned().flatten().unwrap_or_default();
                cells.push(Cell::from(g).style(theme.dim()));
            }
            let row = Row::new(cells);
            if i == app.selected {
                row.style(theme.selected())
            } else {
                row
            }
        })
        .collect();
    let table_area = Rect {
        height: inner.height - 1,
        ..inner
    };
    Table::new(body, widths)
        .header(Row::new(header).style(theme.label().add_modifier(ratatui::style::Modifier::BOLD)))
        .column_spacing(1)
        .render(table_area, buf);
    let total = graph.total_params();
    let trainable = app.trainable_params;
    let non = total.saturating_sub(trainable);
    let frozen_style = if non > 0 { theme.frozen() } else { theme.dim() };
    let candidates = [
        vec![
            Span::styled("Total ", theme.label()),
            Span::styled(thousands(total), theme.value()),
            Span::styled(" · Trainable ", theme.label()),
            Span::styled(thousands(trainable), theme.value()),
            Span::styled(" · Non-trainable ", theme.label()),
            Span::styled(thousands(non), frozen_style),
        ],
        vec![
            Span::styled(thousands(total), theme.value()),
            Span::styled(" params · ", theme.label()),
            Span::styled(thousands(trainable), theme.value()),
            Span::styled(" trainable", theme.label()),
        ],
        if trainable == total {
            vec![
                Span::styled(thousands(total), theme.value()),
                Span::styled(" params, all trainable", theme.label()),
            ]
        } else {
            vec![
                Span::styled(thousands(total), theme.value()),
                Span::styled(" · ", theme.label()),
                Span::styled(compact(trainable), theme.value()),
                Span::styled(" trainable", theme.label()),
            ]
        },
        vec![
            Span::styled(thousands(total), theme.value()),
            Span::styled(" params", theme.label()),
        ],
    ];
    let line = candidates
        .into_iter()
        .map(Line::from)
        .find(|l| l.width() <= width)
        .unwrap_or_default();
    let totals = Rect {
        y: inner.bottom() - 1,
        height: 1,
        ..inner
    };
    line.render(totals, buf);
}

/// A parameter count in at most 6 columns: `36,928` below 100,000, else `102.8M`, `147.6k`.
fn compact(n: usize) -> String {
    match n {
        0..100_000 => thousands(n),
        100_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// A layer's output shape: Keras's `(None, 26, 26, 32)` or the compact `26×26×32`.
fn shape(n: &Node, keras: bool) -> String {
    if keras {
        n.shape.to_string()
    } else {
        n.shape
            .0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("×")
    }
}

#[cfg(test)]
mod tests {
    use super::compact;

    #[test]
    fn compact_counts_stay_short() {
        assert_eq!(compact(36_928), "36,928");
        assert_eq!(compact(147_584), "147.6k");
        assert_eq!(compact(102_764_544), "102.8M");
    }
}
