//! The widgets, one per file, and the composition of a whole screen from them.
//!
//! Rendering only lays out and draws what `App` holds: no widget changes state or talks to the
//! trainer. Each `render_*` takes the `App`, its area and the buffer.

mod alarm;
mod chart;
pub mod feature_maps;
mod footer;
mod health;
mod help;
mod log;
mod model_table;
mod quit_popup;
mod training;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Flex, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use super::app::{App, Focus};
use super::layout;

/// The smallest screen the dashboard lays out; below it a message asks for more room.
const MIN_WIDTH: u16 = 60;
const MIN_HEIGHT: u16 = 16;

/// Draws the whole screen: panes, footer, then any overlay, then the theme's final pass.
pub fn render_screen(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let buf = frame.buffer_mut();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "cnntui needs at least {MIN_WIDTH}×{MIN_HEIGHT}; this terminal is {}×{}",
            area.width, area.height
        );
        Paragraph::new(text)
            .wrap(ratatui::widgets::Wrap { trim: true })
            .render(area, buf);
        app.theme.finish(buf);
        return;
    }
    let panes = layout::panes_in(app, area);
    model_table::render_model_table(app, panes.model, buf);
    training::render_training(app, panes.training, buf);
    if let Some(r) = panes.feature_maps {
        feature_maps::render_feature_maps(app, r, buf);
    }
    if let Some(r) = panes.health {
        health::render_health(app, r, buf);
    }
    if let Some(r) = panes.log {
        log::render_log(app, r, buf);
    }
    footer::render_footer(app, panes.footer, buf);
    if app.help {
        help::render_help(app, area, buf);
    } else if app.confirm_quit || app.quit == super::app::Quit::AfterTrainer {
        quit_popup::render_quit_popup(app, area, buf);
    }
    app.theme.finish(buf);
}

/// The frame of a pane: rounded, heavy when focused, its title in bold.
fn pane<'a>(app: &App, focus: Focus, title: Line<'a>) -> Block<'a> {
    let focused = app.focus == focus;
    Block::bordered()
        .border_set(app.theme.border_set(focused))
        .border_style(app.theme.border(focused))
        .title(title.style(app.theme.title()))
}

/// A pane's title text with a space either side.
fn title(text: impl Into<String>) -> Line<'static> {
    Line::from(format!(" {} ", text.into()))
}

/// A centred box of `width`×`height` inside `area`.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(v);
    r
}

/// As many of `items` as fit in `width` columns, in order, separated by `sep`.
fn fit<'a>(items: Vec<Vec<Span<'a>>>, width: usize, sep: Span<'a>) -> Line<'a> {
    let mut spans: Vec<Span<'a>> = Vec::new();
    let mut used = 0;
    for item in items {
        let w: usize = item.iter().map(Span::width).sum();
        let extra = if spans.is_empty() { 0 } else { sep.width() };
        if used + extra + w > width {
            continue;
        }
        if !spans.is_empty() {
            spans.push(sep.clone());
        }
        used += extra + w;
        spans.extend(item);
    }
    Line::from(spans)
}

/// A dim line centred in `area` (placeholders such as "waiting for the trainer").
fn placeholder(area: Rect, buf: &mut ratatui::buffer::Buffer, text: &str, style: Style) {
    if area.height == 0 {
        return;
    }
    let y = area.y + area.height / 2;
    Paragraph::new(text.to_string())
        .style(style)
        .alignment(Alignment::Center)
        .render(Rect::new(area.x, y, area.width, 1), buf);
}

/// A number in engineering-ish notation that fits in about 7 columns: `0.4985`, `1.2e-5`.
fn short(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&a) {
        let s = format!("{v:.4}");
        s.chars()
            .take(if v < 0.0 { 7 } else { 6 })
            .collect::<String>()
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.1e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_fit_in_seven_columns() {
        assert_eq!(short(0.49851), "0.4985");
        assert_eq!(short(1234.5678), "1234.5");
        assert_eq!(short(0.0000123), "1.2e-5");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(f64::NAN), "NaN");
    }

    #[test]
    fn fit_drops_items_that_do_not_fit_and_keeps_order() {
        let items = vec![
            vec![Span::raw("aaaa")],
            vec![Span::raw("bbbbbbbbbb")],
            vec![Span::raw("cc")],
        ];
        let line = fit(items, 9, Span::raw(" "));
        assert_eq!(line.to_string(), "aaaa cc");
    }
}
