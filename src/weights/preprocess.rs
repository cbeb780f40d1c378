//! [`Preprocessing`]: how a photograph becomes a model's input, recorded with the weights it
//! belongs to (a network trained on torchvision's transform must see that transform).

use serde::{Deserialize, Serialize};

use crate::data::image::{Filter, Image, ImageError, Rounding, resize};

/// ImageNet's channel means and standard deviations (RGB, on the 0–1 scale).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// An image-to-input transform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Preprocessing {
    /// torchvision's ImageNet evaluation transform: resize the short side to `resize` (PIL's
    /// antialiased bilinear on 8-bit samples), centre-crop to the model's input as
    /// `CenterCrop` does (offsets `round((size − crop) / 2)`, half to even), /255, then
    /// normalise with [`IMAGENET_MEAN`] and [`IMAGENET_STD`].
    ImageNet { resize: usize },
    /// Resize to the model's input (bilinear) and multiply by `factor` (Keras's `rescale`).
    Rescale { factor: f32 },
}

impl Preprocessing {
    /// torchvision's transform for a model whose input is `h × w`: the short side resized to
    /// `floor(crop / 0.875)` (256 for 224, as torchvision and timm's `crop_pct` give).
    pub fn torchvision(h: usize, w: usize) -> Preprocessing {
        Preprocessing::ImageNet {
            resize: (h.min(w) as f64 / 0.875).floor() as usize,
        }
    }

    /// The per-channel `(mean, std)` a dataset's rescaled (0–1) samples are normalised with
    /// when they train or run a model holding these weights: ImageNet's for torchvision's
    /// transform, none for a plain rescale.
    pub fn normalisation(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        match self {
            Preprocessing::ImageNet { .. } => Some((IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec())),
            Preprocessing::Rescale { .. } => None,
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Preprocessing::ImageNet { resize } => format!(
                "torchvision ImageNet: resize short side to {resize} (bilinear), centre crop, /255, \
                 mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)"
            ),
            Preprocessing::Rescale { factor } => {
                format!("resize to the input (bilinear), multiply by {factor}")
            }
        }
    }

    /// Turns `img` into an `h × w × c` input (HWC, row-major).
    ///
    /// # Errors
    /// [`ImageError`] when the image is empty.
    pub fn apply(
        &self,
        img: &Image,
        (h, w, c): (usize, usize, usize),
    ) -> Result<Vec<f32>, ImageError> {
        let img = with_channels(img, c);
        match *self {
            Preprocessing::ImageNet { resize: short } => {
                let (iw, ih) = (img.width, img.height);
                let short = short.max(h).max(w);
                let (nw, nh) = if iw <= ih {
                    (short, (short as f64 * ih as f64 / iw as f64) as usize)
                } else {
                    ((short as f64 * iw as f64 / ih as f64) as usize, short)
                };
                let resized = resize(&img, nw, nh, Filter::Bilinear, Rounding::Bytes)?;
                let top = ((nh - h) as f64 / 2.0).round_ties_even() as usize;
                let left = ((nw - w) as f64 / 2.0).round_ties_even() as usize;
                let crop = resized.crop(left, top, left + w, top + h)?;
                Ok(normalise_imagenet(&crop))
            }
            Preprocessing::Rescale { factor } => {
                let resized = if (img.width, img.height) == (w, h) {
                    img
                } else {
                    resize(&img, w, h, Filter::Bilinear, Rounding::Bytes)?
                };
                Ok(resized.data.iter().map(|&v| v * factor).collect())
            }
        }
    }
}

/// `(v / 255 − mean) / std` per channel, in `f32` as torchvision computes it; channels beyond
/// three (none here) would reuse the last statistics.
pub fn normalise_imagenet(img: &Image) -> Vec<f32> {
    let c = img.channels;
    img.data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i % c).min(2);
            (v / 255.0 - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch]
        })
        .collect()
}

/// The image with `c` channels: grey repeated to RGB, RGB to grey with PIL's `convert("L")`
/// weights, alpha dropped.
fn with_channels(img: &Image, c: usize) -> Image {
    if img.channels == c {
        return img.clone();
    }
    let pixels = img.width * img.height;
    let mut data = Vec::with_capacity(pixels * c);
    for p in img.data.chunks_exact(img.channels.max(1)).take(pixels) {
        let grey = if p.len() >= 3 {
            (p[0] * 299.0 + p[1] * 587.0 + p[2] * 114.0) / 1000.0
        } else {
            p[0]
        };
        for k in 0..c {
            data.push(match (p.len() >= 3, c) {
                (_, 1) => grey,
                (true, _) => p[k.min(2)],
                (false, _) => p[0],
            });
        }
    }
    Image {
        width: img.width,
        height: img.height,
        channels: c,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_resizes_256_for_224() {
        assert_eq!(
            Preprocessing::torchvision(224, 224),
            Preprocessing::ImageNet { resize: 256 }
        );
    }

    #[test]
    fn imagenet_transform_gives_the_input_size_and_normalises() {
        let img = Image::filled(451, 300, 3, 255.0);
        let x = Preprocessing::ImageNet { resize: 256 }
            .apply(&img, (224, 224, 3))
            .expect("applies");
        assert_eq!(x.len(), 224 * 224 * 3);
        assert!((x[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
    }
}
