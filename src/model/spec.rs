//! The serde schema of model files. Field names and defaults are Keras's.
//!
//! Sizes are read as signed integers so that a zero or negative size reaches lowering, which
//! names the layer in its error, instead of failing here with a bare type error.

use serde::Deserialize;

/// A whole model file: `Model(name: ..., input: ..., layers: [...], ...)`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename = "Model", deny_unknown_fields)]
pub struct ModelSpec {
    /// The model's name (Keras `Model(name=...)`).
    pub name: String,
    /// Input shape `(height, width, channels)`; required unless a `base` gives it.
    #[serde(default)]
    pub input: Option<(i64, i64, i64)>,
    /// Another model file used as the bottom of this one.
    #[serde(default)]
    pub base: Option<BaseSpec>,
    /// The layers, in order; sequential unless a layer names its `inputs`.
    #[serde(default)]
    pub layers: Vec<LayerSpec>,
    /// The classifier on top, dropped when this file is used as a base with
    /// `include_top: false` (Keras `include_top`).
    #[serde(default)]
    pub top: Vec<LayerSpec>,
    /// Freezes layers, counted over the whole model (base included).
    #[serde(default)]
    pub freeze: Option<FreezeSpec>,
    /// How to train the model.
    #[serde(default)]
    pub train: Option<TrainSpec>,
}

/// A model file used as the bottom of another, as `VGG16(include_top=False, ...)`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    /// Path of the base model file, relative to this file.
    pub model: String,
    /// Keep the base's `top` layers (Keras default: true).
    #[serde(default = "yes")]
    pub include_top: bool,
    /// Replaces the base's input shape.
    #[serde(default)]
    pub input_shape: Option<(i64, i64, i64)>,
    /// A weights file for the base's layers: safetensors, PyTorch `.pth`/`.pt` or a cnntui
    /// checkpoint (see `crate::weights`), relative to this file.
    #[serde(default)]
    pub weights: Option<String>,
    /// `false` freezes every layer of the base.
    #[serde(default = "yes")]
    pub trainable: bool,
}

fn yes() -> bool {
    true
}

/// Which layers to freeze.
#[derive(Clone, Debug, Deserialize)]
pub enum FreezeSpec {
    /// Freeze the named layer and every layer before it.
    UpTo(String),
}

/// An integer or a pair, as Keras accepts for `kernel_size`, `strides` and `pool_size`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Size2 {
    Square(i64),
    Pair((i64, i64)),
}

impl Size2 {
    pub fn pair(self) -> (i64, i64) {
        match self {
            Size2::Square(s) => (s, s),
            Size2::Pair(p) => p,
        }
    }
}

/// Zero padding amounts, as Keras's `ZeroPadding2D(padding=...)`: `1`, `(1, 2)` (symmetric per
/// axis) or `((top, bottom), (left, right))`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PadSpec {
    Uniform(i64),
    PerAxis((i64, i64)),
    Sides(((i64, i64), (i64, i64))),
}

impl PadSpec {
    /// `((top, bottom), (left, right))`.
    pub fn sides(self) -> ((i64, i64), (i64, i64)) {
        match self {
            PadSpec::Uniform(p) => ((p, p), (p, p)),
            PadSpec::PerAxis((h, w)) => ((h, h), (w, w)),
            PadSpec::Sides(s) => s,
        }
    }
}

/// Padding of a window layer.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum PaddingSpec {
    /// No padding (Keras `"valid"`, the default).
    #[default]
    Valid,
    /// Keras `"same"`: output = ceil(input / stride), the extra row/column after.
    Same,
    /// Explicit zero padding, as PyTorch's `padding=` (torchvision's numerics).
    Explicit(PadSpec),
}

/// Activation functions, as Keras names them.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum ActivationSpec {
    #[default]
    Linear,
    ReLU,
    ReLU6,
    Sigmoid,
    Tanh,
    Softmax,
}

