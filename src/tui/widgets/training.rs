//! The Training pane: the run's state in the title, epoch and batch gauges, the running loss
//! and accuracy (with validation and test figures), samples/s, the learning rate and an ETA
//! after the warm-up; the NaN alarm when the loss stops being finite; below, the loss and
//! accuracy charts side by side.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::alarm::render_alarm;
use super::chart::{MetricChart, render_chart};
use super::{fit, pane, short};
use crate::headless::keras_time;
use crate::ir::thousands;
use crate::tui::app::{App, Focus, Phase};

/// The spinner of the preparing view (ASCII, so every font has it).
const SPINNER: [&str; 4] = ["-", "\\", "|", "/"];

/// Renders the Training pane.
pub fn render_training(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let compiling = app
        .compiling
        .map(|(done, total)| format!("compiling kernels {}/{total}", done + 1));
    let (state, style) = match app.phase {
        _ if compiling.is_some() => (compiling.as_deref().unwrap_or_default(), theme.warn()),
        Phase::Preparing => ("preparing", theme.warn()),
        Phase::Ready => ("ready: press t", theme.key()),
        Phase::Training => match app.evaluating {
            Some(what) => (what, theme.good()),
            None => ("training", theme.good()),
        },
        Phase::Paused if app.alarm.is_some() => ("paused: loss not finite", theme.error()),
        Phase::Paused => ("paused", theme.warn()),
        Phase::Stopping => ("stopping…", theme.warn()),
        Phase::Inspecting => ("nothing to train", theme.warn()),
        Phase::Finished => match app.progress.finished {
            Some(f) if f.stopped_early => ("stopped", theme.warn()),
            _ => ("finished", theme.good()),
        },
    };
    let title = Line::from(vec![
        Span::raw(" Training · "),
        Span::styled(state, style.add_modifier(ratatui::style::Modifier::BOLD)),
        Span::raw(" "),
    ]);
    let mut block = pane(app, Focus::Training, title);
    if app.alarm.is_some() {
        block = block.border_style(theme.error());
    }
    let inner = block.inner(area);
    block.render(area, buf);
    if app.phase == Phase::Preparing {
        render_preparing(app, inner, buf);
        return;
    }
    if app.phase == Phase::Inspecting {
        let mut lines = vec![
            Line::styled("This model has no `train` section,", theme.label()),
            Line::styled("so there is nothing to train here.", theme.label()),
            Line::styled("Add `data`, `loss` and `optimizer`", theme.dim()),
            Line::styled("(see models/mnist.ron).", theme.dim()),
        ];
        if let Some(g) = &app.graph {
            lines.push(Line::from(""));
            lines.push(Line::from(vec![
                Span::styled("input ", theme.label()),
                Span::styled(g.input_shape().to_string(), theme.value()),
            ]));
            lines.push(Line::from(vec![
                Span::styled("output ", theme.label()),
                Span::styled(g.output_shape().to_string(), theme.value()),
            ]));
            let mb = g.total_params() as f64 * 4.0 / (1024.0 * 1024.0);
            lines.push(Line::from(vec![
                Span::styled("weights ", theme.label()),
                Span::styled(format!("{mb:.2} MB"), theme.value()),
                Span::styled(" (f32)", theme.dim()),
            ]));
        }
        ratatui::widgets::Paragraph::new(lines).render(inner, buf);
        return;
    }
    // The alarm takes the line of the rate, learning rate and ETA, and one line of the charts.
    let (alarm_h, figures_h) = if app.alarm.is_some() { (2, 1) } else { (0, 2) };
    let [gauges, alarm, figures, charts] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(alarm_h),
        Constraint::Length(figures_h),
        Constraint::Min(0),
    ])
    .areas(inner);
    render_gauges(app, gauges, buf);
    if let Some(a) = &app.alarm {
        render_alarm(theme, a, alarm, buf);
    }
    render_figures(app, figures, buf);
    render_charts(app, charts, buf);
}

fn render_preparing(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let spin = SPINNER[(app.ticks % SPINNER.len() as u64) as usize];
    let step = if app.graph.is_some() {
        "loading the data and checking the run"
    } else {
        "lowering the model"
    };
    let lines = vec![
        Line::from(vec![
            Span::styled("Preparing ", theme.label()),
            Span::styled(app.model_path.clone(), theme.value()),
        ]),
        Line::from(vec![
            Span::styled(format!("{spin} "), theme.key()),
            Span::styled(format!("{step}…"), theme.label()),
        ]),
    ];
    ratatui::widgets::Paragraph::new(lines).render(area, buf);
}

