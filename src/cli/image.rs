//! `cnntui image OP IN OUT [options]`: the image operations on one file, for looking at them
//! and for checking them against their references. Each operation is one [`ImageCommand`]
//! variant with its own arguments, and one function that runs it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use cnntui::data::augment::{Affine, FillMode, apply_affine_transform};
use cnntui::data::image::Image;

/// The image operations.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// One affine warp, as Keras 3's `apply_affine_transform` on a channels-last image:
    /// `tx` moves content along columns and `ty` along rows (positive: left / up), a positive
    /// `theta` turns it counter-clockwise, zoom below 1 enlarges; bilinear, around the centre.
    Affine(AffineArgs),
}

#[derive(Debug, clap::Args)]
pub struct AffineArgs {
    /// The input image (JPEG, PNG, BMP, GIF or WebP).
    input: PathBuf,
    /// The output image; the format follows the extension.
    output: PathBuf,
    /// Rotation in degrees (counter-clockwise on screen).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    theta: f64,
    /// Shift in pixels along columns (x).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    tx: f64,
    /// Shift in pixels along rows (y).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    ty: f64,
    /// Shear angle in degrees.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
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
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    cval: f64,
}

/// Runs one image command; the exit status on success.
pub fn run(cmd: ImageCommand) -> Result<i32> {
    match cmd {
        ImageCommand::Affine(args) => affine(&args),
    }
}

fn affine(args: &AffineArgs) -> Result<i32> {
    let fill: FillMode = args.fill.parse()?;
    let numbers = [
        ("--theta", args.theta),
        ("--tx", args.tx),
        ("--ty", args.ty),
        ("--shear", args.shear),
        ("--zx", args.zx),
        ("--zy", args.zy),
        ("--cval", args.cval),
    ];
    for (flag, v) in numbers {
        if !v.is_finite() {
            anyhow::bail!("{flag} must be a finite number, got {v}");
        }
    }
    let img = Image::open(&args.input)?;
    let warp = Affine {
        theta: args.theta,
        tx: args.tx,
        ty: args.ty,
        shear: args.shear,
        zx: args.zx,
        zy: args.zy,
    };
    apply_affine_transform(&img, &warp, fill, args.cval as f32).save(&args.output)?;
    Ok(0)
}
