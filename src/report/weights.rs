//! The linear classifier's weights as images: each class's row of W reshaped to
//! 32 x 32 x 3 and min-max scaled, in a labelled 2 x 5 montage (Assignment 1).

use std::path::Path;

use anyhow::{anyhow, Result};
use ndarray::ArrayView2;
use plotters::prelude::*;

/// Pixels per weight pixel in the montage.
const ZOOM: usize = 4;

/// Draws the class templates of W (K x 3072, one row per class) as a labelled montage.
pub fn montage(path: &Path, w: ArrayView2<'_, f64>, names: &[String], title: &str) -> Result<()> {
    super::png::register_font();
    let (rows, cols) = w.dim();
    assert_eq!(cols, 3072, "weight images need 32x32x3 inputs");
    let per_row = 5usize;
    let grid_rows = rows.div_ceil(per_row);
    let tile = 32 * ZOOM;
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
        for y in 0..32 {
            for x in 0..32 {
                for ch in 0..3 {
                    let v = ((row[ch * 1024 + y * 32 + x] - lo) / span * 255.0)
                        .round()
                        .clamp(0.0, 255.0) as u8;
                    for dy in 0..ZOOM {
                        for dx in 0..ZOOM {
                            let (px, py) = (x0 + x * ZOOM + dx, y0 + y * ZOOM + dy);
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