/// One gauge line: `label` padded, the bar, then `right`.
fn gauge_line<'a>(app: &App, label: String, fraction: f64, right: String, width: u16) -> Line<'a> {
    let theme = &app.theme;
    let label_w = 13;
    let right_w = right.chars().count() + 1;
    let bar_w = usize::from(width).saturating_sub(label_w + right_w + 1);
    let (done, rest) = theme.bar(fraction, bar_w);
    Line::from(vec![
        Span::styled(format!("{label:<label_w$}"), theme.label()),
        Span::styled(done, theme.good()),
        Span::styled(rest, theme.dim()),
        Span::raw(" "),
        Span::styled(right, theme.value()),
    ])
}

fn render_gauges(app: &App, area: Rect, buf: &mut Buffer) {
    let p = &app.progress;
    let done_epochs = if p.finished.is_some_and(|f| !f.stopped_early) {
        p.epochs
    } else {
        p.epoch + 1
    };
    let epoch = gauge_line(
        app,
        format!("Epoch {}/{}", done_epochs.min(p.epochs.max(1)), p.epochs),
        p.overall(),
        format!("{:>3.0}%", p.overall() * 100.0),
        area.width,
    );
    let batch_fraction = p.batch as f64 / p.batches.max(1) as f64;
    let w = p.batches.to_string().len();
    let batch = gauge_line(
        app,
        "Batch".to_string(),
        batch_fraction,
        format!("{:>w$}/{}", p.batch, p.batches),
        area.width,
    );
    let [a, b] = Layout::vertical([Constraint::Length(1); 2]).areas(area);
    epoch.render(a, buf);
    batch.render(b, buf);
}

fn metric<'a>(app: &App, name: &'a str, v: Option<f64>, style: Style) -> Vec<Span<'a>> {
    vec![
        Span::styled(format!("{name} "), app.theme.label()),
        Span::styled(v.map_or("—".to_string(), short), style),
    ]
}

fn render_figures(app: &App, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    let theme = &app.theme;
    let p = &app.progress;
    let w = usize::from(area.width);
    let sep = Span::styled("  ", theme.dim());
    // In order of interest: what is left out where the line is short comes last.
    let mut first = vec![
        metric(app, "loss", p.loss, theme.value()),
        metric(app, "acc", p.accuracy, theme.value()),
    ];
    if let Some((_, acc)) = p.test {
        first.push(metric(app, "test_acc", Some(acc), theme.good()));
    }
    if p.val_loss.is_some() {
        first.push(metric(app, "val_acc", p.val_accuracy, theme.val_series()));
        first.push(metric(app, "val_loss", p.val_loss, theme.val_series()));
    }
    let mut second = Vec::new();
    if let Some(f) = p.finished {
        second.push(vec![
            Span::styled("done in ", theme.label()),
            Span::styled(keras_time(f.seconds), theme.value()),
        ]);
    } else {
        let rate = p
            .samples_per_s
            .filter(|r| r.is_finite())
            .map_or("—".to_string(), |r| thousands(r.round() as usize));
        second.push(vec![
            Span::styled(rate, theme.value()),
            Span::styled(" samples/s", theme.label()),
        ]);
    }
    second.push(vec![
        Span::styled("lr ", theme.label()),
        Span::styled(format!("{:.1e}", p.learning_rate), theme.value()),
    ]);
    if p.finished.is_none() {
        let eta = match (app.phase, p.eta_seconds()) {
            (Phase::Training, Some(s)) => keras_time(s),
            _ => "—".to_string(),
        };
        second.push(vec![
            Span::styled("ETA ", theme.label()),
            Span::styled(eta, theme.value()),
        ]);
    }
    if !app.optimizer.is_empty() {
        second.push(vec![Span::styled(app.optimizer.clone(), theme.dim())]);
    }
    let mut lines = vec![fit(first, w, sep.clone())];
    if area.height > 1 {
        lines.push(fit(second, w, sep));
    }
    if app.phase == Phase::Ready && area.height > 1 {
        lines[1] = Line::from(vec![
            Span::styled("press ", theme.label()),
            Span::styled("t", theme.key()),
            Span::styled(" to start training", theme.label()),
        ]);
    }
    ratatui::widgets::Paragraph::new(lines).render(area, buf);
}

fn render_charts(app: &App, area: Rect, buf: &mut Buffer) {
    if area.height < 3 {
        return;
    }
    let [loss, acc] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)])
        .spacing(1)
        .areas(area);
    let x_max = app.progress.epochs.max(1) as f64;
    render_chart(
        &MetricChart {
            name: "loss",
            train: &app.curves.loss,
            val: &app.curves.val_loss,
            smooth: app.smooth,
            log: app.log_scale,
            x_max,
        },
        &app.theme,
        loss,
        buf,
    );
    render_chart(
        &MetricChart {
            name: "accuracy",
            train: &app.curves.accuracy,
            val: &app.curves.val_accuracy,
            smooth: app.smooth,
            log: false,
            x_max,
        },
        &app.theme,
        acc,
        buf,
    );
}
