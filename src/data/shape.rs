//! What a data set's images and labels look like: the image size, the number
//! of classes and of training images. Known as soon as the files are read, it
//! sizes everything above: the network's input and output layers, the splits,
//! the steps per epoch, the weight pictures and the augmentation.

use serde::{Deserialize, Serialize};

/// One image's layout: `channels` planes of `height` x `width` pixels,
/// row-major, plane after plane (CIFAR-10's order; MNIST has one plane).
/// Feature `c * height * width + row * width + col` is that pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    /// Colour planes: 3 (red, green, blue) or 1 (grey).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// CIFAR's 32 x 32 colour images.
    pub const CIFAR: ImageShape = ImageShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    /// Features per image d = channels x height x width.
    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// Pixels per plane.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }
    /// E.g. `32x32x3` or `28x28 grey`.
    pub fn describe(&self) -> String {
        match self.channels {
            1 => format!("{}x{} grey", self.height, self.width),
            c => format!("{}x{}x{c}", self.height, self.width),
        }
    }
    /// The plane-after-plane shape of `d` features when nothing else says:
    /// CIFAR's for 3072, one square grey plane for a square, else one row.
    pub fn guess(d: usize) -> ImageShape {
        let side = (d as f64).sqrt().round() as usize;
        if d == ImageShape::CIFAR.pixels() {
            ImageShape::CIFAR
        } else if side * side == d {
            ImageShape {
                channels: 1,
                height: side,
                width: side,
            }
        } else {
            ImageShape {
                channels: 1,
                height: 1,
                width: d,
            }
        }
    }
}

/// A data set's sizes: its images, classes and training images (all of the
/// training files, before any split). Recorded in each run's configuration
/// whenever it is not CIFAR-10's, so that a resume on other data is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataShape {
    /// The images' layout.
    pub image: ImageShape,
    /// Number of classes K.
    pub classes: usize,
    /// Training images (the test split not counted).
    pub train_images: usize,
}

impl Default for DataShape {
    /// CIFAR-10: 50,000 training images of 32 x 32 x 3, 10 classes.
    fn default() -> Self {
        DataShape {
            image: ImageShape::CIFAR,
            classes: 10,
            train_images: 50_000,
        }
    }
}

impl DataShape {
    /// Whether this is CIFAR-10's (and so left out of configuration files).
    pub fn is_cifar10(&self) -> bool {
        *self == DataShape::default()
    }
    /// Features per image d.
    pub fn pixels(&self) -> usize {
        self.image.pixels()
    }
    /// The split `full`'s default validation count: 5,000, or a tenth of the
    /// training images when there are fewer than 50,000.
    pub fn default_n_val(&self) -> usize {
        5_000.min(self.train_images / 10).max(1)
    }
    /// E.g. `50000 images of 32x32x3, 10 classes`.
    pub fn describe(&self) -> String {
        format!(
            "{} training images of {}, {} classes",
            self.train_images,
            self.image.describe(),
            self.classes
        )
    }
}
