//! Where each pane goes, as a pure function of the terminal's size and the `App`: the renderer
//! draws into these rectangles and `App::update` hit-tests mouse clicks against the same ones.
//!
//! Two arrangements. Compact (below 120×36, down to 80×24): Model and Training side by side
//! on top; below them the feature maps, or whichever of Health and Log has the focus (from
//! 100 columns, feature maps with Health or Log beside them). Wide: Model, Health and Log in a
//! left column; Training and the feature maps on the right.
//!
//! Must not depend on widgets' drawing code.

use ratatui::layout::{Constraint, Layout, Position, Rect};

use super::app::{App, Focus};

/// Where the panes are; `None` for a pane not shown at this size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Panes {
    pub model: Rect,
    pub training: Rect,
    pub feature_maps: Option<Rect>,
    pub health: Option<Rect>,
    pub log: Option<Rect>,
    pub footer: Rect,
}

/// Whether `area` gets the wide arrangement.
pub fn is_wide(area: Rect) -> bool {
    area.width >= 120 && area.height >= 36
}

/// The panes of `app` at its last known terminal size.
pub fn panes(app: &App) -> Panes {
    panes_in(app, app.size)
}

/// The panes of `app` in `area`.
pub fn panes_in(app: &App, area: Rect) -> Panes {
    let [main, footer] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
    if is_wide(area) {
        wide(app, main, footer)
    } else {
        compact(app, main, footer)
    }
}

fn compact(app: &App, main: Rect, footer: Rect) -> Panes {
    let top_h = (main.height / 2 + 1).min(main.height);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(top_h), Constraint::Min(0)]).areas(main);
    let model_w = (main.width * 48 / 100).clamp(20.min(main.width), 64);
    let [model, training] =
        Layout::horizontal([Constraint::Length(model_w), Constraint::Min(0)]).areas(top);
    let mut panes = Panes {
        model,
        training,
        footer,
        ..Panes::default()
    };
    if main.width >= 100 {
        let [maps, side] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(bottom);
        panes.feature_maps = Some(maps);
        if app.bottom == Focus::Health {
            panes.health = Some(side);
        } else {
            panes.log = Some(side);
        }
    } else {
        match app.bottom {
            Focus::Health => panes.health = Some(bottom),
            Focus::Log => panes.log = Some(bottom),
            _ => panes.feature_maps = Some(bottom),
        }
    }
    panes
}

fn wide(app: &App, main: Rect, footer: Rect) -> Panes {
    let left_w = (main.width * 42 / 100).clamp(48, 72);
    let [left, right] =
        Layout::horizontal([Constraint::Length(left_w), Constraint::Min(0)]).areas(main);
    let rows = app.rows();
    let model_h = (rows.len() as u16 + 5).clamp(6, main.height * 55 / 100);
    let weighted = rows.iter().filter(|n| n.param_count() > 0).count() as u16;
    let rest = main.height.saturating_sub(model_h);
    let health_h = (weighted + 3).clamp(4, (rest / 2).max(4));
    let [model, health, log] = Layout::vertical([
        Constraint::Length(model_h),
        Constraint::Length(health_h),
        Constraint::Min(0),
    ])
    .areas(left);
    let training_h = (main.height * 40 / 100).max(12);
    let [training, maps] =
        Layout::vertical([Constraint::Length(training_h), Constraint::Min(0)]).areas(right);
    Panes {
        model,
        training,
        feature_maps: Some(maps),
        health: Some(health),
        log: Some(log),
        footer,
    }
}

/// Layer rows the Model pane shows at once (borders, the header and the totals line take 4).
pub fn model_rows_visible(app: &App) -> usize {
    usize::from(panes(app).model.height.saturating_sub(4))
}

/// The layer row under `at` in the Model pane `model`, if any.
pub fn model_row_at(app: &App, model: Rect, at: Position) -> Option<usize> {
    let first = model.y + 2;
    let visible = usize::from(model.height.saturating_sub(4));
    if at.y < first || at.x <= model.x || at.x + 1 >= model.right() {
        return None;
    }
    let i = usize::from(at.y - first);
    let row = app.model_offset + i;
    (i < visible && row < app.rows().len()).then_some(row)
}
