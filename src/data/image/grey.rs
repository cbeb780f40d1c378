//! Grey (luma) conversion, ITU-R 601-2 as Pillow's `convert("L")` and Keras's
//! `load_img(color_mode="grayscale")` (which calls Pillow) do it.
//!
//! Pillow computes `L = (19595·R + 38470·G + 7471·B + 0x8000) >> 16` on 8-bit samples: the
//! weights 0.299, 0.587, 0.114 in 16-bit fixed point, rounded half up. An image whose samples
//! are all whole numbers in 0–255 (a decoded file) gets exactly those bytes. An image holding
//! other values (the output of a filter) gets the float form, `0.299·R + 0.587·G + 0.114·B`
//! unrounded — Pillow's conversion of a float (`F`) image.

use super::Image;

/// The luma of `image`: one channel. A grey image is returned unchanged; alpha is ignored.
pub fn grey(image: &Image) -> Image {
    if image.channels < 3 {
        let data = image
            .data
            .chunks_exact(image.channels)
            .map(|px| px[0])
            .collect();
        return Image {
            data,
            channels: 1,
            ..*image
        };
    }
    let bytes = image
        .data
        .iter()
        .all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0);
    let data = image
        .data
        .chunks_exact(image.channels)
        .map(|px| {
            if bytes {
                let (r, g, b) = (px[0] as u32, px[1] as u32, px[2] as u32);
                ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as f32
            } else {
                0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2]
            }
        })
        .collect();
    Image {
        data,
        channels: 1,
        ..*image
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(pixels: &[[f32; 3]]) -> Image {
        Image {
            width: pixels.len(),
            height: 1,
            channels: 3,
            data: pixels.iter().flatten().copied().collect(),
        }
    }

    #[test]
    fn primaries_get_pillows_rounded_weights() {
        let out = grey(&rgb(&[
            [255.0, 0.0, 0.0],
            [0.0, 255.0, 0.0],
            [0.0, 0.0, 255.0],
            [255.0, 255.0, 255.0],
            [1.0, 1.0, 1.0],
        ]));
        // 0.299·255 = 76.245, 0.587·255 = 149.685, 0.114·255 = 29.07.
        assert_eq!(out.data, vec![76.0, 150.0, 29.0, 255.0, 1.0]);
        assert_eq!(out.channels, 1);
    }

    #[test]
    fn fractional_values_use_the_float_weights() {
        let out = grey(&rgb(&[[0.5, 0.5, 0.5], [10.0, 20.0, 30.5]]));
        assert!((out.data[0] - 0.5).abs() < 1e-6);
        assert!((out.data[1] - (2.99 + 11.74 + 0.114 * 30.5)).abs() < 1e-4);
    }

    #[test]
    fn grey_input_is_unchanged_and_alpha_is_ignored() {
        let g = Image::filled(3, 2, 1, 7.0);
        assert_eq!(grey(&g), g);
        let rgba = Image {
            width: 1,
            height: 1,
            channels: 4,
            data: vec![0.0, 255.0, 0.0, 3.0],
        };
        assert_eq!(grey(&rgba).data, vec![150.0]);
    }
}
