//! Colour segmentation: k-means of the pixels' colours (Lloyd's algorithm from a k-means++
//! start), replacing every pixel by its cluster's mean colour.
//!
//! k-means++ (Arthur & Vassilvitskii): the first centre is a pixel drawn uniformly, each next
//! one a pixel drawn with probability proportional to its squared distance to the nearest
//! centre so far. Lloyd's iterations then alternate assigning each pixel to its nearest centre
//! (the lower index on a tie) and moving each centre to its pixels' mean, until no assignment
//! changes, or the centres together move (sum of squared shifts) by no more than
//! [`TOLERANCE`] times the pixels' mean per-channel variance — scikit-learn's `KMeans` rule and
//! default — or `iterations` have run. A cluster that empties keeps its centre. Sums are `f64`
//! in pixel order and the generator is seeded SplitMix64, so a seed gives the same result on
//! every machine and thread count. An image with fewer distinct colours than `k` gets as many
//! clusters as it has colours.

use super::{Image, ImageError};

/// Relative tolerance on the centres' movement that ends Lloyd's iterations (scikit-learn's
/// `tol` default).
pub const TOLERANCE: f64 = 1e-4;

/// The parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KMeans {
    /// Clusters, 1 ≤ k ≤ [`KMeans::MAX_K`].
    pub k: usize,
    pub seed: u64,
    /// Most Lloyd iterations; ≥ 1.
    pub iterations: usize,
}

