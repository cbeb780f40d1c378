//! Drawing an image in the terminal: `▀` half-blocks whose foreground is the upper pixel and
//! whose background is the lower one (24-bit colour through crossterm), or ASCII shades when
//! colour is not wanted. The picture is shrunk (Pillow's area filter) to fit the given columns
//! and rows — never enlarged — keeping its aspect ratio, a character cell being two pixels
//! tall.

use crossterm::style::{Color, Print, ResetColor, SetBackgroundColor, SetForegroundColor};
use crossterm::{Command, queue};

use cnntui::data::image::{Filter, Image, Rounding, resize};

/// Dark to bright.
const SHADES: &[u8] = b" .:-=+*#%@";

/// The image drawn in at most `cols` columns and `rows` lines; `ascii` for plain shades.
pub fn render(image: &Image, cols: usize, rows: usize, ascii: bool) -> String {
    if image.width == 0 || image.height == 0 || cols == 0 || rows == 0 {
        return String::new();
    }
    let scale = (cols as f64 / image.width as f64)
        .min(2.0 * rows as f64 / image.height as f64)
        .min(1.0);
    let w = ((image.width as f64 * scale).round() as usize).clamp(1, cols);
    let h = ((image.height as f64 * scale).round() as usize).clamp(1, 2 * rows);
    let small = if (w, h) == (image.width, image.height) {
        image.clone()
    } else {
        match resize(image, w, h, Filter::Area, Rounding::Bytes) {
            Ok(small) => small,
            Err(_) => return String::new(),
        }
    };
    let bytes = small.to_u8();
    let c = small.channels;
    let rgb = |y: usize, x: usize| -> (u8, u8, u8) {
        let px = &bytes[(y * w + x) * c..(y * w + x + 1) * c];
        match *px {
            [r, g, b, ..] => (r, g, b),
            [v, ..] => (v, v, v),
            [] => (0, 0, 0),
        }
    };
    let mut out = String::new();
    for y in (0..h).step_by(2) {
        for x in 0..w {
            let top = rgb(y, x);
            let bottom = (y + 1 < h).then(|| rgb(y + 1, x));
            if ascii {
                let luma = |(r, g, b): (u8, u8, u8)| {
                    (u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114) / 1000
                };
                let l = match bottom {
                    Some(b) => (luma(top) + luma(b)) / 2,
                    None => luma(top),
                };
                let i = (l as usize * (SHADES.len() - 1) + 127) / 255;
                out.push(SHADES[i] as char);
            } else {
                push(&mut out, SetForegroundColor(colour(top)));
                match bottom {
                    Some(b) => push(&mut out, SetBackgroundColor(colour(b))),
                    None => push(&mut out, ResetColor),
                }
                if bottom.is_none() {
                    push(&mut out, SetForegroundColor(colour(top)));
                }
                out.push('▀');
            }
        }
        if !ascii {
            push(&mut out, ResetColor);
        }
        out.push('\n');
    }
    out
}

/// Two cells of solid colour, for a palette line.
pub fn swatch(r: u8, g: u8, b: u8) -> String {
    let mut out = String::new();
    let mut bytes = Vec::new();
    let _ = queue!(
        bytes,
        SetForegroundColor(colour((r, g, b))),
        Print("██"),
        ResetColor
    );
    out.push_str(&String::from_utf8_lossy(&bytes));
    out
}

fn colour((r, g, b): (u8, u8, u8)) -> Color {
    Color::Rgb { r, g, b }
}

fn push(out: &mut String, cmd: impl Command) {
    // Writing ANSI to a String cannot fail.
    let _ = cmd.write_ansi(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_rows_make_one_line_of_half_blocks_with_both_colours() {
        let img = Image {
            width: 1,
            height: 2,
            channels: 3,
            data: vec![255.0, 0.0, 0.0, 0.0, 0.0, 255.0],
        };
        let s = render(&img, 80, 24, false);
        assert_eq!(s.matches('▀').count(), 1);
        assert!(s.contains("38;2;255;0;0"), "{s:?}");
        assert!(s.contains("48;2;0;0;255"), "{s:?}");
        assert!(s.ends_with('\n'));
    }

    #[test]
    fn ascii_shades_black_to_white() {
        let img = Image {
            width: 2,
            height: 2,
            channels: 1,
            data: vec![0.0, 255.0, 0.0, 255.0],
        };
        assert_eq!(render(&img, 80, 24, true), " @\n");
    }

    #[test]
    fn a_large_picture_is_shrunk_to_the_window_keeping_its_aspect() {
        let img = Image::filled(400, 200, 3, 128.0);
        let s = render(&img, 40, 100, true);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 10); // 40 × 20 pixels, two per line
        assert!(lines.iter().all(|l| l.len() == 40));
        // A tall picture is limited by the rows instead.
        let tall = Image::filled(100, 400, 1, 0.0);
        assert_eq!(render(&tall, 80, 10, true).lines().count(), 10);
    }
}
