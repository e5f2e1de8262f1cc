//! The linear classifier's weights as images: each class's row of W reshaped to
//! the data's image (32 x 32 x 3 for CIFAR, grey 28 x 28 for MNIST) and
//! min-max scaled, in a labelled montage, 5 per row (Assignment 1).

use std::path::Path;

use anyhow::{anyhow, Result};
use ndarray::ArrayView2;
use plotters::prelude::*;

/// Side of a tile in the montage, in screen pixels (about).
const TILE: usize = 128;

/// Draws the class templates of W (K x d, one row per class, d the pixels of
/// `image`) as a labelled montage.
pub fn montage(
    path: &Path,
    w: ArrayView2<'_, f64>,
    image: crate::data::ImageShape,
    names: &[String],
    title: &str,
) -> Result<()> {
    super::png::register_font();
    let (rows, cols) = w.dim();
    anyhow::ensure!(
        cols == image.pixels(),
        "weight images: W has {cols} columns, and images of {} have {} pixels",
        image.describe(),
        image.pixels()
    );
    let per_row = if rows > 20 { 10 } else { 5usize };
    let grid_rows = rows.div_ceil(per_row);
    let zoom = (TILE / image.height.max(image.width)).max(1);
    let tile = (image.height.max(image.width) * zoom).max(96);
    let (pad, label_h, title_h) = (16usize, 28usize, 44usize);
    let width = per_row * (tile + pad) + pad;
    let height = title_h + grid_rows * (tile + label_h + pad) + pad;
    let mut buf = vec![255u8; width * height * 3];
    for k in 0..rows {
        let row = w.row(k).to_vec();
        let lo = row.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let x0 = pad + (k % per_row) * (tile + pad);
        let y0 = title_h + (k / per_row) * (tile + label_h + pad) + label_h;
        let plane = image.plane();
        for y in 0..image.height {
            for x in 0..image.width {
                for ch in 0..3 {
                    // Grey images: one plane for all three colours.
                    let p = ch.min(image.channels - 1);
                    let v = ((row[p * plane + y * image.width + x] - lo) / span * 255.0)
                        .round()
                        .clamp(0.0, 255.0) as u8;
                    for dy in 0..zoom {
                        for dx in 0..zoom {
                            let (px, py) = (x0 + x * zoom + dx, y0 + y * zoom + dy);
                            buf[(py * width + px) * 3 + ch] = v;
                        }
                    }
                }
            }
        }
    }
    {
        let root =
            BitMapBackend::with_buffer(&mut buf, (width as u32, height as u32)).into_drawing_area();
        let e = |e| anyhow!("cannot draw the weight images: {e:?}");
        root.draw(&Text::new(
            format!("W as images: {title}"),
            (pad as i32, 12),
            ("sans-serif", 18).into_font().color(&BLACK),
        ))
        .map_err(e)?;
        for k in 0..rows {
            let x0 = pad + (k % per_row) * (tile + pad);
            let y0 = title_h + (k / per_row) * (tile + label_h + pad);
            let name = names
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("class {k}"));
            root.draw(&Text::new(
                name,
                (x0 as i32, y0 as i32 + 4),
                ("sans-serif", 17).into_font().color(&BLACK),
            ))
            .map_err(|e| anyhow!("cannot draw the weight images: {e:?}"))?;
        }
        root.present()
            .map_err(|e| anyhow!("cannot draw the weight images: {e:?}"))?;
    }
    super::png::save_png(path, &buf, width as u32, height as u32)
}