impl KMeans {
    /// Largest `k` accepted: a palette, not a copy of the picture.
    pub const MAX_K: usize = 256;

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ImageError::Parameter`] for `k` outside 1..=256 or zero iterations.
    pub fn validate(&self) -> Result<(), ImageError> {
        if !(1..=Self::MAX_K).contains(&self.k) {
            return Err(ImageError::parameter(
                "kmeans",
                "k",
                self.k,
                format!("give a number of clusters from 1 to {}", Self::MAX_K),
            ));
        }
        if self.iterations == 0 {
            return Err(ImageError::parameter(
                "kmeans",
                "iterations",
                0,
                "give at least 1",
            ));
        }
        Ok(())
    }
}

/// One cluster of the result.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// The mean colour, one value per channel (0–255 scale).
    pub colour: Vec<f32>,
    /// Pixels assigned to it.
    pub pixels: usize,
    /// `pixels` as a fraction of the image.
    pub share: f64,
}

/// The quantised image and its palette, largest cluster first.
#[derive(Clone, Debug, PartialEq)]
pub struct Segmentation {
    pub image: Image,
    pub palette: Vec<Cluster>,
    /// Lloyd iterations run.
    pub iterations: usize,
    /// Whether they stopped by convergence rather than the iteration limit.
    pub converged: bool,
}

/// SplitMix64: small, seedable, the same everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The nearest centre and its squared distance (lower index on a tie).
fn nearest(px: &[f64], centres: &[Vec<f64>]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (j, c) in centres.iter().enumerate() {
        let d = dist2(px, c);
        if d < best.1 {
            best = (j, d);
        }
    }
    best
}

/// k-means++ seeding.
fn seed_centres(pixels: &[Vec<f64>], k: usize, rng: &mut SplitMix64) -> Vec<Vec<f64>> {
    let n = pixels.len();
    let first = ((rng.unit() * n as f64) as usize).min(n - 1);
    let mut centres = vec![pixels[first].clone()];
    let mut d2: Vec<f64> = pixels.iter().map(|p| dist2(p, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = d2.iter().sum();
        if total <= 0.0 {
            break; // every pixel is a centre already: fewer colours than k
        }
        let target = rng.unit() * total;
        let mut acc = 0.0;
        let mut pick = n - 1;
        for (i, &d) in d2.iter().enumerate() {
            acc += d;
            if acc > target && d > 0.0 {
                pick = i;
                break;
            }
        }
        if d2[pick] <= 0.0 {
            // rounding ran past the end onto an existing centre: take the last nonzero
            pick = d2.iter().rposition(|&d| d > 0.0).unwrap_or(pick);
        }
        let c = pixels[pick].clone();
        for (p, d) in pixels.iter().zip(d2.iter_mut()) {
            *d = d.min(dist2(p, &c));
        }
        centres.push(c);
    }
    centres
}

/// Segments `image` into `params.k` colour clusters.
///
/// # Errors
/// As [`KMeans::validate`]; [`ImageError::EmptySize`] for an image without pixels.
pub fn kmeans(image: &Image, params: &KMeans) -> Result<Segmentation, ImageError> {
    params.validate()?;
    let c = image.channels;
    if image.data.is_empty() || c == 0 {
        return Err(ImageError::EmptySize {
            width: image.width,
            height: image.height,
        });
    }
    let pixels: Vec<Vec<f64>> = image
        .data
        .chunks_exact(c)
        .map(|px| px.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let mut rng = SplitMix64(params.seed);
    let mut centres = seed_centres(&pixels, params.k, &mut rng);
    let mut labels = vec![usize::MAX; pixels.len()];
    let tolerance = TOLERANCE * mean_variance(&pixels, c);
    let mut iterations = 0;
    let mut converged = false;
    while iterations < params.iterations {
        iterations += 1;
        let mut changed = false;
        for (px, label) in pixels.iter().zip(labels.iter_mut()) {
            let (j, _) = nearest(px, &centres);
            changed |= *label != j;
            *label = j;
        }
        if !changed {
            converged = true;
            break;
        }
        let mut sums = vec![vec![0.0f64; c]; centres.len()];
        let mut counts = vec![0usize; centres.len()];
        for (px, &j) in pixels.iter().zip(&labels) {
            counts[j] += 1;
            for (s, v) in sums[j].iter_mut().zip(px) {
                *s += v;
            }
        }
        let mut shift = 0.0;
        for ((centre, sum), &count) in centres.iter_mut().zip(sums).zip(&counts) {
            if count > 0 {
                let moved: Vec<f64> = sum.into_iter().map(|s| s / count as f64).collect();
                shift += dist2(centre, &moved);
                *centre = moved;
            }
        }
        if shift <= tolerance {
            converged = true;
            break;
        }
    }
    // The assignment to the final centres (a no-op when Lloyd converged).
    for (px, label) in pixels.iter().zip(labels.iter_mut()) {
        *label = nearest(px, &centres).0;
    }
    let mut counts = vec![0usize; centres.len()];
    for &j in &labels {
        counts[j] += 1;
    }
    let colours: Vec<Vec<f32>> = centres
        .iter()
        .map(|c| c.iter().map(|&v| v as f32).collect())
        .collect();
    let data = labels
        .iter()
        .flat_map(|&j| colours[j].iter().copied())
        .collect();
    let total = pixels.len() as f64;
    let mut palette: Vec<Cluster> = colours
        .into_iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(colour, pixels)| Cluster {
            colour,
            pixels,
            share: pixels as f64 / total,
        })
        .collect();
    palette.sort_by_key(|c| std::cmp::Reverse(c.pixels));
    Ok(Segmentation {
        image: Image { data, ..*image },
        palette,
        iterations,
        converged,
    })
}

/// The mean over channels of the pixels' variance per channel.
fn mean_variance(pixels: &[Vec<f64>], c: usize) -> f64 {
    let n = pixels.len() as f64;
    (0..c)
        .map(|ch| {
            let mean = pixels.iter().map(|p| p[ch]).sum::<f64>() / n;
            pixels.iter().map(|p| (p[ch] - mean).powi(2)).sum::<f64>() / n
        })
        .sum::<f64>()
        / c as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 pixels: 20 near red, 10 near blue, with small variations.
    fn two_colours() -> Image {
        let mut data = Vec::new();
        for i in 0..30 {
            let jitter = (i % 3) as f32;
            if i >= 20 {
                data.extend([10.0 + jitter, 20.0, 200.0 - jitter]);
            } else {
                data.extend([220.0 - jitter, 30.0 + jitter, 20.0]);
            }
        }
        Image {
            width: 6,
            height: 5,
            channels: 3,
            data,
        }
    }

    #[test]
    fn two_clusters_find_the_two_colours_and_their_shares() {
        let img = two_colours();
        let seg = kmeans(
            &img,
            &KMeans {
                k: 2,
                seed: 1,
                iterations: 20,
            },
        )
        .unwrap();
        assert_eq!(seg.palette.len(), 2);
        let shares: f64 = seg.palette.iter().map(|c| c.share).sum();
        assert!((shares - 1.0).abs() < 1e-12);
        assert!(seg.palette[0].colour[0] > 200.0 && seg.palette[1].colour[2] > 190.0);
        assert_eq!(seg.palette[0].pixels + seg.palette[1].pixels, 30);
        assert!(seg.converged && seg.iterations < 20);
        // Every output pixel is a palette colour.
        for px in seg.image.data.chunks_exact(3) {
            assert!(seg.palette.iter().any(|c| c.colour == px));
        }
    }

    #[test]
    fn a_seed_gives_the_same_result_every_time() {
        let img = two_colours();
        let p = KMeans {
            k: 3,
            seed: 42,
            iterations: 50,
        };
        assert_eq!(kmeans(&img, &p).unwrap(), kmeans(&img, &p).unwrap());
    }

    #[test]
    fn fewer_colours_than_k_give_fewer_clusters() {
        let img = Image::filled(4, 4, 3, 9.0);
        let seg = kmeans(
            &img,
            &KMeans {
                k: 5,
                seed: 0,
                iterations: 10,
            },
        )
        .unwrap();
        assert_eq!(seg.palette.len(), 1);
        assert_eq!(seg.image, img);
    }

    #[test]
    fn k_zero_says_the_valid_range() {
        let err = KMeans {
            k: 0,
            seed: 0,
            iterations: 10,
        }
        .validate()
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("k = 0 is out of range; give a number of clusters from 1 to 256")
        );
    }
}
