//! Element-wise kernels: the template the other emitters follow. A work item is one block of
//! 4 elements.

use super::{Emit, Jit, JitError};
use crate::reference::Activation;

/// Emits `y = act(x)` in place over `buffers[0]`, one work item per 4 elements (the caller
/// pads to a multiple of 4). Only the piecewise-linear activations; others are
/// [`JitError::Unsupported`].
///
/// # Errors
/// [`JitError::Unsupported`] for activations this emitter does not handle.
pub fn emit_activation_in_place(jit: &mut Jit, act: Activation) -> Result<(), JitError> {
    if !matches!(
        act,
        Activation::ReLU | Activation::ReLU6 | Activation::Linear
    ) {
        return Err(JitError::Unsupported(format!("in-place {act:?}")));
    }
    jit.define(&format!("activation_{act:?}"), |e: &mut Emit<'_, '_>| {
        let y = e.buffer(0);
        let zero = e.splat(0.0);
        let six = e.splat(6.0);
        e.for_items(|e, i| {
            let p = e.addr(y, i, 16);
            let v = e.load_f32x4(p, 0);
            let v = match act {
                Activation::ReLU => e.max(v, zero),
                Activation::ReLU6 => {
                    let v = e.max(v, zero);
                    e.min(v, six)
                }
                _ => v,
            };
            e.store(v, p, 0);
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu6_kernel_matches_the_reference_over_split_ranges() {
        let mut jit = Jit::new().expect("JIT available");
        emit_activation_in_place(&mut jit, Activation::ReLU6).unwrap();
        let kernels = jit.finish().unwrap();
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) * 0.3).collect();
        let mut want = x.clone();
        crate::reference::activation_in_place(Activation::ReLU6, 64, &mut want);
        let mut got = x.clone();
        let buffers = [got.as_mut_ptr().cast::<u8>()];
        // SAFETY: one buffer of 64 f32 = 16 work items, covered by two disjoint calls.
        unsafe {
            kernels[0].call(&buffers, 0, 7);
            kernels[0].call(&buffers, 7, 16);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn max_and_min_lower_to_single_instructions() {
        let mut jit = Jit::new().expect("JIT available");
        jit.keep_disasm();
        emit_activation_in_place(&mut jit, Activation::ReLU6).unwrap();
        let asm = jit.last_disasm().expect("disassembly kept").to_string();
        assert!(asm.contains("vmaxps") && asm.contains("vminps"), "{asm}");
    }
}
