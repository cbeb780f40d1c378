//! The Feature maps pane: the sample image and, beside it, a grid of the selected layer's
//! channels for that image, each normalised to its own minimum and maximum, one page at a time
//! (←/→). Pixels are half blocks `▀` (top pixel the foreground colour, bottom the background),
//! so a cell holds two square-ish pixels; without 256 colours they become ASCII shades. Maps
//! are resampled (box average down, nearest up) to fit the pane. A flat layer (`Dense`,
//! `Flatten`) shows its units as bars when few, as a heat strip when many.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::{pane, placeholder, short, title};
use crate::runtime::{FeatureMaps, View};
use crate::tui::app::{App, Focus, Phase};
use crate::tui::theme::Theme;

/// Maps smaller than this many pixels are enlarged by a whole factor.
const MIN_TILE_PX: usize = 12;

/// Channels the grid pages through (1 for a flat layer).
pub fn channels(maps: &FeatureMaps) -> usize {
    match maps.shape[..] {
        [_, _, c] => c.max(1),
        _ => 1,
    }
}

/// How many channels one page shows in pane `area`.
pub fn per_page(area: Rect, maps: &FeatureMaps) -> usize {
    let inner = Rect {
        x: area.x + 1,
        y: area.y + 1,
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    };
    grid(inner, maps).map_or(1, |g| g.cols * g.rows)
}

/// The tiles' geometry in the pane's inner area.
#[derive(Clone, Copy, Debug)]
struct Grid {
    px_h: usize,
    px_w: usize,
    /// Tile size in cells.
    tile_w: u16,
    tile_h: u16,
    input_px_w: usize,
    cols: usize,
    rows: usize,
}

/// Picks the tile height that shows the most pixels of channels (more, smaller tiles against
/// fewer, larger ones): maps smaller than [`MIN_TILE_PX`] are only enlarged by whole factors,
/// larger ones only shrunk, never below 8 pixels.
fn grid(inner: Rect, maps: &FeatureMaps) -> Option<Grid> {
    let [h, w, c] = maps.shape[..] else {
        return None;
    };
    let (ih, iw) = match maps.input_shape[..] {
        [ih, iw, _] if ih > 0 && iw > 0 => (ih, iw),
        _ => (h.max(1), w.max(1)),
    };
    if h == 0 || w == 0 || inner.height == 0 {
        return None;
    }
    let max_px_h = 2 * usize::from(inner.height);
    let candidates: Vec<usize> = if h < MIN_TILE_PX {
        (1..=MIN_TILE_PX.div_ceil(h)).map(|k| h * k).collect()
    } else {
        (8.min(h)..=h).collect()
    };
    let layout = |px_h: usize| {
        let px_w = (w * px_h).div_ceil(h).max(1);
        let input_px_w = (iw * px_h).div_ceil(ih).max(1);
        let room = usize::from(inner.width).saturating_sub(input_px_w + 2);
        let cols = (room + 1) / (px_w + 1);
        let tile_h = px_h.div_ceil(2);
        let rows = ((usize::from(inner.height) + 1) / (tile_h + 1)).max(1);
        Grid {
            px_h,
            px_w,
            tile_w: px_w as u16,
            tile_h: tile_h as u16,
            input_px_w,
            cols,
            rows,
        }
    };
    let shown = |g: &Grid| (g.cols * g.rows).min(c) * g.px_h * g.px_w;
    candidates
        .into_iter()
        .filter(|&p| p <= max_px_h)
        .map(layout)
        .filter(|g| g.cols > 0)
        .max_by_key(|g| (shown(g), g.px_h))
        .or_else(|| Some(layout(max_px_h.clamp(1, h.max(1)))))
}

/// Renders the Feature maps pane.
pub fn render_feature_maps(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let selected = app.selected_node().map(|n| n.name.as_str());
    let Some(maps) = app.feature_maps.as_deref() else {
        let block = pane(app, Focus::FeatureMaps, title("Feature maps"));
        let inner = block.inner(area);
        block.render(area, buf);
        let text = if app.phase == Phase::Preparing {
            "shown once the model is ready"
        } else if app.phase == Phase::Inspecting {
            "need a sample image: the model names no data"
        } else {
            "waiting for the trainer…"
        };
        placeholder(inner, buf, text, theme.dim());
        return;
    };
    let c = channels(maps);
    let per = per_page(area, maps).max(1);
    let pages = c.div_ceil(per);
    let page = app.page.min(pages.saturating_sub(1));
    let first = page * per;
    let last = (first + per).min(c);
    let dims = maps
        .shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("×");
    let mut heading = match maps.view {
        View::Activations => format!("Feature maps · {} {dims}", maps.layer),
        View::Filters => format!("Filters · {} · patterns by gradient ascent", maps.layer),
        View::Heatmap => format!("Grad-CAM · {}", maps.layer),
        View::Augmented | View::ImageOps => maps.layer.clone(),
    };
    if maps.shape.len() == 3 && maps.view != View::Heatmap {
        heading += &format!(" · {}–{last} of {c}", first + 1);
    }
    let mut t = vec![Span::raw(format!(" {heading} "))];
    let stale = match maps.view {
        View::Activations | View::Filters => selected.is_some_and(|s| s != maps.layer),
        View::Heatmap | View::Augmented | View::ImageOps => false,
    };
    if stale || maps.view != app.view {
        t.push(Span::styled("(loading) ", theme.dim()));
    }
    let mut block = pane(app, Focus::FeatureMaps, Line::from(t));
    if pages > 1 {
        block = block
            .title_bottom(Line::from(format!(" ←/→ page {}/{pages} ", page + 1)).right_aligned());
    }
    let inner = block.inner(area);
    block.render(area, buf);
    match grid(inner, maps) {
        Some(g) => render_grid(theme, maps, &g, first, last, inner, buf),
        None => render_flat(theme, maps, inner, buf),
    }
}

