//! The confusion matrix of `shallow evaluate` as a picture: one row per true
//! class, one column per predicted class, each cell shaded by the share of
//! its row (the diagonal is what was right), with its count when the classes
//! are few enough to print.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::train::model::Evaluation;

/// Draws `e`'s confusion matrix into `path` (PNG).
pub fn draw(path: &Path, e: &Evaluation) -> Result<()> {
    super::png::register_font();
    let k = e.class_names.len();
    let cell = (640 / k.max(1)).clamp(6, 56);
    let label_w = if k <= 30 { 130 } else { 40 };
    let (top, pad) = (70usize, 20usize);
    let width = label_w + k * cell + pad;
    let longest = e
        .class_names
        .iter()
        .map(|n| n.chars().count().min(16))
        .max()
        .unwrap_or(1);
    let height = top + k * cell + pad + if k <= 30 { 14 + 8 * longest } else { 30 };
    let mut buf = vec![255u8; width * height * 3];
    {
        let root =
            BitMapBackend::with_buffer(&mut buf, (width as u32, height as u32)).into_drawing_area();
        let err = |e| anyhow!("cannot draw the confusion matrix: {e:?}");
        let title = format!(
            "confusion on {} test images: {:.2}% right (rows: true class, columns: predicted)",
            e.images,
            100.0 * e.accuracy
        );
        root.draw(&Text::new(
            title,
            (10, 12),
            ("sans-serif", 16).into_font().color(&BLACK),
        ))
        .map_err(err)?;
        for (i, row) in e.confusion.iter().enumerate() {
            let n: usize = row.iter().sum();
            for (j, &count) in row.iter().enumerate() {
                let share = count as f64 / n.max(1) as f64;
                // White to blue on the diagonal, white to red off it.
                let fade = |c: u8| (255.0 - share * (255.0 - c as f64)) as u8;
                let colour = if i == j {
                    RGBColor(fade(30), fade(90), fade(200))
                } else {
                    RGBColor(fade(220), fade(40), fade(40))
                };
                let (x0, y0) = ((label_w + j * cell) as i32, (top + i * cell) as i32);
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell as i32 - 1, y0 + cell as i32 - 1)],
                    colour.filled(),
                ))
                .map_err(err)?;
                if k <= 20 && count > 0 {
                    let ink = if share > 0.5 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        count.to_string(),
                        (x0 + 3, y0 + cell as i32 / 2 - 6),
                        ("sans-serif", 12).into_font().color(&ink),
                    ))
                    .map_err(err)?;
                }
            }
        }
        if k <= 30 {
            let font = ("sans-serif", 13).into_font();
            for (i, name) in e.class_names.iter().enumerate() {
                let short: String = name.chars().take(16).collect();
                let y = (top + i * cell + cell / 2) as i32 - 7;
                root.draw(&Text::new(
                    short.clone(),
                    (6, y),
                    font.clone().color(&BLACK),
                ))
                .map_err(err)?;
                let x = (label_w + i * cell + cell / 2) as i32 - 6;
                let below = (top + k * cell + 6) as i32;
                let turned = ("sans-serif", 13)
                    .into_font()
                    .transform(FontTransform::Rotate90)
                    .color(&BLACK);
                root.draw(&Text::new(short, (x + 12, below), turned))
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    super::png::save_png(path, &buf, width as u32, height as u32)
}
