//! The canvas every picture is drawn on: the embedded font and PNG output.

use std::sync::Once;

use anyhow::Result;
use plotters::style::FontStyle;

static FONT: Once = Once::new();

/// DejaVu Sans, embedded so that text renders the same on any machine.
static DEJAVU: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the embedded font with plotters (once per process).
pub fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, DEJAVU);
    });
}

/// Encodes an RGB buffer (`width` x `height`, row-major) as an 8-bit palette
/// PNG and writes it atomically: an exact palette when the picture has at most
/// 256 colours, else NeuQuant's 256 (anti-aliased text and lines), about ten
/// times smaller than 24-bit RGB with no visible change, so reports stay light.
pub fn save_png(path: &std::path::Path, rgb: &[u8], width: u32, height: u32) -> Result<()> {
    crate::util::write_atomic(path, &encode_indexed(rgb, width, height)?)
}

/// The palette PNG of [`save_png`], in memory.
pub fn encode_indexed(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let (palette, indices) = match exact_palette(rgb) {
        Some(p) => p,
        None => {
            let rgba: Vec<u8> = rgb
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect();
            let nq = color_quant::NeuQuant::new(10, 256, &rgba);
            let indices = rgba.chunks_exact(4).map(|p| nq.index_of(p) as u8).collect();
            (nq.color_map_rgb(), indices)
        }
    };
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(palette);
        enc.set_compression(png::Compression::High);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&indices)?;
    }
    Ok(out)
}

/// (palette, one index per pixel) when `rgb` has at most 256 colours.
fn exact_palette(rgb: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut index: std::collections::HashMap<[u8; 3], u8> = Default::default();
    let mut palette = Vec::new();
    let mut indices = Vec::with_capacity(rgb.len() / 3);
    for p in rgb.chunks_exact(3) {
        let key = [p[0], p[1], p[2]];
        let i = match index.get(&key) {
            Some(&i) => i,
            None if index.len() < 256 => {
                let i = index.len() as u8;
                index.insert(key, i);
                palette.extend_from_slice(&key);
                i
            }
            None => return None,
        };
        indices.push(i);
    }
    Some((palette, indices))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A palette PNG decodes back to the same pixels when the picture has few
    /// colours, and to nearly the same when it has many.
    #[test]
    fn palette_pngs_decode_to_the_picture() {
        let (w, h) = (64u32, 48u32);
        let few: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                if i % 7 == 0 {
                    [200, 30, 30]
                } else {
                    [255, 255, 255]
                }
            })
            .collect();
        // What anti-aliasing makes of a chart: every blend of white with a
        // blue and with a red line, 511 colours.
        let blend = |c: [u8; 3], t: u32| c.map(|v| (255 - (255 - v as u32) * t / 255) as u8);
        let many: Vec<u8> = (0..w * h)
            .flat_map(|i| match i % 3 {
                0 => blend([31, 119, 180], i % 256),
                1 => blend([214, 39, 40], i % 256),
                _ => [255, 255, 255],
            })
            .collect();
        for (rgb, exact) in [(few, true), (many, false)] {
            let png = encode_indexed(&rgb, w, h).unwrap();
            let img = image::load_from_memory(&png).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), (w, h));
            let worst = img
                .as_raw()
                .iter()
                .zip(&rgb)
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .max()
                .unwrap();
            if exact {
                assert_eq!(img.as_raw(), &rgb);
            } else {
                // 18 levels here, on edge pixels only: not visible.
                assert!(worst <= 24, "quantisation error {worst} of 255");
            }
        }
    }
}
