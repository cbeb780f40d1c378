//! The help overlay (`?`): every key and what it does, over the dashboard.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget};

use super::centered;
use crate::tui::app::App;

/// Every key of the dashboard and its action (also the README's table).
pub const KEYS: [(&str, &str); 20] = [
    ("t", "start / pause / resume training"),
    (
        "↑ ↓",
        "select a layer (scroll the log when it has the focus)",
    ),
    ("space", "freeze / unfreeze the selected layer"),
    (
        "f",
        "fine-tune from the selected layer (freeze the ones below)",
    ),
    ("+ -", "double / halve the learning rate"),
    ("← →", "page through the feature-map channels"),
    ("tab", "move the focus (small screens: maps, health, log)"),
    ("c", "save a checkpoint"),
    ("e", "evaluate on the test split"),
    ("s", "stop training after this batch (saves)"),
    (
        "v",
        "maps pane: activations, filters, Grad-CAM, augmentation, image ops",
    ),
    ("a", "new augmented versions (in the augmentation view)"),
    ("m", "smooth the training curves on / off"),
    ("l", "log-scale loss axis on / off"),
    ("click", "select a layer, focus a pane"),
    ("?", "this help"),
    ("q", "quit (asks first while training runs; saves)"),
    ("Ctrl-C", "quit, saving"),
    ("", ""),
    ("", "any of ? q Esc closes this help"),
];

/// Renders the help overlay centred in `area`.
pub fn render_help(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let width = 70.min(area.width);
    let height = (KEYS.len() as u16 + 2).min(area.height);
    let r = centered(area, width, height);
    Clear.render(r, buf);
    let block = Block::bordered()
        .border_set(theme.border_set(true))
        .border_style(theme.border(true))
        .title(Line::from(" Keys ").style(theme.title()));
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:>7}  "), theme.key()),
                Span::styled(*what, theme.label()),
            ])
        })
        .collect();
    Paragraph::new(lines).block(block).render(r, buf);
}
