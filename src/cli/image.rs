//! `cnntui image OP IN OUT [options] [--show]`: one classic image operation on one file.
//!
//! Each operation is one variant of [`ImageCommand`] holding its own clap arguments (the common
//! input, output and display flags are [`Io`]); [`ImageCommand::op`] turns it into the
//! library's [`ImageOp`], so the command line and a model file's preprocessing steps run the
//! same code. Parameters are checked by the library (`ImageOp::validate`), whose errors say the
//! valid range; `main` prints them and exits with status 2. `--show` draws the result in the
//! terminal ([`show`]).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use cnntui::data::augment::{Affine, FillMode, apply_affine_transform};
use cnntui::data::image::{
    Border, Filter, Image, ImageError, ImageOp, KMEANS_ITERATIONS, KMeans, SobelOutput, kmeans,
};

// `cli.rs` is loaded through a `#[path]` attribute, so its submodules are named explicitly.
#[path = "image/show.rs"]
mod show;

/// The input, the output and how to display the result: every operation takes these.
#[derive(Debug, Args)]
pub struct Io {
    /// The picture to read: JPEG, PNG, BMP, GIF or WebP.
    pub input: PathBuf,
    /// Where to write the result; the format follows the extension (.png, .jpg, .bmp, …).
    pub output: PathBuf,
    /// Also draw the result in the terminal (colour half-blocks, fitted to the window).
    #[arg(long)]
    pub show: bool,
    /// With --show: plain ASCII shades instead of colour (also when NO_COLOR is set or the
    /// output is not a terminal).
    #[arg(long)]
    pub ascii: bool,
}

/// The operations of `cnntui image`.
#[derive(Debug, Subcommand)]
#[command(allow_negative_numbers = true)]
pub enum ImageCommand {
    /// ITU-R 601 luma, as Pillow's convert("L") and Keras's grayscale loading: one channel.
    Grey {
        #[command(flatten)]
        io: Io,
    },
    /// Resample to WIDTH × HEIGHT exactly as Pillow's Image.resize (antialiased when shrinking).
    #[command(allow_negative_numbers = true)]
    Resize {
        #[command(flatten)]
        io: Io,
        /// Output width in pixels.
        #[arg(long)]
        width: usize,
        /// Output height in pixels.
        #[arg(long)]
        height: usize,
        /// nearest, bilinear, bicubic, lanczos or area.
        #[arg(long, default_value = "bilinear", value_parser = by_name::<Filter>)]
        filter: Filter,
    },
    /// Gaussian blur per channel, as scikit-image's filters.gaussian.
    #[command(allow_negative_numbers = true)]
    Gaussian {
        #[command(flatten)]
        io: Io,
        /// Standard deviation in pixels.
        #[arg(long, default_value_t = 1.0)]
        sigma: f32,
        /// Taps per axis (odd); default 2·⌊4σ + 0.5⌋ + 1, SciPy's truncation at 4σ.
        #[arg(long, value_name = "K")]
        kernel_size: Option<usize>,
        /// How the edge is extended: nearest, reflect, mirror or constant (zeros).
        #[arg(long, default_value = "nearest", value_parser = by_name::<Border>)]
        border: Border,
    },
    /// Total-variation denoising per channel, as scikit-image's denoise_tv_chambolle.
    #[command(name = "tv-denoise", allow_negative_numbers = true)]
    TvDenoise {
        #[command(flatten)]
        io: Io,
        /// Denoising weight on the 0–1 intensity scale; greater is smoother.
        #[arg(long, default_value_t = 0.1)]
        weight: f64,
        /// Stop when the energy changes by less than eps times its first value.
        #[arg(long, default_value_t = 2e-4)]
        eps: f64,
        /// Most iterations.
        #[arg(long, default_value_t = 200)]
        max_iter: usize,
    },
    /// The lecture's 3×3 Sobel kernels by cnntui's convolution kernel: vertical, horizontal or
    /// their magnitude (stretched to 0–255 for viewing unless --raw).
    #[command(allow_negative_numbers = true)]
    Sobel {
        #[command(flatten)]
        io: Io,
        /// vertical, horizontal or magnitude (of the two).
        #[arg(long, default_value = "magnitude", value_parser = by_name::<SobelOutput>)]
        direction: SobelOutput,
        /// Write the responses as they are (clamped to 0–255) instead of stretching them.
        #[arg(long)]
        raw: bool,
    },
    /// Canny edges, as scikit-image's feature.canny: white edges on black.
    #[command(allow_negative_numbers = true)]
    Canny {
        #[command(flatten)]
        io: Io,
        /// Standard deviation of the Gaussian smoothing, in pixels.
        #[arg(long, default_value_t = 1.0)]
        sigma: f32,
        /// Low hysteresis threshold on the gradient magnitude (0–255 scale).
        #[arg(long, default_value_t = 25.5)]
        low: f64,
        /// High hysteresis threshold (0–255 scale), at least --low.
        #[arg(long, default_value_t = 51.0)]
        high: f64,
    },
    /// Colour segmentation by k-means of the pixels (k-means++ start): writes the quantised
    /// image and prints the palette.
    #[command(allow_negative_numbers = true)]
    Kmeans {
        #[command(flatten)]
        io: Io,
        /// Number of clusters (colours), 1–256.
        #[arg(short, long, default_value_t = 8)]
        k: usize,
        /// Seed of the k-means++ start.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Most Lloyd iterations.
        #[arg(long, default_value_t = KMEANS_ITERATIONS)]
        iterations: usize,
    },
    /// One affine warp, as Keras 3's `apply_affine_transform` on a channels-last image:
    /// `tx` moves content along columns and `ty` along rows (positive: left / up), a positive
    /// `theta` turns it counter-clockwise, zoom below 1 enlarges; bilinear, around the centre.
    #[command(allow_negative_numbers = true)]
    Affine {
        #[command(flatten)]
        io: Io,
        /// Rotation in degrees (counter-clockwise on screen).
        #[arg(long, default_value_t = 0.0)]
        theta: f64,
        /// Shift in pixels along columns (x).
        #[arg(long, default_value_t = 0.0)]
        tx: f64,
        /// Shift in pixels along rows (y).
        #[arg(long, default_value_t = 0.0)]
        ty: f64,
        /// Shear angle in degrees.
        #[arg(long, default_value_t = 0.0)]
        shear: f64,
        /// Zoom of the column coordinate (values below 1 enlarge).
        #[arg(long, default_value_t = 1.0)]
        zx: f64,
        /// Zoom of the row coordinate (values below 1 enlarge).
        #[arg(long, default_value_t = 1.0)]
        zy: f64,
        /// How samples outside the image are filled: nearest, constant, reflect or wrap.
        #[arg(long, default_value = "nearest")]
        fill: String,
        /// The fill value of `--fill constant`, on the 0–255 scale.
        #[arg(long, default_value_t = 0.0)]
        cval: f64,
    },
    /// Anything else: refused with the list of operations.
    #[command(external_subcommand)]
    Unknown(Vec<String>),
}

