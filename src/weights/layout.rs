//! [`Layout`]: how a PyTorch tensor's elements are rearranged into a cnntui parameter.
//!
//! PyTorch keeps convolution weights OIHW, depthwise weights `[c·m, 1, k_h, k_w]` and linear
//! weights `[out, in]`, and flattens feature maps C-H-W; cnntui keeps Keras's HWIO,
//! `[k_h, k_w, c, m]`, `[in, out]` and flattens H-W-C.

/// A rearrangement from a PyTorch layout to cnntui's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Element for element (biases, batch-norm vectors, cnntui's own tensors).
    Same,
    /// `[c_out, c_in, k_h, k_w]` → `[k_h, k_w, c_in, c_out]`.
    ConvOihw,
    /// `[c·m, 1, k_h, k_w]` → `[k_h, k_w, c, m]` (output channel `ci·m + j` reads input `ci`
    /// in both).
    Depthwise,
    /// `[out, in]` (or `[out, in, 1, 1]`) → `[in, out]`.
    Linear,
    /// `[out, c·h·w]` (or `[out, c, h, w]`) whose input PyTorch flattened C-H-W → `[h·w·c, out]`
    /// for an input flattened H-W-C (Keras's `Flatten`).
    LinearChw { h: usize, w: usize, c: usize },
}

impl Layout {
    /// What this rearrangement is called in `cnntui weights`.
    pub fn describe(self) -> String {
        match self {
            Layout::Same => "as is".into(),
            Layout::ConvOihw => "OIHW → HWIO".into(),
            Layout::Depthwise => "depthwise [C,1,kh,kw] → [kh,kw,C,1]".into(),
            Layout::Linear => "[out,in] → [in,out]".into(),
            Layout::LinearChw { h, w, c } => {
                format!("[out,in] → [in,out], flatten C-H-W → H-W-C ({h}×{w}×{c})")
            }
        }
    }

    /// Rearranges `src` (row-major in the PyTorch shape `src_shape`) into the cnntui shape
    /// `dst_shape`. The shapes have been checked to correspond.
    pub fn apply(self, src: &[f32], src_shape: &[usize], dst_shape: &[usize]) -> Vec<f32> {
        match self {
            Layout::Same => src.to_vec(),
            Layout::ConvOihw => {
                let (co, ci, kh, kw) = (src_shape[0], src_shape[1], src_shape[2], src_shape[3]);
                let mut dst = vec![0.0; src.len()];
                for o in 0..co {
                    for c in 0..ci {
                        for i in 0..kh {
                            for j in 0..kw {
                                dst[((i * kw + j) * ci + c) * co + o] =
                                    src[((o * ci + c) * kh + i) * kw + j];
                            }
                        }
                    }
                }
                dst
            }
            Layout::Depthwise => {
                let (cm, kh, kw) = (src_shape[0], src_shape[2], src_shape[3]);
                let mut dst = vec![0.0; src.len()];
                for o in 0..cm {
                    for t in 0..kh * kw {
                        dst[t * cm + o] = src[o * kh * kw + t];
                    }
                }
                dst
            }
            Layout::Linear => {
                let (d_in, out) = (dst_shape[0], dst_shape[1]);
                let mut dst = vec![0.0; src.len()];
                for o in 0..out {
                    for i in 0..d_in {
                        dst[i * out + o] = src[o * d_in + i];
                    }
                }
                dst
            }
            Layout::LinearChw { h, w, c } => {
                let out = dst_shape[1];
                let d_in = h * w * c;
                let mut dst = vec![0.0; src.len()];
                for o in 0..out {
                    for y in 0..h {
                        for x in 0..w {
                            for ch in 0..c {
                                dst[((y * w + x) * c + ch) * out + o] =
                                    src[o * d_in + (ch * h + y) * w + x];
                            }
                        }
                    }
                }
                dst
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oihw_becomes_hwio() {
        // [2, 1, 1, 2]: o, c, i, j → value 10·o + j.
        let src = [0.0, 1.0, 10.0, 11.0];
        let dst = Layout::ConvOihw.apply(&src, &[2, 1, 1, 2], &[1, 2, 1, 2]);
        // [i, j, c, o]
        assert_eq!(dst, vec![0.0, 10.0, 1.0, 11.0]);
    }

    #[test]
    fn chw_flatten_becomes_hwc() {
        // One output, input 2×1×2 (h, w, c): PyTorch index (c·h + y)·w + x.
        let src = [0.0, 1.0, 2.0, 3.0]; // c0y0, c0y1, c1y0, c1y1
        let dst = Layout::LinearChw { h: 2, w: 1, c: 2 }.apply(&src, &[1, 4], &[4, 1]);
        assert_eq!(dst, vec![0.0, 2.0, 1.0, 3.0]); // y0c0, y0c1, y1c0, y1c1
    }

    #[test]
    fn linear_transposes() {
        let src = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [out 2, in 3]
        let dst = Layout::Linear.apply(&src, &[2, 3], &[3, 2]);
        assert_eq!(dst, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