fn render_grid(
    theme: &Theme,
    maps: &FeatureMaps,
    g: &Grid,
    first: usize,
    last: usize,
    inner: Rect,
    buf: &mut Buffer,
) {
    let input_w = render_input(theme, maps, g.px_h, g.input_px_w, inner, buf);
    let [h, w, c] = maps.shape[..] else {
        return;
    };
    let x0 = inner.x + input_w + 2;
    for (k, ch) in (first..last).enumerate() {
        let (col, row) = ((k % g.cols.max(1)) as u16, (k / g.cols.max(1)) as u16);
        let x = x0 + col * (g.tile_w + 1);
        let y = inner.y + row * (g.tile_h + 1);
        if x + g.tile_w > inner.right() || y + g.tile_h > inner.bottom() {
            break;
        }
        let value = |i: usize| maps.values.get(i * c + ch).copied().unwrap_or(0.0);
        let (lo, hi) =
            (0..h * w)
                .map(value)
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                    if v.is_finite() {
                        (lo.min(v), hi.max(v))
                    } else {
                        (lo, hi)
                    }
                });
        let span = if hi > lo { hi - lo } else { 1.0 };
        let sample =
            |py: usize, px: usize| (boxed(h, w, g.px_h, g.px_w, py, px, &value) - lo) / span;
        draw_tile(
            theme,
            x,
            y,
            g.px_h,
            g.px_w,
            &sample,
            &|v| theme.heat(v),
            buf,
        );
    }
}

/// The sample image at the left of `inner`, `px_h` pixels tall; returns its width in cells.
fn render_input(
    theme: &Theme,
    maps: &FeatureMaps,
    px_h: usize,
    px_w: usize,
    inner: Rect,
    buf: &mut Buffer,
) -> u16 {
    let [ih, iw, ic] = maps.input_shape[..] else {
        return 0;
    };
    if ih == 0 || iw == 0 || ic == 0 || maps.input.len() < ih * iw * ic {
        return 0;
    }
    let (lo, hi) = maps
        .input
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let channel = |ch: usize| {
        move |py: usize, px: usize| {
            let value = |i: usize| maps.input[i * ic + ch];
            (boxed(ih, iw, px_h, px_w, py, px, &value) - lo) / span
        }
    };
    let w = (px_w as u16).min(inner.width);
    if ic == 3 {
        let (r, gch, b) = (channel(0), channel(1), channel(2));
        let grey = |py: usize, px: usize| (r(py, px) + gch(py, px) + b(py, px)) / 3.0;
        // Colour per pixel: the tile is drawn from the grey value, coloured from the three.
        let rgb = |py: usize, px: usize| [r(py, px), gch(py, px), b(py, px)];
        draw_rgb_tile(
            theme,
            inner.x,
            inner.y,
            px_h,
            px_w.min(usize::from(w)),
            &grey,
            &rgb,
            buf,
        );
    } else {
        let grey = channel(0);
        draw_tile(
            theme,
            inner.x,
            inner.y,
            px_h,
            px_w.min(usize::from(w)),
            &grey,
            &|v| theme.pixel([v; 3]),
            buf,
        );
    }
    let tile_h = px_h.div_ceil(2) as u16;
    if tile_h < inner.height {
        let label = format!("label {}", maps.label);
        Line::styled(label, theme.dim()).render(
            Rect::new(inner.x, inner.y + tile_h, w.max(8).min(inner.width), 1),
            buf,
        );
    }
    w
}

