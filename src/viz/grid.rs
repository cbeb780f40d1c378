//! Pictures of tensors: a feature map's channels as a grid of tiles, colour maps (viridis for
//! activations, jet for heatmaps, as matplotlib draws them) and blending a heatmap over a photo.

use crate::data::image::{Filter, Image, Rounding, resize};

/// Tiles per grid row, as the Keras book lays out its activation grids.
pub const TILES_PER_ROW: usize = 16;
/// Tiles are enlarged (nearest neighbour) to at least this many pixels a side.
const MIN_TILE: usize = 48;
const GAP: usize = 2;

/// Colour stops of a map, evenly spaced over [0, 1].
type Stops = [[f32; 3]; 9];

/// matplotlib's viridis, sampled at nine points.
const VIRIDIS: Stops = [
    [68.0, 1.0, 84.0],
    [71.0, 44.0, 122.0],
    [59.0, 81.0, 139.0],
    [44.0, 113.0, 142.0],
    [33.0, 144.0, 141.0],
    [39.0, 173.0, 129.0],
    [92.0, 200.0, 99.0],
    [170.0, 220.0, 50.0],
    [253.0, 231.0, 37.0],
];

/// matplotlib's jet, sampled at nine points.
const JET: Stops = [
    [0.0, 0.0, 127.5],
    [0.0, 0.0, 255.0],
    [0.0, 127.5, 255.0],
    [0.0, 255.0, 255.0],
    [127.5, 255.0, 127.5],
    [255.0, 255.0, 0.0],
    [255.0, 127.5, 0.0],
    [255.0, 0.0, 0.0],
    [127.5, 0.0, 0.0],
];

fn colour(stops: &Stops, t: f32) -> [f32; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (stops.len() - 1) as f32;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f32;
    let (a, b) = (stops[i], stops[i + 1]);
    [0, 1, 2].map(|k| a[k] + (b[k] - a[k]) * f)
}

/// The viridis colour of `t` in [0, 1], on the 0–255 scale.
pub fn viridis(t: f32) -> [f32; 3] {
    colour(&VIRIDIS, t)
}

/// The jet colour of `t` in [0, 1], on the 0–255 scale.
pub fn jet(t: f32) -> [f32; 3] {
    colour(&JET, t)
}

/// Whether channel `k` of an `h × w × c` map is blank: the same value everywhere (for a ReLU
/// output, all zero — the filter saw nothing it responds to).
pub fn channel_is_blank(map: &[f32], c: usize, k: usize) -> bool {
    let mut values = map.iter().skip(k).step_by(c);
    let Some(&first) = values.next() else {
        return true;
    };
    values.all(|&v| (v - first).abs() <= 1e-6 * (1.0 + first.abs()))
}

/// The fraction of the map's channels that are blank.
pub fn blank_fraction(map: &[f32], c: usize) -> f64 {
    if c == 0 {
        return 0.0;
    }
    (0..c).filter(|&k| channel_is_blank(map, c, k)).count() as f64 / c as f64
}

/// Draws every channel of an `h × w × c` map as its own tile, normalised per channel to the
/// full colour range (blank channels stay at the bottom colour), [`TILES_PER_ROW`] to a row.
pub fn channel_grid(map: &[f32], h: usize, w: usize, c: usize) -> Image {
    let scale = MIN_TILE.div_ceil(h.max(w)).max(1);
    let tiles: Vec<Image> = (0..c)
        .map(|k| {
            let (lo, hi) = map
                .iter()
                .skip(k)
                .step_by(c)
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let range = if hi - lo > 1e-12 {
                hi - lo
            } else {
                f32::INFINITY
            };
            let mut img = Image::filled(w * scale, h * scale, 3, 0.0);
            for y in 0..h * scale {
                for x in 0..w * scale {
                    let v = map[((y / scale) * w + x / scale) * c + k];
                    let at = (y * img.width + x) * 3;
                    img.data[at..at + 3].copy_from_slice(&viridis((v - lo) / range));
                }
            }
            img
        })
        .collect();
    tile(&tiles, TILES_PER_ROW)
}

