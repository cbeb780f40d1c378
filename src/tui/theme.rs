//! How the dashboard looks on a given terminal: the colour mode (true colour, 256 colours,
//! basic), plain-ASCII drawing for `--ascii` and `NO_COLOR`, the styles of the panes, the
//! colour maps of the feature maps, and the final pass that makes an ASCII frame truly ASCII.
//!
//! Pure: detection reads only the values it is given. Must not depend on `App`.

use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;
use ratatui::widgets::BorderType;

/// What colours the terminal can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMode {
    /// 24-bit colour (`COLORTERM=truecolor` or `24bit`).
    TrueColor,
    /// The xterm 256-colour palette (`TERM=*-256color`).
    Indexed,
    /// The 16 ANSI colours only: feature maps fall back to ASCII shades.
    Basic,
    /// No colour at all (`NO_COLOR`, `--ascii`).
    None,
}

/// The look of the dashboard: colour mode and whether to draw with ASCII only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    pub colors: ColorMode,
    /// Draw with printable ASCII only (no box drawing, blocks or arrows).
    pub ascii: bool,
}

/// ASCII shades from dark to light, for feature maps without half blocks.
const SHADES: &[u8] = b" .:-=+*#%@";

/// Viridis at five stops (matplotlib's default colour map): dark blue through green to yellow.
const VIRIDIS: [(f32, [u8; 3]); 5] = [
    (0.0, [68, 1, 84]),
    (0.25, [59, 82, 139]),
    (0.5, [33, 145, 140]),
    (0.75, [94, 201, 98]),
    (1.0, [253, 231, 37]),
];

impl Theme {
    /// The look for these settings: `ascii` (the `--ascii` flag), `no_color` (`NO_COLOR` set
    /// and not empty), and the `COLORTERM` and `TERM` variables.
    pub fn detect(
        ascii: bool,
        no_color: bool,
        colorterm: Option<&str>,
        term: Option<&str>,
    ) -> Self {
        if ascii || no_color {
            return Theme::ascii();
        }
        let colorterm = colorterm.unwrap_or("").to_ascii_lowercase();
        let term = term.unwrap_or("").to_ascii_lowercase();
        let colors = if colorterm == "truecolor"
            || colorterm == "24bit"
            || term.contains("direct")
            || term.contains("truecolor")
        {
            ColorMode::TrueColor
        } else if term.contains("256") {
            ColorMode::Indexed
        } else {
            ColorMode::Basic
        };
        Theme {
            colors,
            ascii: false,
        }
    }

    /// The look for this process's environment and the `--ascii` flag.
    pub fn from_env(ascii: bool) -> Self {
        let var = |k: &str| std::env::var(k).ok();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme::detect(
            ascii,
            no_color,
            var("COLORTERM").as_deref(),
            var("TERM").as_deref(),
        )
    }

    /// Plain ASCII, no colour.
    pub const fn ascii() -> Self {
        Theme {
            colors: ColorMode::None,
            ascii: true,
        }
    }

    /// Colour with half blocks, for tests and benchmarks.
    pub const fn truecolor() -> Self {
        Theme {
            colors: ColorMode::TrueColor,
            ascii: false,
        }
    }

    /// Whether feature maps are drawn with half blocks and colours (else with ASCII shades).
    pub fn half_blocks(&self) -> bool {
        !self.ascii && matches!(self.colors, ColorMode::TrueColor | ColorMode::Indexed)
    }

    fn color(&self, c: Color) -> Style {
        if self.colors == ColorMode::None {
            Style::default()
        } else {
            Style::default().fg(c)
        }
    }

    pub fn border(&self, focused: bool) -> Style {
        if focused {
            self.color(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            self.color(Color::DarkGray)
        }
    }

    pub fn border_type(&self, focused: bool) -> BorderType {
        if focused {
            BorderType::Thick
        } else {
            BorderType::Rounded
        }
    }

    /// Border characters of a pane (`+-|` when drawing ASCII; `=` marks the focused pane).
    pub fn border_set(&self, focused: bool) -> border::Set<'static> {
        match (self.ascii, focused) {
            (true, false) => ASCII_BORDER,
            (true, true) => ASCII_FOCUSED_BORDER,
            (false, f) => self.border_type(f).to_border_set(),
        }
    }

    pub fn title(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }

    pub fn dim(&self) -> Style {
        self.color(Color::DarkGray)
    }

    pub fn label(&self) -> Style {
        self.color(Color::Gray)
    }

    pub fn value(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }

    pub fn good(&self) -> Style {
        self.color(Color::Green)
    }

    pub fn warn(&self) -> Style {
        self.color(Color::Yellow)
    }

    pub fn error(&self) -> Style {
        self.color(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// The NaN alarm: reversed so it shows without colour too.
    pub fn alarm(&self) -> Style {
        self.color(Color::Red)
            .add_modifier(Modifier::BOLD | Modifier::REVERSED)
    }

    pub fn key(&self) -> Style {
        self.color(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// The training curve and the validation curve.
    pub fn train_series(&self) -> Style {
        self.color(Color::Cyan)
    }

    pub fn val_series(&self) -> Style {
        self.color(Color::Magenta)
    }

    pub fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    pub fn frozen(&self) -> Style {
        self.color(Color::Blue)
    }

    /// A progress bar `width` cells wide, `fraction` full: `█▌░` or `#.` in ASCII.
    pub fn bar(&self, fraction: f64, width: usize) -> (String, String) {
        let f = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let eighths = (f * width as f64 * 2.0).round() as usize;
        let (full, half) = (eighths / 2, eighths % 2 == 1);
        let (fill, part, empty) = if self.ascii {
            ('#', '#', '.')
        } else {
            ('█', '▌', '░')
        };
        let mut done: String = std::iter::repeat_n(fill, full).collect();
        if half {
            done.push(part);
        }
        let rest = width.saturating_sub(full + usize::from(half));
        (done, std::iter::repeat_n(empty, rest).collect())
    }

    /// The colour of an activation normalised to `[0, 1]` (viridis), or `None` when the
    /// terminal shows shades instead.
    pub fn heat(&self, v: f32) -> Option<Color> {
        let v = if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut rgb = VIRIDIS[4].1;
        for pair in VIRIDIS.windows(2) {
            let ((a, ca), (b, cb)) = (pair[0], pair[1]);
            if v <= b {
                let t = (v - a) / (b - a);
                let lerp = |i: usize| {
                    (f32::from(ca[i]) + (f32::from(cb[i]) - f32::from(ca[i])) * t).round() as u8
                };
                rgb = [lerp(0), lerp(1), lerp(2)];
                break;
            }
        }
        self.rgb(rgb)
    }

    /// The colour of an input pixel in `[0, 1]`: grey, or the pixel's colour for RGB images.
    pub fn pixel(&self, rgb: [f32; 3]) -> Option<Color> {
        let to = |v: f32| {
            (if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            } * 255.0)
                .round() as u8
        };
        self.rgb([to(rgb[0]), to(rgb[1]), to(rgb[2])])
    }

    fn rgb(&self, [r, g, b]: [u8; 3]) -> Option<Color> {
        match self.colors {
            _ if !self.half_blocks() => None,
            ColorMode::TrueColor => Some(Color::Rgb(r, g, b)),
            _ => Some(Color::Indexed(xterm_256(r, g, b))),
        }
    }

    /// The ASCII shade of an intensity in `[0, 1]`.
    pub fn shade(v: f32) -> char {
        let v = if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let i = (v * (SHADES.len() - 1) as f32).round() as usize;
        char::from(SHADES[i.min(SHADES.len() - 1)])
    }

    /// The last step of every frame: in ASCII mode, replaces each cell's symbol by an ASCII
    /// look-alike and drops its colours (keeping bold and reverse, which need no colour).
    pub fn finish(&self, buf: &mut Buffer) {
        if !self.ascii {
            return;
        }
        let area = buf.area;
        for y in area.top()..area.bottom() {
            for x in area.left()..area.right() {
                if let Some(cell) = buf.cell_mut((x, y)) {
                    let sym = cell.symbol();
                    if !sym.is_ascii() {
                        let ascii = to_ascii(sym);
                        cell.set_symbol(ascii);
                    }
                    cell.fg = Color::Reset;
                    cell.bg = Color::Reset;
                    cell.modifier &= Modifier::BOLD | Modifier::REVERSED;
                }
            }
        }
    }
}

const ASCII_BORDER: border::Set<'static> = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

const ASCII_FOCUSED_BORDER: border::Set<'static> = border::Set {
    top_left: "#",
    top_right: "#",
    bottom_left: "#",
    bottom_right: "#",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "=",
    horizontal_bottom: "=",
};

/// An ASCII look-alike of one cell's symbol.
fn to_ascii(sym: &str) -> &'static str {
    match sym {
        "─" | "╌" | "┄" | "╶" | "╴" => "-",
        "━" | "═" | "╺" | "╸" => "=",
        "│" | "┃" | "║" | "╎" | "┆" | "▕" | "▏" | "‖" => "|",
        "┌" | "┐" | "└" | "┘" | "╭" | "╮" | "╰" | "╯" | "├" | "┤" | "┬" | "┴" | "┼" | "┏" | "┓"
        | "┗" | "┛" | "┣" | "┫" | "┳" | "┻" | "╋" | "╔" | "╗" | "╚" | "╝" => {
            "+"
        }
        "█" | "▓" | "▉" | "▊" => "#",
        "▒" | "▌" | "▐" | "▋" => "+",
        "░" => ".",
        "▀" | "▄" | "▔" | "▁" | "▂" | "▃" | "▅" | "▆" | "▇" => ":",
        "•" | "●" | "◆" | "■" => "*",
        "·" | "…" => ".",
        "←" | "◀" => "<",
        "→" | "▶" | "▸" => ">",
        "↑" | "▲" => "^",
        "↓" | "▼" => "v",
        "✓" | "✔" => "y",
        "✗" | "✘" => "n",
        "⚠" => "!",
        "×" => "x",
        "–" | "—" | "−" => "-",
        "Δ" => "d",
        "␣" => "_",
        "" => "",
        _ => "?",
    }
}

/// The nearest colour of xterm's 6×6×6 cube or its grey ramp.
fn xterm_256(r: u8, g: u8, b: u8) -> u8 {
    const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    let nearest = |v: u8| {
        LEVELS
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| (i32::from(**l) - i32::from(v)).abs())
            .map_or(0, |(i, _)| i as u8)
    };
    let (ri, gi, bi) = (nearest(r), nearest(g), nearest(b));
    let cube = [
        LEVELS[ri as usize],
        LEVELS[gi as usize],
        LEVELS[bi as usize],
    ];
    let grey_level = ((u32::from(r) + u32::from(g) + u32::from(b)) / 3) as u8;
    let grey_index = (u32::from(grey_level.saturating_sub(8)) / 10).min(23) as u8;
    let grey = 8 + 10 * grey_index;
    let dist = |c: [u8; 3]| -> u32 {
        c.iter()
            .zip([r, g, b])
            .map(|(&a, b)| (i32::from(a) - i32::from(b)).unsigned_abs().pow(2))
            .sum()
    };
    if dist([grey, grey, grey]) < dist(cube) {
        232 + grey_index
    } else {
        16 + 36 * ri + 6 * gi + bi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_or_ascii_flag_means_plain_ascii() {
        let t = Theme::detect(false, true, Some("truecolor"), Some("xterm-256color"));
        assert_eq!(t, Theme::ascii());
        let t = Theme::detect(true, false, Some("truecolor"), None);
        assert_eq!(t, Theme::ascii());
    }

    #[test]
    fn colour_mode_falls_back_from_true_colour_to_256_to_basic() {
        let t = |ct, term| Theme::detect(false, false, ct, term).colors;
        assert_eq!(t(Some("truecolor"), Some("xterm")), ColorMode::TrueColor);
        assert_eq!(t(None, Some("tmux-256color")), ColorMode::Indexed);
        assert_eq!(t(None, Some("screen")), ColorMode::Basic);
        assert!(!Theme::detect(false, false, None, Some("linux")).half_blocks());
    }

    #[test]
    fn xterm_palette_picks_grey_ramp_for_greys_and_cube_for_colours() {
        assert_eq!(xterm_256(0, 0, 0), 16);
        assert_eq!(xterm_256(255, 0, 0), 196);
        assert!((232..=255).contains(&xterm_256(128, 128, 128)));
    }

    #[test]
    fn bars_fill_proportionally_and_stay_ascii_in_ascii_mode() {
        let (done, rest) = Theme::ascii().bar(0.5, 10);
        assert_eq!(format!("{done}{rest}"), "#####.....");
        let (done, rest) = Theme::truecolor().bar(1.0, 4);
        assert_eq!((done.as_str(), rest.as_str()), ("████", ""));
        let (done, rest) = Theme::truecolor().bar(f64::NAN, 3);
        assert_eq!((done.as_str(), rest.chars().count()), ("", 3));
    }

    #[test]
    fn shades_run_from_blank_to_dense() {
        assert_eq!(Theme::shade(0.0), ' ');
        assert_eq!(Theme::shade(1.0), '@');
        assert_eq!(Theme::shade(f32::NAN), ' ');
    }
}