/// The mean of the source pixels under target pixel (`py`, `px`) when an `h`×`w` map is drawn
/// `ph`×`pw` pixels large.
fn boxed(
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
    py: usize,
    px: usize,
    value: &dyn Fn(usize) -> f32,
) -> f32 {
    let (y0, x0) = (py * h / ph, px * w / pw);
    let (y1, x1) = (
        ((py + 1) * h / ph).max(y0 + 1).min(h),
        ((px + 1) * w / pw).max(x0 + 1).min(w),
    );
    let mut sum = 0.0;
    let mut n = 0usize;
    for y in y0..y1 {
        for x in x0..x1 {
            let v = value(y * w + x);
            if v.is_finite() {
                sum += v;
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { sum / n as f32 }
}

/// Draws a `ph`×`pw` pixel tile at cell (`x`, `y`): half blocks coloured by `color`, or ASCII
/// shades of the mean of each cell's two pixels.
#[allow(clippy::too_many_arguments)]
fn draw_tile(
    theme: &Theme,
    x: u16,
    y: u16,
    ph: usize,
    pw: usize,
    sample: &dyn Fn(usize, usize) -> f32,
    color: &dyn Fn(f32) -> Option<Color>,
    buf: &mut Buffer,
) {
    for row in 0..ph.div_ceil(2) {
        for px in 0..pw {
            let top = sample(2 * row, px);
            let bottom = (2 * row + 1 < ph).then(|| sample(2 * row + 1, px));
            let Some(cell) = buf.cell_mut((x + px as u16, y + row as u16)) else {
                continue;
            };
            match (theme.half_blocks(), color(top)) {
                (true, Some(fg)) => {
                    cell.set_symbol("▀").set_fg(fg);
                    cell.set_bg(bottom.and_then(color).unwrap_or(Color::Reset));
                }
                _ => {
                    let v = bottom.map_or(top, |b| (top + b) / 2.0);
                    cell.set_char(Theme::shade(v));
                }
            }
        }
    }
}

/// As [`draw_tile`] for an RGB image: colours from `rgb`, shades from `grey`.
#[allow(clippy::too_many_arguments)]
fn draw_rgb_tile(
    theme: &Theme,
    x: u16,
    y: u16,
    ph: usize,
    pw: usize,
    grey: &dyn Fn(usize, usize) -> f32,
    rgb: &dyn Fn(usize, usize) -> [f32; 3],
    buf: &mut Buffer,
) {
    if !theme.half_blocks() {
        draw_tile(theme, x, y, ph, pw, grey, &|_| None, buf);
        return;
    }
    for row in 0..ph.div_ceil(2) {
        for px in 0..pw {
            let top = theme.pixel(rgb(2 * row, px));
            let bottom = (2 * row + 1 < ph)
                .then(|| theme.pixel(rgb(2 * row + 1, px)))
                .flatten();
            if let Some(cell) = buf.cell_mut((x + px as u16, y + row as u16)) {
                cell.set_symbol("▀")
                    .set_fg(top.unwrap_or(Color::Reset))
                    .set_bg(bottom.unwrap_or(Color::Reset));
            }
        }
    }
}

/// A flat layer: bars for a few units (the output layer's class scores), a heat strip else.
fn render_flat(theme: &Theme, maps: &FeatureMaps, inner: Rect, buf: &mut Buffer) {
    let px_h = 2 * usize::from(inner.height.min(14));
    let iw = match maps.input_shape[..] {
        [ih, iw, _] if ih > 0 => (iw * px_h).div_ceil(ih),
        _ => 0,
    };
    let input_w = render_input(theme, maps, px_h, iw, inner, buf);
    let area = Rect {
        x: inner.x + input_w + 2,
        width: inner.width.saturating_sub(input_w + 2),
        ..inner
    };
    let v = &maps.values;
    if v.is_empty() || area.width < 4 || area.height == 0 {
        return;
    }
    let probabilities = v.iter().all(|x| (0.0..=1.0).contains(x));
    let (lo, hi) = v
        .iter()
        .filter(|x| x.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let norm = |x: f32| {
        if probabilities {
            x
        } else if hi > lo {
            (x - lo) / (hi - lo)
        } else {
            0.0
        }
    };
    let rows = usize::from(area.height);
    let cols = v.len().div_ceil(rows);
    let item_w = usize::from(area.width) / cols.max(1);
    if item_w >= 14 {
        let best = v
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        let digits = (v.len() - 1).to_string().len();
        for (i, &x) in v.iter().enumerate() {
            let (col, row) = (i / rows, i % rows);
            let bar_w = item_w.saturating_sub(digits + 9);
            let (done, rest) = theme.bar(f64::from(norm(x)), bar_w);
            let style = if i == best {
                theme.good()
            } else {
                theme.train_series()
            };
            let line = Line::from(vec![
                Span::styled(format!("{i:>digits$} "), theme.label()),
                Span::styled(done, style),
                Span::styled(rest, theme.dim()),
                Span::styled(format!(" {:>6}", short(f64::from(x))), theme.value()),
            ]);
            let x0 = area.x + (col * item_w) as u16;
            line.render(Rect::new(x0, area.y + row as u16, item_w as u16, 1), buf);
        }
        return;
    }
    // A heat strip: units row by row, two pixel rows per cell.
    let w = usize::from(area.width);
    let px_rows = v.len().div_ceil(w);
    let sample = |py: usize, px: usize| v.get(py * w + px).map_or(0.0, |&x| norm(x));
    let ph = px_rows.min(2 * rows);
    draw_tile(
        theme,
        area.x,
        area.y,
        ph,
        w,
        &sample,
        &|x| theme.heat(x),
        buf,
    );
}