/// A name parsed by the library's `FromStr`, whose error lists the valid names.
fn by_name<T: std::str::FromStr<Err = ImageError>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: ImageError| e.to_string())
}

impl ImageCommand {
    /// The input and output flags.
    fn io(&self) -> Option<&Io> {
        match self {
            ImageCommand::Grey { io }
            | ImageCommand::Resize { io, .. }
            | ImageCommand::Gaussian { io, .. }
            | ImageCommand::TvDenoise { io, .. }
            | ImageCommand::Sobel { io, .. }
            | ImageCommand::Canny { io, .. }
            | ImageCommand::Kmeans { io, .. }
            | ImageCommand::Affine { io, .. } => Some(io),
            ImageCommand::Unknown(_) => None,
        }
    }

    /// The library operation this command runs.
    fn op(&self) -> Option<ImageOp> {
        Some(match *self {
            ImageCommand::Grey { .. } => ImageOp::Grey,
            ImageCommand::Resize {
                width,
                height,
                filter,
                ..
            } => ImageOp::Resize {
                width,
                height,
                interpolation: filter,
            },
            ImageCommand::Gaussian {
                sigma,
                kernel_size,
                border,
                ..
            } => ImageOp::Gaussian {
                sigma,
                kernel_size,
                border,
            },
            ImageCommand::TvDenoise {
                weight,
                eps,
                max_iter,
                ..
            } => ImageOp::TvDenoise {
                weight,
                eps,
                max_num_iter: max_iter,
            },
            ImageCommand::Sobel { direction, .. } => ImageOp::Sobel { direction },
            ImageCommand::Canny {
                sigma, low, high, ..
            } => ImageOp::Canny {
                sigma,
                low_threshold: low,
                high_threshold: high,
            },
            ImageCommand::Kmeans {
                k,
                seed,
                iterations,
                ..
            } => ImageOp::KMeans {
                k,
                seed,
                iterations,
            },
            ImageCommand::Affine { .. } | ImageCommand::Unknown(_) => return None,
        })
    }
}

/// The Keras warp of `cnntui image affine`, checked before the image is read.
fn affine(cmd: &ImageCommand, input: &std::path::Path) -> Result<Option<Image>> {
    let ImageCommand::Affine {
        theta,
        tx,
        ty,
        shear,
        zx,
        zy,
        fill,
        cval,
        ..
    } = cmd
    else {
        return Ok(None);
    };
    let fill: FillMode = fill.parse()?;
    let numbers = [
        ("--theta", theta),
        ("--tx", tx),
        ("--ty", ty),
        ("--shear", shear),
        ("--zx", zx),
        ("--zy", zy),
        ("--cval", cval),
    ];
    for (flag, v) in numbers {
        if !v.is_finite() {
            anyhow::bail!("{flag} must be a finite number, got {v}");
        }
    }
    let img = Image::open(input)?;
    let warp = Affine {
        theta: *theta,
        tx: *tx,
        ty: *ty,
        shear: *shear,
        zx: *zx,
        zy: *zy,
    };
    Ok(Some(apply_affine_transform(
        &img,
        &warp,
        fill,
        *cval as f32,
    )))
}

