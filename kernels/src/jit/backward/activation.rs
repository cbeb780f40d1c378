//! Activation backward from the activation's output `y`: ReLU (`dy` where `y > 0`), ReLU6
//! (where `0 < y < 6`), Linear, Sigmoid (`dy·y·(1 - y)`), Tanh (`dy·(1 - y²)`), in the
//! reference's operation order. Softmax is fused with its loss and is not emitted here.
//!
//! Must not depend on anything of the `cnntui` crate.

use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::condcodes::FloatCC;

use super::for_vector_items;
use crate::jit::{Jit, JitError};
use crate::reference::Activation;

/// Emits `dx = act'(y) ⊙ dy` over `len` elements (overwritten). Returns the number of work
/// items, `ceil(len / 4)`.
///
/// # Buffers
/// `y`, `dy`, `dx`: `len` f32 each (`dx` may alias `dy`).
///
/// # Work items
/// Item `i` is elements `4i .. min(4i + 4, len)`; the last item handles a tail of 1–3 lanes.
///
/// # Errors
/// [`JitError::Unsupported`] for Softmax or `len == 0`; [`JitError::Codegen`].
pub fn emit_activation_backward(
    jit: &mut Jit,
    name: &str,
    act: Activation,
    len: usize,
) -> Result<usize, JitError> {
    if act == Activation::Softmax || len == 0 {
        return Err(JitError::Unsupported(format!(
            "{act:?} backward over {len}"
        )));
    }
    let mut items = 0;
    jit.define(name, |e| {
        let bufs = [e.buffer(0), e.buffer(1), e.buffer(2)];
        let (zero, one, six) = (e.splat(0.0), e.splat(1.0), e.splat(6.0));
        items = for_vector_items(e, len, &bufs, |e, p, lanes| {
            let y = e.load_partial(p[0], 0, lanes);
            let dy = e.load_partial(p[1], 0, lanes);
            let dx = match act {
                Activation::ReLU => {
                    let on = e.mask(FloatCC::GreaterThan, y, zero);
                    e.b.ins().bitselect(on, dy, zero)
                }
                Activation::ReLU6 => {
                    let above = e.mask(FloatCC::GreaterThan, y, zero);
                    let below = e.mask(FloatCC::LessThan, y, six);
                    let on = e.b.ins().band(above, below);
                    e.b.ins().bitselect(on, dy, zero)
                }
                Activation::Sigmoid => {
                    let t = e.b.ins().fmul(dy, y);
                    let s = e.b.ins().fsub(one, y);
                    e.b.ins().fmul(t, s)
                }
                Activation::Tanh => {
                    let yy = e.b.ins().fmul(y, y);
                    let s = e.b.ins().fsub(one, yy);
                    e.b.ins().fmul(dy, s)
                }
                Activation::Linear | Activation::Softmax => dy,
            };
            e.store_partial(dx, p[2], 0, lanes);
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Guarded, Rng, assert_close, compile, run};
    use super::*;
    use crate::reference;
    use proptest::prelude::*;

    const ACTS: [Activation; 5] = [
        Activation::ReLU,
        Activation::ReLU6,
        Activation::Linear,
        Activation::Sigmoid,
        Activation::Tanh,
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn activation_backward_matches_the_reference(
            act in prop::sample::select(ACTS.to_vec()),
            len in 1usize..70,
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            // Outputs across every kink: below 0, 0 exactly, inside, 6 exactly, above 6.
            let mut y = rng.vec(len, -2.0, 8.0);
            y.iter_mut().step_by(5).for_each(|v| *v = 0.0);
            y.iter_mut().skip(2).step_by(7).for_each(|v| *v = 6.0);
            let dy = rng.vec(len, -1.0, 1.0);
            let mut want = vec![0.0; len];
            reference::activation_backward(act, len, &y, &dy, &mut want);
            let (k, items) = compile(|j| emit_activation_backward(j, "act", act, len));
            let (mut yb, mut dyb, mut dx) =
                (Guarded::new(&y), Guarded::new(&dy), Guarded::output(len));
            run(&k, &mut [&mut yb, &mut dyb, &mut dx], items);
            assert_close("dx", dx.get(), &want, 1e-6, 0.0);
        }
    }

    #[test]
    fn softmax_is_unsupported() {
        let mut jit = Jit::new().expect("JIT available");
        let err = emit_activation_backward(&mut jit, "sm", Activation::Softmax, 8);
        assert!(matches!(err, Err(JitError::Unsupported(_))));
    }
}
