//! The Health pane: per layer with weights, the gradient norm of the last step, the
//! weight-update ratio ‖Δw‖/‖w‖ (about 1e-3 is healthy; far below, the layer barely learns; far
//! above, it thrashes) and the fraction of dead ReLU outputs, flagged when they look wrong.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Row, Table, Widget};

use super::{pane, placeholder, short, title};
use crate::tui::app::{App, Focus};

/// Update ratios outside this range are flagged.
const HEALTHY_UPDATE: std::ops::RangeInclusive<f32> = 1e-5..=1e-1;

/// Renders the Health pane.
pub fn render_health(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let block = pane(app, Focus::Health, title("Health"));
    let inner = block.inner(area);
    block.render(area, buf);
    if app.health.is_empty() {
        placeholder(inner, buf, "shown after the first batch", theme.dim());
        return;
    }
    let selected = app.selected_node().map(|n| n.name.as_str());
    let wide = inner.width >= 44;
    let rows: Vec<Row> = app
        .health
        .iter()
        .map(|h| {
            let frozen = !h.trainable;
            let ratio_style = if frozen {
                theme.frozen()
            } else if !h.update_ratio.is_finite() || *HEALTHY_UPDATE.end() < h.update_ratio {
                theme.error()
            } else if h.update_ratio < *HEALTHY_UPDATE.start() {
                theme.warn()
            } else {
                theme.good()
            };
            let (dead, dead_style) = match h.dead_fraction {
                Some(d) => (
                    format!("{:>3.0}%", d * 100.0),
                    if d > 0.5 {
                        theme.error()
                    } else if d > 0.2 {
                        theme.warn()
                    } else {
                        theme.good()
                    },
                ),
                None => ("—".to_string(), theme.dim()),
            };
            let ratio = if frozen {
                "frozen".to_string()
            } else {
                short(f64::from(h.update_ratio))
            };
            let mut cells = vec![
                Cell::from(h.layer.clone()),
                Cell::from(Line::from(short(f64::from(h.grad_norm))).right_aligned()),
                Cell::from(Line::from(ratio).right_aligned()).style(ratio_style),
                Cell::from(Line::from(dead.clone()).right_aligned()).style(dead_style),
            ];
            if wide {
                let d = h.dead_fraction.unwrap_or(0.0);
                let (done, rest) = theme.bar(f64::from(d), 8);
                cells.push(Cell::from(Line::from(vec![
                    ratatui::text::Span::styled(done, dead_style),
                    ratatui::text::Span::styled(rest, theme.dim()),
                ])));
            }
            let row = Row::new(cells);
            if Some(h.layer.as_str()) == selected {
                row.style(theme.selected())
            } else {
                row
            }
        })
        .collect();
    let mut header = vec!["Layer", "‖grad‖", "Δw/w", "dead"];
    let mut widths = vec![
        Constraint::Fill(1),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(5),
    ];
    if wide {
        header.push("ReLU");
        widths.push(Constraint::Length(8));
    }
    Table::new(rows, widths)
        .header(Row::new(header).style(theme.label()))
        .column_spacing(1)
        .render(inner, buf);
}
