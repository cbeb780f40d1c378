//! The training plot: loss and accuracy per epoch, training and validation, raw and smoothed,
//! as one PNG — what `cnntui plot HISTORY --out FILE` writes and what the trainer writes beside
//! every checkpoint (`history.png`).
//!
//! Drawn with `plotters` into an RGB buffer and encoded with the `image` crate (atomically, by
//! [`Image::save`]). Text uses DejaVu Sans, compiled into the binary from `fonts/`, so the plot
//! renders the same on a machine without system fonts. Smoothing is the exponential moving
//! average the Keras book applies to noisy curves (`smoothed = 0.8 · previous + 0.2 · point`);
//! raw curves are drawn thin and pale under the smoothed ones.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::data::image::{Image, ImageError};
use crate::runtime::History;

/// DejaVu Sans (Bitstream Vera licence, `fonts/LICENSE-DejaVu`).
const FONT: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
/// The weight of the previous smoothed point in the exponential moving average.
pub const SMOOTHING: f64 = 0.8;
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 480;

/// The plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("the history has no epochs yet; train for at least one epoch before plotting")]
    Empty,
    #[error("the compiled-in font could not be loaded ({0})")]
    Font(String),
    #[error("drawing the plot failed: {0}")]
    Draw(String),
    #[error(transparent)]
    Write(#[from] ImageError),
}

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

fn register_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "not a TrueType font".to_string())
        })
        .clone()
        .map_err(PlotError::Font)
}

/// The exponential moving average of `points` (the first point starts it).
pub fn smooth(points: &[f64], factor: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(points.len());
    for &p in points {
        let next = match out.last() {
            Some(&prev) => prev * factor + p * (1.0 - factor),
            None => p,
        };
        out.push(next);
    }
    out
}

