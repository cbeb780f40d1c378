//! A metric chart: the per-batch training curve and the per-epoch validation points overlaid,
//! x in epochs, with optional exponential smoothing of the training curve and a log-scale y
//! axis. Drawn with half blocks (every font has them, unlike Braille), or `*` in ASCII.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Widget};

use super::{placeholder, short};
use crate::tui::theme::Theme;

/// The weight of the past in the smoothed curve (as TensorBoard's smoothing slider; the lecture
/// uses 0.8 on epoch points, batches are noisier).
const SMOOTHING: f64 = 0.9;

/// What one chart shows.
pub struct MetricChart<'a> {
    pub name: &'a str,
    pub train: &'a [(f64, f64)],
    pub val: &'a [(f64, f64)],
    pub smooth: bool,
    pub log: bool,
    /// The x axis runs from 0 to this many epochs.
    pub x_max: f64,
}

/// Renders a chart with a one-line heading (name, latest value, the legend).
pub fn render_chart(c: &MetricChart, theme: &Theme, area: Rect, buf: &mut Buffer) {
    let [head, plot] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let mut train = if c.smooth {
        smoothed(c.train)
    } else {
        c.train.to_vec()
    };
    train = decimated(&train, usize::from(plot.width.max(1)) * 2);
    let mut val = c.val.to_vec();
    if c.log {
        for p in train.iter_mut().chain(val.iter_mut()) {
            p.1 = p.1.max(1e-12).log10();
        }
    }
    let latest = c.train.last().map(|p| p.1);
    let mut spans = vec![Span::styled(c.name.to_string(), theme.title())];
    if c.log {
        spans.push(Span::styled(" (log)", theme.dim()));
    }
    if c.smooth && !c.train.is_empty() {
        spans.push(Span::styled(" ~", theme.dim()));
    }
    if let Some(v) = latest.filter(|_| head.width >= 24) {
        spans.push(Span::styled(format!(" {}", short(v)), theme.value()));
    }
    let legend = [
        Span::styled(" ━train", theme.train_series()),
        Span::styled(" ━val", theme.val_series()),
    ];
    let used: usize = spans.iter().map(Span::width).sum();
    if used + legend.iter().map(Span::width).sum::<usize>() <= usize::from(head.width) {
        spans.extend(legend);
    }
    Line::from(spans).render(head, buf);
    let finite = |v: &[(f64, f64)]| v.iter().filter(|p| p.1.is_finite()).count();
    if finite(&train) + finite(&val) == 0 {
        placeholder(plot, buf, "no data yet", theme.dim());
        return;
    }
    let (mut lo, mut hi) = train
        .iter()
        .chain(&val)
        .filter(|p| p.1.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo, hi) = (lo - pad, hi + pad);
    let marker = if theme.ascii {
        Marker::Dot
    } else {
        Marker::HalfBlock
    };
    let datasets = vec![
        Dataset::default()
            .data(&train)
            .marker(marker)
            .graph_type(GraphType::Line)
            .style(theme.train_series()),
        Dataset::default()
            .data(&val)
            .marker(marker)
            .graph_type(if val.len() > 1 {
                GraphType::Line
            } else {
                GraphType::Scatter
            })
            .style(theme.val_series()),
    ];
    let label = |v: f64| {
        let v = if c.log { 10f64.powf(v) } else { v };
        Span::styled(short(v), theme.dim())
    };
    let labelled = plot.height >= 6 && plot.width >= 24;
    let mut x_axis = Axis::default().bounds([0.0, c.x_max]).style(theme.dim());
    let mut y_axis = Axis::default().bounds([lo, hi]).style(theme.dim());
    if labelled {
        x_axis = x_axis.labels([
            Span::styled("0", theme.dim()),
            Span::styled(format!("{} epochs", c.x_max), theme.dim()),
        ]);
        y_axis = y_axis.labels([label(lo + pad), label(hi - pad)]);
    }
    Chart::new(datasets)
        .x_axis(x_axis)
        .y_axis(y_axis)
        .legend_position(None)
        .render(plot, buf);
}

/// Exponential moving average, started at the first point.
fn smoothed(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut acc: Option<f64> = None;
    points
        .iter()
        .map(|&(x, y)| {
            let s = match acc {
                Some(a) if y.is_finite() => SMOOTHING * a + (1.0 - SMOOTHING) * y,
                Some(a) => a,
                None => y,
            };
            acc = Some(s);
            (x, s)
        })
        .collect()
}

/// At most `max` points: the means of equal runs of consecutive points.
fn decimated(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|c| {
            let n = c.len() as f64;
            let (sx, sy) = c.iter().fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
            (sx / n, sy / n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_starts_at_the_first_point_and_damps_noise() {
        let pts = [(0.0, 1.0), (1.0, 0.0), (2.0, 1.0)];
        let s = smoothed(&pts);
        assert_eq!(s[0].1, 1.0);
        assert!((s[1].1 - 0.9).abs() < 1e-12);
        assert!(s[2].1 > 0.9 && s[2].1 < 1.0);
    }

    #[test]
    fn decimation_keeps_at_most_max_points_and_their_mean() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64)).collect();
        let d = decimated(&pts, 5);
        assert_eq!(d.len(), 5);
        assert_eq!(d[0], (0.5, 0.5));
    }
}
