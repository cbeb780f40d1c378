//! Gaussian blur, as scikit-image's `filters.gaussian` (SciPy's `ndimage.gaussian_filter`).
//!
//! The kernel is the sampled Gaussian `exp(−x² / 2σ²)` for `x = −r..=r`, normalised to sum to
//! one, applied along the rows' axis and then the columns' — separable, each channel on its own
//! (scikit-image's `channel_axis=-1`). The radius defaults to SciPy's and scikit-image's
//! `r = ⌊4σ + 0.5⌋` (`truncate = 4`): the kernel keeps all but ~6e-5 of the Gaussian's weight,
//! which is what someone comparing with SciPy expects — OpenCV's habit of a fixed small kernel
//! would be visibly weaker at large σ. A `kernel_size` (odd) overrides it: `r = (size − 1) / 2`.
//! The border defaults to scikit-image's `nearest`. Arithmetic is in `f64`, as scikit-image's on
//! an 8-bit image, so values are the same on the 0–255 scale up to the final `f32`.

use super::plane::{Border, Plane};
use super::{Image, ImageError};

/// Largest accepted σ: beyond it the kernel (8σ + 1 taps) would dwarf any picture.
pub const MAX_SIGMA: f32 = 1000.0;

/// The Gaussian's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gaussian {
    /// Standard deviation in pixels, 0 ≤ σ ≤ [`MAX_SIGMA`]; 0 leaves the image as it is.
    pub sigma: f32,
    /// Taps per axis, odd; `None` for `2⌊4σ + 0.5⌋ + 1`.
    pub kernel_size: Option<usize>,
    pub border: Border,
}

impl Gaussian {
    /// A Gaussian of `sigma` with the default kernel size and border.
    pub fn new(sigma: f32) -> Gaussian {
        Gaussian {
            sigma,
            kernel_size: None,
            border: Border::Nearest,
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ImageError::Parameter`] for a negative, non-finite or huge σ, or an even or zero
    /// kernel size.
    pub fn validate(&self) -> Result<(), ImageError> {
        if !(self.sigma.is_finite() && (0.0..=MAX_SIGMA).contains(&self.sigma)) {
            return Err(ImageError::parameter(
                "gaussian",
                "sigma",
                self.sigma,
                format!("give a standard deviation in pixels from 0 to {MAX_SIGMA}"),
            ));
        }
        if let Some(k) = self.kernel_size
            && (k == 0 || k % 2 == 0)
        {
            return Err(ImageError::parameter(
                "gaussian",
                "kernel size",
                k,
                "give an odd number of taps, 1 or more (e.g. 3, 5, 7)",
            ));
        }
        Ok(())
    }

    /// The kernel radius `r` (the kernel has `2r + 1` taps).
    pub fn radius(&self) -> usize {
        match self.kernel_size {
            Some(k) => k / 2,
            None => (4.0 * f64::from(self.sigma) + 0.5) as usize,
        }
    }

    /// The normalised taps, SciPy's `_gaussian_kernel1d(σ, 0, r)`.
    pub fn taps(&self) -> Vec<f64> {
        let r = self.radius() as isize;
        let s2 = f64::from(self.sigma) * f64::from(self.sigma);
        let phi: Vec<f64> = (-r..=r)
            .map(|x| (-0.5 / s2 * (x * x) as f64).exp())
            .collect();
        let sum: f64 = phi.iter().sum();
        phi.into_iter().map(|p| p / sum).collect()
    }

    /// Blurs one plane: down the columns, then along the rows (SciPy's axis order).
    pub fn blur_plane(&self, plane: &Plane) -> Plane {
        // SciPy skips an axis whose σ is (nearly) zero.
        if f64::from(self.sigma) <= 1e-15 {
            return plane.clone();
        }
        let taps = self.taps();
        plane
            .correlate1d(&taps, true, self.border)
            .correlate1d(&taps, false, self.border)
    }
}

/// Blurs every channel of `image` with `g`.
///
/// # Errors
/// As [`Gaussian::validate`].
pub fn gaussian(image: &Image, g: &Gaussian) -> Result<Image, ImageError> {
    g.validate()?;
    Ok(Plane::per_channel(image, |p| g.blur_plane(&p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_radius_truncates_at_four_sigma_as_scipy() {
        assert_eq!(Gaussian::new(1.0).radius(), 4);
        assert_eq!(Gaussian::new(2.0).radius(), 8);
        assert_eq!(Gaussian::new(0.6).radius(), 2); // ⌊2.9⌋
        let g = Gaussian {
            kernel_size: Some(5),
            ..Gaussian::new(3.0)
        };
        assert_eq!(g.taps().len(), 5);
    }

    #[test]
    fn taps_sum_to_one_and_are_symmetric() {
        let t = Gaussian::new(1.5).taps();
        assert!((t.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(t.len(), 13);
        for i in 0..t.len() {
            assert_eq!(t[i], t[t.len() - 1 - i]);
        }
    }

    #[test]
    fn a_constant_image_stays_constant_and_sigma_zero_is_identity() {
        let flat = Image::filled(7, 5, 3, 100.0);
        let out = gaussian(&flat, &Gaussian::new(2.0)).unwrap();
        assert!(out.data.iter().all(|&v| (v - 100.0).abs() < 1e-4));
        let mut img = Image::filled(4, 3, 1, 0.0);
        img.data[5] = 9.0;
        assert_eq!(gaussian(&img, &Gaussian::new(0.0)).unwrap(), img);
    }

    #[test]
    fn bad_parameters_say_the_valid_range() {
        let err = gaussian(&Image::filled(2, 2, 1, 0.0), &Gaussian::new(-1.0)).unwrap_err();
        assert!(
            err.to_string().contains("sigma = -1 is out of range"),
            "{err}"
        );
        let even = Gaussian {
            kernel_size: Some(4),
            ..Gaussian::new(1.0)
        };
        let err = even.validate().unwrap_err().to_string();
        assert!(err.contains("odd number of taps"), "{err}");
        assert!(Gaussian::new(f32::NAN).validate().is_err());
    }
}
