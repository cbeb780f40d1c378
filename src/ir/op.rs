//! The closed set of operations. Every stage matches on [`Op`] exhaustively, so a new op does
//! not compile until every stage handles it.

use cnntui_kernels::Padding2d;
use cnntui_kernels::reference::Activation;

/// One layer's operation, with every size resolved (padding made explicit, defaults applied).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The model input (`InputLayer`); node 0 of every graph.
    Input,
    Conv2D {
        filters: usize,
        kernel: (usize, usize),
        strides: (usize, usize),
        padding: Padding2d,
        activation: Activation,
        use_bias: bool,
    },
    DepthwiseConv2D {
        depth_multiplier: usize,
        kernel: (usize, usize),
        strides: (usize, usize),
        padding: Padding2d,
        activation: Activation,
        use_bias: bool,
    },
    Dense {
        units: usize,
        activation: Activation,
        use_bias: bool,
    },
    MaxPooling2D {
        pool: (usize, usize),
        strides: (usize, usize),
        padding: Padding2d,
    },
    AveragePooling2D {
        pool: (usize, usize),
        strides: (usize, usize),
        padding: Padding2d,
    },
    GlobalAveragePooling2D,
    Flatten,
    Dropout {
        rate: f32,
    },
    Activation(Activation),
    /// Keras's `ReLU` layer (ReLU, or ReLU6 with `max_value: 6.0`).
    ReLU(Activation),
    BatchNormalization {
        momentum: f32,
        epsilon: f32,
    },
    ZeroPadding2D(Padding2d),
    Add,
}

impl Op {
    /// The Keras class name, as `model.summary()` prints it.
    pub fn class_name(&self) -> &'static str {
        match self {
            Op::Input => "InputLayer",
            Op::Conv2D { .. } => "Conv2D",
            Op::DepthwiseConv2D { .. } => "DepthwiseConv2D",
            Op::Dense { .. } => "Dense",
            Op::MaxPooling2D { .. } => "MaxPooling2D",
            Op::AveragePooling2D { .. } => "AveragePooling2D",
            Op::GlobalAveragePooling2D => "GlobalAveragePooling2D",
            Op::Flatten => "Flatten",
            Op::Dropout { .. } => "Dropout",
            Op::Activation(_) => "Activation",
            Op::ReLU(_) => "ReLU",
            Op::BatchNormalization { .. } => "BatchNormalization",
            Op::ZeroPadding2D(_) => "ZeroPadding2D",
            Op::Add => "Add",
        }
    }

    /// The activation applied at the end of this op, if it has one.
    pub fn activation(&self) -> Option<Activation> {
        match *self {
            Op::Conv2D { activation, .. }
            | Op::DepthwiseConv2D { activation, .. }
            | Op::Dense { activation, .. }
            | Op::Activation(activation)
            | Op::ReLU(activation) => Some(activation),
            _ => None,
        }
    }

    /// Multiply-adds of the forward pass for one sample producing `out` elements from an input
    /// with `c_in` channels (used for GFLOP/s figures).
    pub fn macs_per_sample(&self, c_in: usize, out_elems: usize) -> usize {
        match *self {
            Op::Conv2D {
                kernel: (k_h, k_w), ..
            } => out_elems * k_h * k_w * c_in,
            Op::DepthwiseConv2D {
                kernel: (k_h, k_w), ..
            } => out_elems * k_h * k_w,
            Op::Dense { .. } => out_elems * c_in,
            _ => 0,
        }
    }
}
