//! Augmentation on the fly: random horizontal flips and translations applied
//! to each image while a training batch is gathered into its reused buffer, so
//! there is no copy of the data set and no allocation in a step.
//!
//! An image is a column of d features in the release's order: its colour
//! planes, each row-major ([`ImageShape`]); CIFAR's feature
//! `c * 1024 + row * 32 + col`.
//! The draws come from the data seed, the step and the image's slot in the
//! batch through a stateless hash, so every configuration of a lockstep group
//! sees the same images, and a resumed run draws exactly what it would have.

use serde::{Deserialize, Serialize};

use super::shape::ImageShape;
use crate::util::mix64;

/// What fills the pixels a translation uncovers.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Pad {
    /// 0 in standardised units: the training set's mean pixel.
    #[default]
    Zero,
    /// The image mirrored at its border (`reflect` as NumPy's `pad` has it).
    Reflect,
}

/// Random flips and translations of the training images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Augment {
    /// Flip each image left-right with probability 1/2.
    #[serde(default)]
    pub flip: bool,
    /// Shift each image by up to this many pixels in x and y (uniform in -k..=k).
    #[serde(default)]
    pub translate: usize,
    /// Fill of uncovered pixels.
    #[serde(default)]
    pub pad: Pad,
}

/// One image's draw: whether it is flipped and how far it moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    /// Mirror left-right.
    pub flip: bool,
    /// Shift to the right in pixels (negative: left).
    pub dx: i32,
    /// Shift down in pixels (negative: up).
    pub dy: i32,
}

impl Augment {
    /// Whether it changes anything.
    pub fn is_on(&self) -> bool {
        self.flip || self.translate > 0
    }

    /// Short description, e.g. `flips, translations of ±2 px (reflect)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.flip {
            parts.push("flips".to_string());
        }
        if self.translate > 0 {
            parts.push(format!(
                "translations of ±{} px ({})",
                self.translate,
                match self.pad {
                    Pad::Zero => "zero pad",
                    Pad::Reflect => "reflect",
                }
            ));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    /// The draw of the image in batch slot `slot` at update step `step`: a
    /// function of the data seed, the step and the slot alone.
    pub fn draw(&self, data_seed: u64, step: usize, slot: usize) -> Draw {
        let h = mix64(data_seed ^ mix64(((step as u64) << 20) ^ slot as u64 ^ 0x5eed_a06d));
        let span = 2 * self.translate as u64 + 1;
        let shift = |bits: u64| (bits % span) as i32 - self.translate as i32;
        Draw {
            flip: self.flip && h & 1 == 1,
            dx: shift(h >> 8),
            dy: shift(h >> 32),
        }
    }

    /// Writes `src` (one image of layout `image`) into `dst` flipped and
    /// shifted as `d` says, filling uncovered pixels as `self.pad` says.
    pub fn apply<T: Copy + num_traits::Zero>(
        &self,
        image: ImageShape,
        src: &[T],
        dst: &mut [T],
        d: Draw,
    ) {
        let (height, width, plane) = (image.height, image.width, image.plane());
        debug_assert!(src.len() == image.pixels() && dst.len() == image.pixels());
        // Where output row or column i reads from along a side of `side`
        // pixels (None: padding).
        let source = |i: usize, side: usize, shift: i32, flip: bool| -> Option<usize> {
            let side = side as i32;
            let v = i as i32 - shift;
            let v = match self.pad {
                Pad::Zero if !(0..side).contains(&v) => return None,
                Pad::Zero => v,
                // -1 -> 1, 32 -> 30: mirror without repeating the edge.
                Pad::Reflect => {
                    let v = v.abs();
                    (if v >= side { 2 * (side - 1) - v } else { v }).clamp(0, side - 1)
                }
            } as usize;
            Some(if flip { side as usize - 1 - v } else { v })
        };
        // Output columns lo..hi read inside the image, as one contiguous run
        // (reversed when flipped); the few outside it are padding.
        let lo = (d.dx.max(0) as usize).min(width);
        let hi = (width as i32 + d.dx.min(0)).max(lo as i32) as usize;
        let run = hi - lo;
        let v0 = if run > 0 {
            (lo as i32 - d.dx) as usize
        } else {
            0
        };
        for p in 0..image.channels {
            let src = &src[p * plane..(p + 1) * plane];
            let dst = &mut dst[p * plane..(p + 1) * plane];
            for (row, out) in dst.chunks_exact_mut(width).enumerate() {
                let Some(r) = source(row, height, d.dy, false) else {
                    out.fill(T::zero());
                    continue;
                };
                let line = &src[r * width..(r + 1) * width];
                if run == 0 {
                } else if d.flip {
                    let from = &line[width - v0 - run..width - v0];
                    for (o, v) in out[lo..hi].iter_mut().zip(from.iter().rev()) {
                        *o = *v;
                    }
                } else {
                    out[lo..hi].copy_from_slice(&line[v0..v0 + run]);
                }
                for c in (0..lo).chain(hi..width) {
                    out[c] = source(c, width, d.dx, d.flip).map_or(T::zero(), |c| line[c]);
                }
            }
        }
    }
}

