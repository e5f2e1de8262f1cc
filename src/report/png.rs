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

/// Encodes an RGB buffer as PNG and writes it atomically.
pub fn save_png(path: &std::path::Path, rgb: &[u8], width: u32, height: u32) -> Result<()> {
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        rgb,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )?;
    crate::util::write_atomic(path, &png)
}
