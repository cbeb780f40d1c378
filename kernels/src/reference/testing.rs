//! Test support for the reference kernels: a tiny deterministic PRNG (splitmix64), central
//! finite differences, and tolerant comparisons. Test-only; no dependencies.

/// splitmix64 (Steele, Lea, Flood 2014): deterministic, good enough for test data.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    pub(crate) fn vec(&mut self, len: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..len).map(|_| self.uniform(lo, hi)).collect()
    }

    /// Values with `margin <= |v| < margin + 1` and a random sign: away from a kink at zero.
    pub(crate) fn away_from_zero(&mut self, len: usize, margin: f64) -> Vec<f64> {
        (0..len)
            .map(|_| {
                let v = margin + self.uniform(0.0, 1.0);
                if self.next_u64() & 1 == 0 { v } else { -v }
            })
            .collect()
    }

    /// `len` distinct values spaced `step` apart, shuffled, centred on zero.
    pub(crate) fn distinct(&mut self, len: usize, step: f64) -> Vec<f64> {
        let mut v: Vec<f64> = (0..len)
            .map(|i| (i as f64 - len as f64 / 2.0) * step)
            .collect();
        for i in (1..len).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central differences of `f` at `x`, step `h` (relative to `max(1, |x_i|)`).
pub(crate) fn numeric_grad(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut p = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * x[i].abs().max(1.0);
            p[i] = x[i] + h;
            let up = f(&p);
            p[i] = x[i] - h;
            let down = f(&p);
            p[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Asserts `|a - e| <= rtol · max(|a|, |e|) + atol` element-wise.
pub(crate) fn assert_close(what: &str, actual: &[f64], expect: &[f64], rtol: f64, atol: f64) {
    assert_eq!(actual.len(), expect.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expect).enumerate() {
        let tol = rtol * a.abs().max(e.abs()) + atol;
        assert!(
            (a - e).abs() <= tol,
            "{what}[{i}]: got {a}, expected {e} (tolerance {tol:e})"
        );
    }
}

/// Checks an analytic gradient against central finite differences of `f` at `x`.
pub(crate) fn assert_grad(what: &str, x: &[f64], analytic: &[f64], f: impl Fn(&[f64]) -> f64) {
    let numeric = numeric_grad(x, f);
    assert_close(what, analytic, &numeric, 1e-6, 1e-8);
}
