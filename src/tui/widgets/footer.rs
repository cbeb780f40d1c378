//! The footer: the keys that matter now, as many as fit, most useful first; `?` lists all.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::Widget;

use super::fit;
use crate::tui::app::{App, Phase};

/// Renders the footer line.
pub fn render_footer(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let t = match app.phase {
        Phase::Training => "pause",
        Phase::Paused => "resume",
        Phase::Preparing | Phase::Ready => "train",
        Phase::Stopping | Phase::Finished | Phase::Inspecting => "",
    };
    let keys: [(&str, &str); 14] = [
        ("t", t),
        ("↑↓", "layer"),
        ("space", "freeze"),
        ("f", "fine-tune"),
        ("?", "help"),
        ("q", "quit"),
        ("+/-", "lr"),
        ("←→", "maps"),
        ("tab", "focus"),
        ("c", "save"),
        ("e", "eval"),
        ("s", "stop"),
        ("m", "smooth"),
        ("l", "log y"),
    ];
    // Without a trainer only looking around is possible.
    let inspecting = app.phase == Phase::Inspecting;
    let items = keys
        .iter()
        .filter(|(k, what)| !what.is_empty() && (!inspecting || ["↑↓", "?", "q"].contains(k)))
        .map(|(k, what)| {
            vec![
                Span::styled(*k, theme.key()),
                Span::styled(format!(" {what}"), theme.label()),
            ]
        })
        .collect();
    fit(items, usize::from(area.width), Span::raw("  ")).render(area, buf);
}
