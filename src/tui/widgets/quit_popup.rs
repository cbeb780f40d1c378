//! The quit popup: asks before quitting while training runs, then says that the trainer is
//! finishing its batch and saving.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};

use super::centered;
use crate::tui::app::{App, Quit};

/// Renders the popup centred in `area`.
pub fn render_quit_popup(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let r = centered(area, 48, 7);
    Clear.render(r, buf);
    let (heading, lines) = if app.quit == Quit::AfterTrainer {
        (
            " Quitting ",
            vec![
                Line::from("Finishing the batch and saving a checkpoint…"),
                Line::from(""),
                Line::styled("Ctrl-C again quits at once.", theme.dim()),
            ],
        )
    } else {
        (
            " Quit? ",
            vec![
                Line::from(
                    "Training is running. Quitting stops it after this batch and saves a checkpoint.",
                ),
                Line::from(""),
                Line::from(vec![
                    Span::styled("y", theme.key()),
                    Span::styled(" quit   ", theme.label()),
                    Span::styled("n", theme.key()),
                    Span::styled(" keep training", theme.label()),
                ])
                .centered(),
            ],
        )
    };
    let block = Block::bordered()
        .border_set(theme.border_set(true))
        .border_style(theme.warn())
        .title(Line::from(heading).style(theme.title()));
    Paragraph::new(lines)
        .wrap(Wrap { trim: true })
        .block(block)
        .render(r, buf);
}
