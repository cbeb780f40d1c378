//! [`Dataset`]: labelled images in memory, as every loader produces them and the trainer
//! consumes them, with the Keras-style operations on a whole dataset (`take`, `split_tail`).
//!
//! Must not depend on `ir` or `tui`, nor on any file format (the format readers depend on it).

use std::fmt;

use super::DataError;

/// Labelled images, all of one shape, in memory.
///
/// # Shapes
///
/// `images` holds `len()` images back to back, each `h * w * c` values in H-W-C order (NHWC
/// overall, as Keras); `labels[i]` is the class of image `i`, below `classes`. Loaders uphold
/// `images.len() == labels.len() * h * w * c`; code that builds a `Dataset` by hand must too.
#[derive(Clone, PartialEq)]
pub struct Dataset {
    /// `[h, w, c]` of one image.
    pub shape: [usize; 3],
    /// All images, NHWC, already rescaled by the loader.
    pub images: Vec<f32>,
    /// One class index per image.
    pub labels: Vec<u32>,
    /// The number of classes: one more than the largest label the loader saw.
    pub classes: usize,
}

impl Dataset {
    /// The number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values in one image: `h * w * c`.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Image `i`, `h * w * c` values in H-W-C order.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()` (an index is the caller's, not the user's).
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The first `limit` samples (all of them if there are fewer), for a quick run on part of a
    /// dataset.
    #[must_use]
    pub fn take(mut self, limit: usize) -> Dataset {
        let keep = limit.min(self.len());
        self.images.truncate(keep * self.image_len());
        self.labels.truncate(keep);
        self
    }

    /// Splits off the last `fraction` of the samples as a validation set, as Keras's
    /// `fit(validation_split=fraction)` does: the split is taken before any shuffling, at
    /// `floor(len * (1 - fraction))`, computed in `f64` as Keras computes it in Python floats.
    /// Returns `(training, validation)`; both keep `shape` and `classes`.
    ///
    /// Pass the fraction as the `f64` the user wrote: an `f32` widened to `f64` (`0.1_f32` is
    /// `0.10000000149…`) can move the split by one sample (53,999 instead of Keras's 54,000 of
    /// MNIST's 60,000).
    ///
    /// A `fraction` of 0 returns every sample for training and an empty validation set.
    ///
    /// # Errors
    ///
    /// [`DataError::BadFraction`] if `fraction` is not in `[0, 1)`;
    /// [`DataError::EmptySplit`] if a nonzero `fraction` leaves either set empty (Keras raises
    /// then too).
    pub fn split_tail(mut self, fraction: f64) -> Result<(Dataset, Dataset), DataError> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(DataError::BadFraction { fraction });
        }
        let samples = self.len();
        // Exact for any realistic sample count (below 2^53); the float-to-int cast saturates.
        let split_at = (samples as f64 * (1.0 - fraction)).floor() as usize;
        if fraction > 0.0 && (split_at == 0 || split_at >= samples) {
            return Err(DataError::EmptySplit { fraction, samples });
        }
        let split_at = split_at.min(samples);
        let validation = Dataset {
            shape: self.shape,
            images: self.images.split_off(split_at * self.image_len()),
            labels: self.labels.split_off(split_at),
            classes: self.classes,
        };
        Ok((self, validation))
    }
}

/// Summarises instead of printing every value (MNIST's training set is 47 million of them).
impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("shape", &self.shape)
            .field("len", &self.len())
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` 1×2×1 images; image `i` is `[i, i + 0.5]` with label `i % 3`.
    fn counting(n: usize) -> Dataset {
        Dataset {
            shape: [1, 2, 1],
            images: (0..n).flat_map(|i| [i as f32, i as f32 + 0.5]).collect(),
            labels: (0..n).map(|i| (i % 3) as u32).collect(),
            classes: 3,
        }
    }

    #[test]
    fn image_returns_one_sample_in_hwc_order() {
        let data = counting(4);
        assert_eq!(data.len(), 4);
        assert_eq!(data.image_len(), 2);
        assert_eq!(data.image(2), &[2.0, 2.5]);
    }

    #[test]
    fn take_keeps_the_first_samples() {
        let data = counting(5).take(2);
        assert_eq!(data.labels, [0, 1]);
        assert_eq!(data.images, [0.0, 0.5, 1.0, 1.5]);
        assert_eq!(counting(3).take(10), counting(3));
    }

    #[test]
    fn split_tail_moves_the_last_fraction_to_validation() {
        let (train, validation) = counting(10).split_tail(0.2).unwrap();
        assert_eq!(train.len(), 8);
        assert_eq!(validation.len(), 2);
        assert_eq!(validation.image(0), &[8.0, 8.5]);
        assert_eq!(validation.labels, [2, 0]);
        assert_eq!((validation.shape, validation.classes), ([1, 2, 1], 3));
    }

    #[test]
    fn split_tail_rounds_down_as_keras_does() {
        // Keras: split_at = int(math.floor(60000 * (1.0 - 0.1))) == 54000, and
        // int(math.floor(7 * (1.0 - 0.5))) == 3.
        let mnist_sized = Dataset {
            shape: [1, 1, 1],
            images: vec![0.0; 60_000],
            labels: vec![0; 60_000],
            classes: 1,
        };
        let (train, validation) = mnist_sized.split_tail(0.1).unwrap();
        assert_eq!((train.len(), validation.len()), (54_000, 6_000));
        let (train, validation) = counting(7).split_tail(0.5).unwrap();
        assert_eq!((train.len(), validation.len()), (3, 4));
    }

    #[test]
    fn split_tail_of_zero_keeps_everything_for_training() {
        let (train, validation) = counting(4).split_tail(0.0).unwrap();
        assert_eq!(train, counting(4));
        assert!(validation.is_empty());
    }

    #[test]
    fn split_tail_rejects_fractions_outside_zero_to_one() {
        for fraction in [-0.1, 1.0, 1.5, f64::NAN] {
            let err = counting(4).split_tail(fraction).unwrap_err();
            assert!(
                matches!(err, DataError::BadFraction { .. }),
                "{fraction}: {err:?}"
            );
        }
        assert_eq!(
            counting(4).split_tail(1.5).unwrap_err().to_string(),
            "validation split 1.5 is outside [0, 1); use a fraction such as 0.1"
        );
    }

    #[test]
    fn split_tail_rejects_a_fraction_that_empties_a_set() {
        // floor(4 * 0.1) == 0 training samples.
        assert_eq!(
            counting(4).split_tail(0.9).unwrap_err().to_string(),
            "validation split 0.9 of 4 samples leaves an empty training or validation set; use \
             more data or a different fraction"
        );
        // 1 - 1e-20 == 1 in f64: no validation samples.
        let err = counting(4).split_tail(1e-20).unwrap_err();
        assert!(
            matches!(err, DataError::EmptySplit { samples: 4, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn debug_summarises_instead_of_listing_values() {
        assert_eq!(
            format!("{:?}", counting(4)),
            "Dataset { shape: [1, 2, 1], len: 4, classes: 3, .. }"
        );
    }
}
