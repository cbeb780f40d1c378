//! Losses and the accuracy metric, as Keras computes them.
//!
//! When the output layer ends in softmax (for the cross-entropies) or sigmoid (for binary
//! cross-entropy), the loss is computed from the logits, as Keras does for such outputs; its
//! gradient then starts backward at the pre-activation ([`OutputLink::Logits`]). Otherwise the
//! probabilities are clipped to [1e-7, 1 − 1e-7] as in Keras.

use cnntui_kernels::reference::{self as k, Activation};

use super::OutputLink;
use crate::ir::Graph;
use crate::model::LossSpec;

/// The loss of a model: its kind and how it meets the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    pub spec: LossSpec,
    pub link: OutputLink,
    pub classes: usize,
}

/// The result of a loss evaluation on one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchLoss {
    /// Sum over the batch of per-sample losses.
    pub loss_sum: f64,
    /// Correctly classified samples.
    pub correct: usize,
}

impl Loss {
    pub fn new(spec: LossSpec, graph: &Graph) -> Self {
        let out = &graph.nodes[graph.output];
        let act = out.op.activation();
        let link = match (spec, act) {
            (
                LossSpec::CategoricalCrossentropy | LossSpec::SparseCategoricalCrossentropy,
                Some(Activation::Softmax),
            ) => OutputLink::Logits,
            (LossSpec::BinaryCrossentropy, Some(Activation::Sigmoid)) => OutputLink::Logits,
            _ => OutputLink::Output,
        };
        Loss {
            spec,
            link,
            classes: graph.output_shape().elems(),
        }
    }

    /// Loss over a batch of `labels` and, when `grad` is given, the gradient of the mean loss
    /// with respect to the logits or the output (see [`OutputLink`]). `logits` may be empty
    /// under [`OutputLink::Output`].
    pub fn evaluate(
        &self,
        output: &[f32],
        logits: &[f32],
        labels: &[u32],
        grad: Option<&mut Vec<f32>>,
    ) -> BatchLoss {
        let n = labels.len();
        let c = self.classes;
        let mut scratch = Vec::new();
        let grad = grad.unwrap_or(&mut scratch);
        grad.resize(n * c, 0.0);
        let mut probs = vec![0.0; n * c];
        let loss_sum = match (self.spec, self.link) {
            (LossSpec::BinaryCrossentropy, OutputLink::Logits) => {
                let targets: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
                k::sigmoid_binary_cross_entropy(n, &logits[..n], &targets, &mut probs, grad)
            }
            (LossSpec::BinaryCrossentropy, OutputLink::Output) => {
                let targets: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
                probs.copy_from_slice(&output[..n * c]);
                k::binary_cross_entropy_probs(n, &output[..n * c], &targets, grad)
            }
            (_, OutputLink::Logits) => {
                let onehot = one_hot(labels, c);
                k::softmax_cross_entropy(n, c, &logits[..n * c], &onehot, &mut probs, grad)
            }
            (_, OutputLink::Output) => {
                let onehot = one_hot(labels, c);
                probs.copy_from_slice(&output[..n * c]);
                k::categorical_cross_entropy_probs(n, c, &output[..n * c], &onehot, grad)
            }
        };
        BatchLoss {
            loss_sum: f64::from(loss_sum),
            correct: correct(&probs, labels, c),
        }
    }
}

fn one_hot(labels: &[u32], c: usize) -> Vec<f32> {
    let mut out = vec![0.0; labels.len() * c];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(x) = out.get_mut(i * c + l as usize) {
            *x = 1.0;
        }
    }
    out
}

/// Keras's `accuracy`: argmax for several classes, a 0.5 threshold for one unit.
pub fn correct(probs: &[f32], labels: &[u32], c: usize) -> usize {
    labels
        .iter()
        .enumerate()
        .filter(|&(i, &l)| {
            let row = &probs[i * c..(i + 1) * c];
            if c == 1 {
                u32::from(row[0] > 0.5) == l
            } else {
                argmax(row) == l as usize
            }
        })
        .count()
}

pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}