/// Runs one `cnntui image` command; returns the exit status.
pub fn run(cmd: &ImageCommand) -> Result<i32> {
    if let (Some(io), ImageCommand::Affine { .. }) = (cmd.io(), cmd) {
        if let Some(out) = affine(cmd, &io.input)? {
            out.save(&io.output)?;
            outln!(
                "affine: {} → {} ({}×{})",
                io.input.display(),
                io.output.display(),
                out.width,
                out.height
            )?;
            if io.show {
                out!("{}", show::render(&out, 80, 38, !colour_wanted(io)))?;
            }
        }
        return Ok(0);
    }
    let (Some(io), Some(op)) = (cmd.io(), cmd.op()) else {
        let given = match cmd {
            ImageCommand::Unknown(args) => args.first().cloned().unwrap_or_default(),
            _ => String::new(),
        };
        anyhow::bail!(
            "unknown image operation `{given}`; use one of: {}",
            ImageOp::NAMES
        );
    };
    // Check the parameters before reading anything.
    op.validate()?;
    let input = Image::open(&io.input)?;
    let mut out = match op {
        ImageOp::KMeans {
            k,
            seed,
            iterations,
        } => {
            let seg = kmeans(
                &input,
                &KMeans {
                    k,
                    seed,
                    iterations,
                },
            )?;
            print_palette(&seg, k, colour_wanted(io))?;
            seg.image
        }
        _ => op.apply(&input)?,
    };
    if let ImageCommand::Sobel {
        direction,
        raw: false,
        ..
    } = cmd
    {
        let factor = stretch(&mut out, *direction);
        outln!(
            "sobel: responses multiplied by {factor:.4} to fill 0–255 for viewing (--raw writes them as they are)"
        )?;
    }
    out.save(&io.output)?;
    outln!(
        "{}: {} → {} ({}×{}, {} channel{})",
        op.name(),
        io.input.display(),
        io.output.display(),
        out.width,
        out.height,
        out.channels,
        if out.channels == 1 { "" } else { "s" }
    )?;
    if io.show {
        let stdout = std::io::stdout();
        let (cols, rows) = if stdout.is_terminal() {
            crossterm::terminal::size().map_or((80, 24), |(c, r)| (c as usize, r as usize))
        } else {
            (80, 40)
        };
        let drawing = show::render(
            &out,
            cols,
            rows.saturating_sub(2).max(4),
            !colour_wanted(io),
        );
        out!("{drawing}")?;
    }
    Ok(0)
}

/// Colour output only on a terminal, without --ascii or NO_COLOR.
fn colour_wanted(io: &Io) -> bool {
    !io.ascii && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Stretches Sobel responses to 0–255 for viewing: a magnitude by `255 / max`, a signed
/// response around mid-grey by `127.5 / max |v|`. Returns the factor.
fn stretch(image: &mut Image, output: SobelOutput) -> f32 {
    let peak = image.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak == 0.0 {
        return 1.0;
    }
    match output {
        SobelOutput::Magnitude => {
            let f = 255.0 / peak;
            image.data.iter_mut().for_each(|v| *v *= f);
            f
        }
        SobelOutput::Vertical | SobelOutput::Horizontal => {
            let f = 127.5 / peak;
            image.data.iter_mut().for_each(|v| *v = 127.5 + *v * f);
            f
        }
    }
}

fn print_palette(seg: &cnntui::data::image::Segmentation, k: usize, colour: bool) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let how = if seg.converged {
        "converged"
    } else {
        "iteration limit reached"
    };
    writeln!(
        out,
        "kmeans: {} colours (k = {k}) after {} Lloyd iterations ({how})",
        seg.palette.len(),
        seg.iterations
    )
    .context("cannot write to stdout")?;
    writeln!(out, "   #  colour            hex       share").context("cannot write to stdout")?;
    for (i, c) in seg.palette.iter().enumerate() {
        let rgb: Vec<u8> = c
            .colour
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        let (r, g, b) = match rgb[..] {
            [r, g, b, ..] => (r, g, b),
            [v] | [v, _] => (v, v, v),
            [] => (0, 0, 0),
        };
        let swatch = if colour {
            format!(" {}", show::swatch(r, g, b))
        } else {
            String::new()
        };
        writeln!(
            out,
            "{:>4}  ({r:>3}, {g:>3}, {b:>3})   #{r:02x}{g:02x}{b:02x}  {:>6.2}%  {:>8} px{swatch}",
            i + 1,
            c.share * 100.0,
            c.pixels
        )
        .context("cannot write to stdout")?;
    }
    Ok(())
}