/// One layer of a model file. Every layer takes `name` (Keras's automatic name when absent),
/// `inputs` (the layers it reads; the previous layer when absent) and `trainable`.
#[derive(Clone, Debug, Deserialize)]
pub enum LayerSpec {
    Conv2D(Conv2DSpec),
    DepthwiseConv2D(DepthwiseConv2DSpec),
    Dense(DenseSpec),
    MaxPooling2D(PoolSpec),
    AveragePooling2D(PoolSpec),
    GlobalAveragePooling2D(#[serde(default)] CommonSpec),
    Flatten(#[serde(default)] CommonSpec),
    Dropout(DropoutSpec),
    Activation(ActivationLayerSpec),
    ReLU(#[serde(default)] ReLUSpec),
    BatchNormalization(#[serde(default)] BatchNormSpec),
    ZeroPadding2D(ZeroPaddingSpec),
    Add(#[serde(default)] CommonSpec),
}

/// The fields every layer has.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub trainable: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2DSpec {
    pub filters: i64,
    pub kernel_size: Size2,
    #[serde(default)]
    pub strides: Option<Size2>,
    #[serde(default)]
    pub padding: PaddingSpec,
    #[serde(default)]
    pub activation: ActivationSpec,
    #[serde(default)]
    pub use_bias: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub trainable: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthwiseConv2DSpec {
    pub kernel_size: Size2,
    #[serde(default)]
    pub depth_multiplier: Option<i64>,
    #[serde(default)]
    pub strides: Option<Size2>,
    #[serde(default)]
    pub padding: PaddingSpec,
    #[serde(default)]
    pub activation: ActivationSpec,
    #[serde(default)]
    pub use_bias: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub trainable: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseSpec {
    pub units: i64,
    #[serde(default)]
    pub activation: ActivationSpec,
    #[serde(default)]
    pub use_bias: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub trainable: Option<bool>,
}

/// `MaxPooling2D` / `AveragePooling2D`: `strides` default to `pool_size` (Keras).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    #[serde(default)]
    pub pool_size: Option<Size2>,
    #[serde(default)]
    pub strides: Option<Size2>,
    #[serde(default)]
    pub padding: PaddingSpec,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub trainable: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutSpec {
    pub rate: f64,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub trainable: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationLayerSpec {
    pub activation: ActivationSpec,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub trainable: Option<bool>,
}

/// Keras's `ReLU` layer; `max_value: 6.0` makes it ReLU6 (MobileNetV2).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReLUSpec {
    #[serde(default)]
    pub max_value: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub trainable: Option<bool>,
}

/// `BatchNormalization` over the channel axis; Keras defaults momentum 0.99, epsilon 1e-3.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormSpec {
    #[serde(default)]
    pub momentum: Option<f64>,
    #[serde(default)]
    pub epsilon: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub trainable: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroPaddingSpec {
    #[serde(default)]
    pub padding: Option<PadSpec>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    #[serde(default)]
    pub trainable: Option<bool>,
}

impl LayerSpec {
    /// The Keras class name of this layer.
    pub fn class_name(&self) -> &'static str {
        match self {
            LayerSpec::Conv2D(_) => "Conv2D",
            LayerSpec::DepthwiseConv2D(_) => "DepthwiseConv2D",
            LayerSpec::Dense(_) => "Dense",
            LayerSpec::MaxPooling2D(_) => "MaxPooling2D",
            LayerSpec::AveragePooling2D(_) => "AveragePooling2D",
            LayerSpec::GlobalAveragePooling2D(_) => "GlobalAveragePooling2D",
            LayerSpec::Flatten(_) => "Flatten",
            LayerSpec::Dropout(_) => "Dropout",
            LayerSpec::Activation(_) => "Activation",
            LayerSpec::ReLU(_) => "ReLU",
            LayerSpec::BatchNormalization(_) => "BatchNormalization",
            LayerSpec::ZeroPadding2D(_) => "ZeroPadding2D",
            LayerSpec::Add(_) => "Add",
        }
    }

    /// `(name, inputs, trainable)`, the fields every layer has.
    pub fn common(&self) -> (Option<&str>, Option<&[String]>, Option<bool>) {
        macro_rules! c {
            ($s:expr) => {
                ($s.name.as_deref(), $s.inputs.as_deref(), $s.trainable)
            };
        }
        match self {
            LayerSpec::Conv2D(s) => c!(s),
            LayerSpec::DepthwiseConv2D(s) => c!(s),
            LayerSpec::Dense(s) => c!(s),
            LayerSpec::MaxPooling2D(s) | LayerSpec::AveragePooling2D(s) => c!(s),
            LayerSpec::GlobalAveragePooling2D(s) | LayerSpec::Flatten(s) | LayerSpec::Add(s) => {
                c!(s)
            }
            LayerSpec::Dropout(s) => c!(s),
            LayerSpec::Activation(s) => c!(s),
            LayerSpec::ReLU(s) => c!(s),
            LayerSpec::BatchNormalization(s) => c!(s),
            LayerSpec::ZeroPadding2D(s) => c!(s),
        }
    }
}

/// How to train: data, loss, optimizer and the loop's settings (Keras `compile` + `fit`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    pub data: DataSpec,
    pub loss: LossSpec,
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    /// Keras default 32.
    #[serde(default)]
    pub batch_size: Option<i64>,
    /// Keras default 1.
    #[serde(default)]
    pub epochs: Option<i64>,
    #[serde(default)]
    pub validation: ValidationSpec,
    /// Seeds weight initialisation, shuffling, dropout and augmentation.
    #[serde(default)]
    pub seed: u64,
    /// Random augmentation of the training samples.
    #[serde(default)]
    pub augment: Option<AugmentSpec>,
}

/// Where the training data comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum DataSpec {
    /// A directory holding the four MNIST-format IDX files (raw or `.gz`); pixels are
    /// multiplied by `rescale` (default 1/255); `limit` keeps the first N training samples.
    Idx {
        dir: String,
        #[serde(default)]
        rescale: Option<f64>,
        #[serde(default)]
        limit: Option<i64>,
        /// Classic image operations applied to every sample before augmentation, in order.
        #[serde(default)]
        preprocess: Vec<crate::data::image::ImageOp>,
        /// `(height, width)` to resize every image to (default: as stored), e.g. `(96, 96)`
        /// for a pretrained base.
        #[serde(default)]
        image_size: Option<(i64, i64)>,
        /// How to resize: `nearest`, `bilinear` (default), `bicubic`, `lanczos` or `area`.
        #[serde(default)]
        interpolation: Option<String>,
        /// `grayscale` (as stored) or `rgb` (the grey value repeated, for an ImageNet base).
        #[serde(default)]
        color_mode: Option<String>,
    },
    /// Folders of images, one subdirectory per class (Keras `image_dataset_from_directory`).
    Folder(FolderSpec),
    /// Features a frozen convolutional base computed once and stored by `cnntui extract`
    /// (a safetensors file): the fast way of the lecture's feature extraction. The model's
    /// `input` is the features' shape; no rescaling or augmentation applies.
    Features {
        /// The file `cnntui extract` wrote, relative to the model file.
        file: String,
        /// Keep the first N training samples.
        #[serde(default)]
        limit: Option<i64>,
    },
}

/// An image-folder dataset, with the names of Keras's `image_dataset_from_directory`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderSpec {
    /// The training directory: one subdirectory per class.
    pub dir: String,
    /// A validation directory with the same class folders.
    #[serde(default)]
    pub validation_dir: Option<String>,
    /// A test directory with the same class folders.
    #[serde(default)]
    pub test_dir: Option<String>,
    /// Instead of `validation_dir`: this fraction of `dir`'s files, after a seeded shuffle.
    #[serde(default)]
    pub validation_split: Option<f64>,
    /// Seeds the `validation_split` shuffle (default: `train.seed`).
    #[serde(default)]
    pub seed: Option<u64>,
    /// `(height, width)` every image is resized to (Keras default `(256, 256)`).
    #[serde(default)]
    pub image_size: Option<(i64, i64)>,
    /// `nearest`, `bilinear` (default), `bicubic`, `lanczos` or `area`, as Pillow resizes.
    #[serde(default)]
    pub interpolation: Option<String>,
    /// `rgb` (default) or `grayscale`.
    #[serde(default)]
    pub color_mode: Option<String>,
    /// `int`, `categorical` or `binary`; when absent, the one the loss takes.
    #[serde(default)]
    pub label_mode: Option<String>,
    /// Multiplies pixel values after augmentation (default 1/255).
    #[serde(default)]
    pub rescale: Option<f64>,
    /// Keep the first N training files.
    #[serde(default)]
    pub limit: Option<i64>,
    /// Classic image operations applied to every image after resizing and before
    /// augmentation, in order (e.g. `[Gaussian(sigma: 1.0), TvDenoise(weight: 0.1)]`).
    #[serde(default)]
    pub preprocess: Vec<crate::data::image::ImageOp>,
}

/// Random augmentation of training samples, with the names and meanings of Keras's
/// `ImageDataGenerator` (but `width_shift_range` shifts horizontally, as documented).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentSpec {
    /// Degrees.
    #[serde(default)]
    pub rotation_range: f64,
    /// A fraction of the width (< 1) or pixels (≥ 1).
    #[serde(default)]
    pub width_shift_range: f64,
    /// A fraction of the height (< 1) or pixels (≥ 1).
    #[serde(default)]
    pub height_shift_range: f64,
    /// Degrees (Keras's unit: `shear_range: 0.2` is a 0.2° shear).
    #[serde(default)]
    pub shear_range: f64,
    /// `z` for `[1 - z, 1 + z]`, or a pair `(lo, hi)`.
    #[serde(default)]
    pub zoom_range: Option<ZoomSpec>,
    #[serde(default)]
    pub horizontal_flip: bool,
    #[serde(default)]
    pub vertical_flip: bool,
    /// `nearest` (default), `constant`, `reflect` or `wrap`.
    #[serde(default)]
    pub fill_mode: Option<String>,
    /// The fill value of `constant`, on the 0–255 scale.
    #[serde(default)]
    pub cval: f64,
    /// `(lo, hi)`: each image's brightness is multiplied by a factor drawn from it.
    #[serde(default)]
    pub brightness_range: Option<(f64, f64)>,
}

/// Keras's `zoom_range`: a float `z` or a pair.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ZoomSpec {
    Range(f64),
    Pair((f64, f64)),
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum LossSpec {
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    BinaryCrossentropy,
}

/// Optimizers with Keras's defaults for every field left out.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum OptimizerSpec {
    SGD {
        #[serde(default = "sgd_lr")]
        learning_rate: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        nesterov: bool,
    },
    RMSprop {
        #[serde(default = "adaptive_lr")]
        learning_rate: f64,
        #[serde(default = "rho")]
        rho: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default = "epsilon")]
        epsilon: f64,
    },
    Adam {
        #[serde(default = "adaptive_lr")]
        learning_rate: f64,
        #[serde(default = "beta_1")]
        beta_1: f64,
        #[serde(default = "beta_2")]
        beta_2: f64,
        #[serde(default = "epsilon")]
        epsilon: f64,
    },
}

impl Default for OptimizerSpec {
    /// Keras's `compile(optimizer="rmsprop")`.
    fn default() -> Self {
        OptimizerSpec::RMSprop {
            learning_rate: adaptive_lr(),
            rho: rho(),
            momentum: 0.0,
            epsilon: epsilon(),
        }
    }
}

impl OptimizerSpec {
    pub fn learning_rate(&self) -> f64 {
        match *self {
            OptimizerSpec::SGD { learning_rate, .. }
            | OptimizerSpec::RMSprop { learning_rate, .. }
            | OptimizerSpec::Adam { learning_rate, .. } => learning_rate,
        }
    }
}

fn sgd_lr() -> f64 {
    0.01
}
fn adaptive_lr() -> f64 {
    0.001
}
fn rho() -> f64 {
    0.9
}
fn epsilon() -> f64 {
    1e-7
}
fn beta_1() -> f64 {
    0.9
}
fn beta_2() -> f64 {
    0.999
}

/// What to validate on at the end of every epoch.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
pub enum ValidationSpec {
    /// No validation.
    #[default]
    None,
    /// The last fraction of the training samples, before shuffling (Keras `validation_split`).
    Split(f64),
    /// The dataset's test split.
    TestSplit,
}
