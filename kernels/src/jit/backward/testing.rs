//! Test support for the backward and optimizer kernels: deterministic random data, buffers
//! surrounded by sentinel guard regions, and a runner that splits the work items over three
//! calls and checks that no guard was touched.

use crate::jit::{Jit, Kernel};

/// Floats of guard on each side of every buffer.
const GUARD: usize = 67;

/// A NaN payload no kernel produces.
const SENTINEL: u32 = 0x7FA5_5A5A;

/// splitmix64: deterministic test data.
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

    /// `len` values uniform in `[lo, hi)`, rounded to f32.
    pub(crate) fn vec(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..len)
            .map(|_| {
                let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                lo + (hi - lo) * unit
            })
            .collect()
    }
}

/// A buffer with sentinel guards on both sides.
pub(crate) struct Guarded {
    data: Vec<f32>,
    len: usize,
}

impl Guarded {
    pub(crate) fn new(values: &[f32]) -> Self {
        let mut data = vec![f32::from_bits(SENTINEL); values.len() + 2 * GUARD];
        data[GUARD..GUARD + values.len()].copy_from_slice(values);
        Guarded {
            data,
            len: values.len(),
        }
    }

    /// A buffer of `len` NaNs (an output the kernel must overwrite).
    pub(crate) fn output(len: usize) -> Self {
        Self::new(&vec![f32::NAN; len])
    }

    pub(crate) fn from_u32(values: &[u32]) -> Self {
        let v: Vec<f32> = values.iter().map(|&b| f32::from_bits(b)).collect();
        Self::new(&v)
    }

    pub(crate) fn ptr(&mut self) -> *mut u8 {
        self.data[GUARD..].as_mut_ptr().cast()
    }

    pub(crate) fn get(&self) -> &[f32] {
        &self.data[GUARD..GUARD + self.len]
    }

    fn guards_intact(&self) -> bool {
        let (head, rest) = self.data.split_at(GUARD);
        let tail = &rest[self.len..];
        head.iter().chain(tail).all(|v| v.to_bits() == SENTINEL)
    }
}

/// Compiles one kernel with `emit`.
pub(crate) fn compile(
    emit: impl FnOnce(&mut Jit) -> Result<usize, crate::jit::JitError>,
) -> (Kernel, usize) {
    let mut jit = Jit::new().expect("JIT available");
    let items = emit(&mut jit).expect("kernel compiles");
    let mut kernels = jit.finish().expect("kernel finalises");
    (kernels.remove(0), items)
}

/// Runs `kernel` over `items` work items in three calls of uneven ranges, then asserts that
/// no buffer's guard region was written.
pub(crate) fn run(kernel: &Kernel, bufs: &mut [&mut Guarded], items: usize) {
    let ptrs: Vec<*mut u8> = bufs.iter_mut().map(|b| b.ptr()).collect();
    let a = items / 3;
    let b = a + (items - a) / 2;
    for (s, e) in [(0, a), (a, b), (b, items)] {
        // SAFETY: every buffer is as large as the kernel's spec requires (the tests build
        // them from the same geometry), and the calls run one after another.
        unsafe { kernel.call(&ptrs, s, e) };
    }
    for (i, buf) in bufs.iter().enumerate() {
        assert!(
            buf.guards_intact(),
            "{}: buffer {i} guard written",
            kernel.name()
        );
    }
}

/// Asserts `|got - want| <= rtol·|want| + atol` element-wise.
pub(crate) fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&a, &e)) in got.iter().zip(want).enumerate() {
        let tol = rtol * e.abs() + atol;
        assert!(
            (a - e).abs() <= tol,
            "{what}[{i}]: got {a}, expected {e} (tolerance {tol:e})"
        );
    }
}
