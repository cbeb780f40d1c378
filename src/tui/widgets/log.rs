//! The Log pane: the run's events, warnings, checkpoints and errors, newest at the bottom,
//! each with the epoch and batch it happened at; scrolls back with ↑/↓ when focused.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{pane, title};
use crate::tui::app::{App, Focus, Level};

/// Renders the Log pane.
pub fn render_log(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let mut block = pane(app, Focus::Log, title("Log"));
    if app.log_scroll > 0 {
        block = block.title_bottom(Line::from(format!(" ↑{} ", app.log_scroll)).right_aligned());
    }
    let inner = block.inner(area);
    block.render(area, buf);
    let h = usize::from(inner.height);
    let end = app.log.len().saturating_sub(app.log_scroll);
    let start = end.saturating_sub(h);
    let lines: Vec<Line> = app
        .log
        .range(start..end)
        .map(|l| {
            let style = match l.level {
                Level::Info => theme.label(),
                Level::Good => theme.good(),
                Level::Warn => theme.warn(),
                Level::Error => theme.error(),
            };
            let mut spans = Vec::new();
            if let Some((e, b)) = l.at {
                spans.push(Span::styled(format!("e{e} b{b:<4} "), theme.dim()));
            }
            spans.push(Span::styled(l.text.clone(), style));
            Line::from(spans)
        })
        .collect();
    Paragraph::new(lines).render(inner, buf);
}
