//! The NaN alarm: two reversed red lines in the Training pane when the loss stopped being
//! finite (the trainer has paused), saying where and what to do.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};

use crate::tui::app::Alarm;
use crate::tui::theme::Theme;

/// Renders the alarm for `a` into `area` (two lines).
pub fn render_alarm(theme: &Theme, a: &Alarm, area: Rect, buf: &mut Buffer) {
    let style = theme.alarm();
    let lines = vec![
        Line::from(format!(
            " ⚠ {} loss (epoch {}, batch {}): paused ",
            a.loss,
            a.epoch + 1,
            a.batch + 1
        )),
        Line::from(" lower the lr with -, then press t "),
    ];
    buf.set_style(area, style);
    Paragraph::new(lines).style(style).render(area, buf);
}