/// One panel's curves: training and (if any) validation.
struct Panel<'a> {
    title: &'a str,
    /// Where the legend goes: away from where the curves usually end.
    legend: SeriesLabelPosition,
    train: &'a [f64],
    val: &'a [f64],
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    p: &Panel<'_>,
) -> Result<(), PlotError> {
    let n = p.train.len();
    let finite = p
        .train
        .iter()
        .chain(p.val)
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let x_range = 0.75..(n as f64 + 0.25);
    let mut chart = ChartBuilder::on(area)
        .caption(p.title, (FAMILY, 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, (lo - pad)..(hi + pad))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(p.title)
        .x_labels(n.clamp(2, 12))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(BLACK.mix(0.04))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(draw_err)?;
    let train_colour = RGBColor(31, 119, 180);
    let val_colour = RGBColor(255, 127, 14);
    for (name, values, colour) in [
        ("training", p.train, train_colour),
        ("validation", p.val, val_colour),
    ] {
        if values.is_empty() {
            continue;
        }
        let xy = |v: &[f64]| -> Vec<(f64, f64)> {
            v.iter()
                .enumerate()
                .map(|(i, &y)| ((i + 1) as f64, y))
                .filter(|(_, y)| y.is_finite())
                .collect()
        };
        let raw = xy(values);
        let smoothed = xy(&smooth(values, SMOOTHING));
        chart
            .draw_series(LineSeries::new(
                raw.clone(),
                colour.mix(0.35).stroke_width(1),
            ))
            .map_err(draw_err)?
            .label(format!("{name} (raw)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.mix(0.35)));
        chart
            .draw_series(
                raw.iter()
                    .map(|&pt| Circle::new(pt, 3, colour.mix(0.5).filled())),
            )
            .map_err(draw_err)?;
        chart
            .draw_series(LineSeries::new(smoothed, colour.stroke_width(3)))
            .map_err(draw_err)?
            .label(format!("{name} (smoothed)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .position(p.legend.clone())
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// Renders the history's loss and accuracy panels into a picture.
///
/// # Errors
/// [`PlotError::Empty`] for a history without epochs; [`PlotError::Font`] and
/// [`PlotError::Draw`] if plotting fails.
pub fn render_history(history: &History) -> Result<Image, PlotError> {
    if history.epochs() == 0 {
        return Err(PlotError::Empty);
    }
    register_font()?;
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut rgb = vec![0u8; w * h * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        draw_panel(
            &left,
            &Panel {
                title: "loss",
                legend: SeriesLabelPosition::UpperRight,
                train: &history.loss,
                val: &history.val_loss,
            },
        )?;
        draw_panel(
            &right,
            &Panel {
                title: "accuracy",
                legend: SeriesLabelPosition::LowerRight,
                train: &history.accuracy,
                val: &history.val_accuracy,
            },
        )?;
        root.present().map_err(draw_err)?;
    }
    Ok(Image {
        width: w,
        height: h,
        channels: 3,
        data: rgb.into_iter().map(f32::from).collect(),
    })
}

/// Renders the history and writes it as a PNG at `path` (atomically).
///
/// # Errors
/// As [`render_history`], and [`PlotError::Write`] naming the file.
pub fn write_history_plot(history: &History, path: &Path) -> Result<(), PlotError> {
    render_history(history)?.save(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(epochs: usize) -> History {
        let mut h = History::default();
        for e in 0..epochs {
            let t = e as f64;
            h.loss.push(1.0 / (1.0 + t));
            h.accuracy.push(0.5 + 0.4 * t / (epochs as f64));
            h.val_loss.push(1.1 / (1.0 + t) + 0.05 * t);
            h.val_accuracy.push(0.5 + 0.3 * t / (epochs as f64));
            h.learning_rate.push(1e-3);
        }
        h
    }

    #[test]
    fn smoothing_starts_at_the_first_point_and_lags_behind_a_step() {
        let s = smooth(&[0.0, 1.0, 1.0], 0.8);
        assert_eq!(s[0], 0.0);
        assert!((s[1] - 0.2).abs() < 1e-12);
        assert!((s[2] - 0.36).abs() < 1e-12);
    }

    #[test]
    fn the_plot_draws_both_panels_in_colour_with_text() {
        let img = render_history(&history(12)).unwrap();
        assert_eq!((img.width, img.height, img.channels), (1200, 480, 3));
        let px = |x: usize, y: usize| {
            let i = (y * img.width + x) * 3;
            (img.data[i], img.data[i + 1], img.data[i + 2])
        };
        let mut blue = [0usize; 2];
        let mut orange = [0usize; 2];
        let mut dark = 0usize;
        for y in 0..img.height {
            for x in 0..img.width {
                let (r, g, b) = px(x, y);
                let panel = usize::from(x >= img.width / 2);
                if (r, g, b) == (31.0, 119.0, 180.0) {
                    blue[panel] += 1;
                }
                if (r, g, b) == (255.0, 127.0, 14.0) {
                    orange[panel] += 1;
                }
                if r + g + b < 150.0 {
                    dark += 1;
                }
            }
        }
        // Both curves, training and validation, in both panels; and glyphs (dark pixels of
        // the captions, tick labels and axes) from the compiled-in font.
        assert!(
            blue.iter().all(|&n| n > 200),
            "training curve pixels per panel: {blue:?}"
        );
        assert!(
            orange.iter().all(|&n| n > 200),
            "validation curve pixels per panel: {orange:?}"
        );
        assert!(
            dark > 2_000,
            "only {dark} dark pixels: no text or axes drawn"
        );
    }

    #[test]
    fn one_epoch_without_validation_still_plots() {
        let mut h = history(1);
        h.val_loss.clear();
        h.val_accuracy.clear();
        assert!(render_history(&h).is_ok());
    }

    #[test]
    fn an_empty_history_is_refused() {
        assert!(matches!(
            render_history(&History::default()),
            Err(PlotError::Empty)
        ));
    }
}