/// Tiles pictures of one size into a grid, `per_row` to a row, with a dark 2-pixel gap.
pub fn tile(images: &[Image], per_row: usize) -> Image {
    let Some(first) = images.first() else {
        return Image::filled(1, 1, 3, 0.0);
    };
    let (tw, th) = (first.width, first.height);
    let cols = images.len().clamp(1, per_row.max(1));
    let rows = images.len().div_ceil(cols);
    let width = cols * tw + (cols + 1) * GAP;
    let height = rows * th + (rows + 1) * GAP;
    let mut out = Image::filled(width, height, 3, 32.0);
    for (i, img) in images.iter().enumerate() {
        let (oy, ox) = (GAP + (i / cols) * (th + GAP), GAP + (i % cols) * (tw + GAP));
        for y in 0..th.min(img.height) {
            for x in 0..tw.min(img.width) {
                for k in 0..3 {
                    let v = img.at(y, x, k.min(img.channels - 1));
                    out.data[((oy + y) * width + ox + x) * 3 + k] = v;
                }
            }
        }
    }
    out
}

/// A heatmap (`h × w` values in [0, 1]) drawn in jet over `photo` at `opacity`, covering the
/// photo's rectangle `region` (left, top, right, bottom) — the part of the photo the network
/// saw — and nothing outside it. The heatmap is resized to the region with bilinear
/// interpolation. The result has the photo's size and is RGB.
pub fn overlay(
    photo: &Image,
    heat: &[f32],
    h: usize,
    w: usize,
    region: (usize, usize, usize, usize),
    opacity: f32,
) -> Image {
    let (left, top, right, bottom) = region;
    let (rw, rh) = (
        right.saturating_sub(left).max(1),
        bottom.saturating_sub(top).max(1),
    );
    let small = Image {
        width: w,
        height: h,
        channels: 1,
        data: heat.to_vec(),
    };
    let big = resize(&small, rw, rh, Filter::Bilinear, Rounding::None).unwrap_or(small);
    let mut out = Image::filled(photo.width, photo.height, 3, 0.0);
    for y in 0..photo.height {
        for x in 0..photo.width {
            let base: [f32; 3] = if photo.channels >= 3 {
                [0, 1, 2].map(|k| photo.at(y, x, k))
            } else {
                [photo.at(y, x, 0); 3]
            };
            let inside = (left..left + rw).contains(&x) && (top..top + rh).contains(&y);
            let rgb = if inside && big.width == rw {
                let t = big.data[(y - top) * rw + (x - left)];
                let c = jet(t);
                [0, 1, 2].map(|k| base[k] * (1.0 - opacity) + c[k] * opacity)
            } else {
                base
            };
            let at = (y * photo.width + x) * 3;
            out.data[at..at + 3].copy_from_slice(&rgb);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_maps_run_from_their_first_to_their_last_stop() {
        assert_eq!(viridis(0.0), VIRIDIS[0]);
        assert_eq!(viridis(1.0), VIRIDIS[8]);
        assert_eq!(jet(1.0), JET[8]);
        assert_eq!(jet(f32::NAN), JET[0]);
    }

    #[test]
    fn a_zero_channel_is_blank_and_a_varying_one_is_not() {
        // 2×2 map, 3 channels: channel 0 zero, channel 1 varying, channel 2 constant 5.
        let map = [0.0, 1.0, 5.0, 0.0, 2.0, 5.0, 0.0, 0.0, 5.0, 0.0, 3.0, 5.0];
        assert!(channel_is_blank(&map, 3, 0));
        assert!(!channel_is_blank(&map, 3, 1));
        assert!(channel_is_blank(&map, 3, 2));
        assert!((blank_fraction(&map, 3) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn the_grid_has_one_tile_per_channel_sixteen_to_a_row() {
        let (h, w, c) = (6, 6, 20);
        let map: Vec<f32> = (0..h * w * c).map(|i| (i % 7) as f32).collect();
        let g = channel_grid(&map, h, w, c);
        let tile = 6 * MIN_TILE.div_ceil(6);
        assert_eq!(g.width, 16 * tile + 17 * GAP);
        assert_eq!(g.height, 2 * tile + 3 * GAP);
    }

    #[test]
    fn overlay_keeps_the_photo_outside_the_region_and_tints_inside() {
        let photo = Image::filled(10, 8, 3, 100.0);
        let heat = vec![1.0; 4];
        let out = overlay(&photo, &heat, 2, 2, (2, 2, 6, 6), 0.4);
        assert_eq!((out.width, out.height), (10, 8));
        assert_eq!(
            [out.at(0, 0, 0), out.at(0, 0, 1), out.at(0, 0, 2)],
            [100.0; 3]
        );
        let red = out.at(3, 3, 0);
        assert!((red - (100.0 * 0.6 + 127.5 * 0.4)).abs() < 1e-3, "{red}");
    }
}
