//! The demo catalog's product pictures: generated at seed time, one set per product, so a
//! DummyJSON storefront pointed at a fresh install shows a picture on every card.
//!
//! A picture is the category's colour (a hue from its slug), a lighter panel, and the
//! product's title drawn with an 8x8 bitmap font. PNG, because it is lossless for flat
//! colours (a picture is a few kilobytes) and every browser decodes it.

use font8x8::legacy::BASIC_LEGACY;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder as _, Rgb, RgbImage};

/// The edge of a picture, in pixels.
pub const EDGE: u32 = 320;
/// The content type of every picture.
pub const CONTENT_TYPE: &str = "image/png";
/// Glyph scale: 8x8 glyphs drawn 2x, so 16 px letters.
const SCALE: u32 = 2;
/// Characters per line of the title.
const LINE: usize = ((EDGE - 48) / (8 * SCALE)) as usize;

/// Renders picture `variant` (0 for the thumbnail, 1.. for the gallery) of a product.
pub fn render(title: &str, category: &str, variant: u8) -> Vec<u8> {
    let hue = category
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360;
    // Each gallery picture turns the hue a little, so the three are told apart.
    let hue = (hue + u32::from(variant) * 24) % 360;
    let background = hsl(hue, 0.55, 0.45);
    let panel = hsl(hue, 0.60, 0.88);
    let ink = hsl(hue, 0.50, 0.20);
    // Rows are filled as slices: per-pixel writes cost more than the PNG encoding.
    let margin = 16;
    let mut raw = Vec::with_capacity((EDGE * EDGE * 3) as usize);
    let border_row: Vec<u8> = background.0.repeat(EDGE as usize);
    let mut panel_row = background.0.repeat(margin as usize);
    panel_row.extend(panel.0.repeat((EDGE - 2 * margin) as usize));
    panel_row.extend(background.0.repeat(margin as usize));
    for y in 0..EDGE {
        let row = if y < margin || y >= EDGE - margin {
            &border_row
        } else {
            &panel_row
        };
        raw.extend_from_slice(row);
    }
    let mut img = RgbImage::from_raw(EDGE, EDGE, raw).expect("EDGE x EDGE x 3 bytes");
    let lines = wrap(title, LINE);
    let line_height = 8 * SCALE + 6;
    let top = (EDGE - line_height * lines.len() as u32) / 2;
    for (row, line) in lines.iter().enumerate() {
        let width = line.chars().count() as u32 * 8 * SCALE;
        let left = (EDGE - width.min(EDGE)) / 2;
        for (col, ch) in line.chars().enumerate() {
            // ASCII only; anything else is drawn as a blank.
            let glyph = BASIC_LEGACY.get(ch as usize).copied().unwrap_or([0; 8]);
            draw_glyph(
                &mut img,
                &glyph,
                left + col as u32 * 8 * SCALE,
                top + row as u32 * line_height,
                ink,
            );
        }
    }
    let mut out = Vec::with_capacity(8 * 1024);
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Sub)
        .write_image(img.as_raw(), EDGE, EDGE, image::ExtendedColorType::Rgb8)
        .expect("encoding a PNG into memory cannot fail");
    out
}

/// Splits `text` into lines of at most `width` characters, at spaces (at most 4 lines).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let word: String = word.chars().take(width).collect();
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(&word);
            }
            _ => lines.push(word),
        }
    }
    lines.truncate(4);
    lines
}

fn draw_glyph(img: &mut RgbImage, glyph: &[u8; 8], x0: u32, y0: u32, ink: Rgb<u8>) {
    for (gy, bits) in glyph.iter().enumerate() {
        for gx in 0..8 {
            // font8x8 stores the leftmost pixel in the lowest bit.
            if bits & (1 << gx) == 0 {
                continue;
            }
            for dy in 0..SCALE {
                for dx in 0..SCALE {
                    let (x, y) = (x0 + gx * SCALE + dx, y0 + gy as u32 * SCALE + dy);
                    if x < EDGE && y < EDGE {
                        img.put_pixel(x, y, ink);
                    }
                }
            }
        }
    }
}

/// An sRGB colour from hue (degrees), saturation and lightness (0..1).
fn hsl(hue: u32, s: f64, l: f64) -> Rgb<u8> {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let h = f64::from(hue) / 60.0;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match hue / 60 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let channel = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    Rgb([channel(r), channel(g), channel(b)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_is_a_png_that_decodes_to_its_edge() {
        let bytes = render("Nimbus Pro Phone 12 256GB", "smartphones", 0);
        assert_eq!(
            image::guess_format(&bytes).unwrap(),
            image::ImageFormat::Png
        );
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), (EDGE, EDGE));
        assert!(bytes.len() < 32 * 1024, "{} bytes", bytes.len());
        // The gallery pictures differ from the thumbnail.
        assert_ne!(bytes, render("Nimbus Pro Phone 12 256GB", "smartphones", 1));
    }

    #[test]
    fn titles_wrap_at_spaces() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("a b c d e f g h i j", 1).len(), 4);
    }
}