/// The mirror image (left-right flip) of every image of `set`, for test-time
/// flips; allocated once per process, never in a step.
pub fn mirrored<T: crate::linalg::Real>(set: &super::DataSet<T>) -> super::DataSet<T> {
    let mut out = set.clone();
    let flip = Augment {
        flip: true,
        ..Default::default()
    };
    let draw = Draw {
        flip: true,
        dx: 0,
        dy: 0,
    };
    for (src, mut dst) in set.x.columns().into_iter().zip(out.x.columns_mut()) {
        flip.apply(
            set.image,
            src.to_slice().expect("column-major images"),
            dst.as_slice_mut().expect("column-major images"),
            draw,
        );
    }
    out
}

/// Copies images `ids` of `set` into the columns of `out` (d x ids.len(),
/// Fortran order), each flipped and shifted as `augment` draws for (`seed`,
/// `step`, its slot) when it is on: the trainer's gather, shared by the bench.
/// It runs on one core: the copy is bound by memory bandwidth, and forking it
/// over two cores measured slower here. Allocates nothing.
pub fn gather<T: crate::linalg::Real>(
    set: &super::DataSet<T>,
    ids: &[usize],
    out: &mut [T],
    augment: &Augment,
    seed: u64,
    step: usize,
) {
    for (k, (&j, column)) in ids.iter().zip(out.chunks_exact_mut(set.dim())).enumerate() {
        let src = set.image(j);
        if augment.is_on() {
            augment.apply(set.image, src, column, augment.draw(seed, step, k));
        } else {
            column.copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PIXELS;
    use ndarray::ShapeBuilder;

    const SIDE: usize = 32;
    const PLANE: usize = SIDE * SIDE;
    const CIFAR: ImageShape = ImageShape::CIFAR;

    fn image() -> Vec<f32> {
        (0..PIXELS).map(|i| i as f32).collect()
    }

    fn px(img: &[f32], p: usize, row: usize, col: usize) -> f32 {
        img[p * PLANE + row * SIDE + col]
    }

    #[test]
    fn mirrored_sets_flip_every_image_and_twice_is_the_identity() {
        let x = ndarray::Array2::from_shape_fn((PIXELS, 3).f(), |(i, j)| (i * 3 + j) as f32);
        let set = crate::data::DataSet::new(x, vec![1, 2, 3]);
        let m = mirrored(&set);
        assert_eq!(m.labels, set.labels);
        for j in 0..3 {
            for p in 0..3 {
                for r in 0..SIDE {
                    for c in 0..SIDE {
                        let at = |col: usize| p * PLANE + r * SIDE + col;
                        assert_eq!(m.x[[at(c), j]], set.x[[at(SIDE - 1 - c), j]]);
                    }
                }
            }
        }
        assert_eq!(mirrored(&m).x, set.x);
    }

    #[test]
    fn flips_mirror_every_row_of_every_plane() {
        let a = Augment {
            flip: true,
            ..Default::default()
        };
        let src = image();
        let mut dst = vec![0.0; PIXELS];
        let d = Draw {
            flip: true,
            dx: 0,
            dy: 0,
        };
        a.apply(CIFAR, &src, &mut dst, d);
        for p in 0..3 {
            for (row, col) in [(0, 0), (5, 3), (31, 31)] {
                assert_eq!(px(&dst, p, row, col), px(&src, p, row, 31 - col));
            }
        }
        let mut back = vec![0.0; PIXELS];
        a.apply(CIFAR, &dst, &mut back, d);
        assert_eq!(back, src, "two flips are the identity");
    }

    #[test]
    fn translations_shift_and_pad() {
        let src = image();
        let mut dst = vec![0.0; PIXELS];
        let d = Draw {
            flip: false,
            dx: 2,
            dy: -1,
        };
        let zero = Augment {
            translate: 2,
            ..Default::default()
        };
        zero.apply(CIFAR, &src, &mut dst, d);
        // Moved right by 2 and up by 1.
        assert_eq!(px(&dst, 1, 10, 12), px(&src, 1, 11, 10));
        assert_eq!(px(&dst, 2, 10, 1), 0.0, "uncovered on the left");
        assert_eq!(px(&dst, 0, 31, 5), 0.0, "uncovered at the bottom");
        let reflect = Augment {
            translate: 2,
            pad: Pad::Reflect,
            ..Default::default()
        };
        reflect.apply(CIFAR, &src, &mut dst, d);
        // Column -1 mirrors column 1, column -2 mirrors column 2, row 32 mirrors row 30.
        assert_eq!(px(&dst, 0, 10, 1), px(&src, 0, 11, 1));
        assert_eq!(px(&dst, 0, 10, 0), px(&src, 0, 11, 2));
        assert_eq!(px(&dst, 0, 31, 5), px(&src, 0, 30, 3));
    }

    /// Pixel by pixel, as the definition says: out(row, col) reads
    /// in(row - dy, col - dx), mirrored or zero outside, then flipped.
    fn reference(a: &Augment, src: &[f32], d: Draw) -> Vec<f32> {
        reference_of(a, CIFAR, src, d)
    }

    fn reference_of(a: &Augment, image: ImageShape, src: &[f32], d: Draw) -> Vec<f32> {
        let (h, w, plane) = (image.height as i32, image.width as i32, image.plane());
        let fix = |v: i32, side: i32| -> Option<i32> {
            match a.pad {
                Pad::Zero => (0..side).contains(&v).then_some(v),
                Pad::Reflect => Some(if v < 0 {
                    -v
                } else if v >= side {
                    2 * (side - 1) - v
                } else {
                    v
                }),
            }
        };
        let mut out = vec![0.0; image.pixels()];
        for p in 0..image.channels {
            for row in 0..h {
                for col in 0..w {
                    if let (Some(r), Some(c)) = (fix(row - d.dy, h), fix(col - d.dx, w)) {
                        let c = if d.flip { w - 1 - c } else { c };
                        out[p * plane + (row * w + col) as usize] =
                            src[p * plane + (r * w + c) as usize];
                    }
                }
            }
        }
        out
    }

    /// Grey images that are not square, and shifts as wide as the image.
    #[test]
    fn every_draw_on_other_shapes_matches_the_definition() {
        for image in [
            ImageShape {
                channels: 1,
                height: 8,
                width: 6,
            },
            ImageShape {
                channels: 2,
                height: 3,
                width: 7,
            },
        ] {
            let src: Vec<f32> = (0..image.pixels()).map(|i| i as f32 + 1.0).collect();
            let mut dst = vec![0.0; image.pixels()];
            for pad in [Pad::Zero, Pad::Reflect] {
                let a = Augment {
                    flip: true,
                    translate: 2,
                    pad,
                };
                for flip in [false, true] {
                    for dx in -2..=2 {
                        for dy in -2..=2 {
                            let d = Draw { flip, dx, dy };
                            a.apply(image, &src, &mut dst, d);
                            assert_eq!(
                                dst,
                                reference_of(&a, image, &src, d),
                                "{image:?} {d:?} {pad:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_draw_matches_the_pixel_by_pixel_definition() {
        let src = image();
        let mut dst = vec![0.0; PIXELS];
        for pad in [Pad::Zero, Pad::Reflect] {
            let a = Augment {
                flip: true,
                translate: 4,
                pad,
            };
            for flip in [false, true] {
                for dx in -4..=4 {
                    for dy in -4..=4 {
                        let d = Draw { flip, dx, dy };
                        a.apply(CIFAR, &src, &mut dst, d);
                        assert_eq!(dst, reference(&a, &src, d), "{d:?} {pad:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn draws_depend_on_seed_step_and_slot_only_and_cover_the_range() {
        let a = Augment {
            flip: true,
            translate: 2,
            pad: Pad::Zero,
        };
        assert_eq!(a.draw(7, 100, 3), a.draw(7, 100, 3));
        let draws: Vec<Draw> = (0..2000).map(|k| a.draw(7, k / 100, k % 100)).collect();
        let flips = draws.iter().filter(|d| d.flip).count();
        assert!((900..1100).contains(&flips), "{flips} flips of 2000");
        for v in -2..=2 {
            assert!(draws.iter().any(|d| d.dx == v) && draws.iter().any(|d| d.dy == v));
        }
        assert!(draws.iter().all(|d| d.dx.abs() <= 2 && d.dy.abs() <= 2));
        let off = Augment::default();
        assert_eq!(
            off.draw(7, 1, 1),
            Draw {
                flip: false,
                dx: 0,
                dy: 0
            }
        );
    }
}
