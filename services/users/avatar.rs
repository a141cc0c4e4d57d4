//! Avatar images: recognised by their content (never the declared type or file name), decoded
//! with limits, scaled down to a cap, and re-encoded, so what is stored and served is a clean
//! PNG the server made, under a name the server chose.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

/// Largest avatar edge after scaling, in pixels.
pub const MAX_EDGE: u32 = 512;
/// Largest accepted source dimensions (decoding bigger images is refused).
pub const MAX_SOURCE_EDGE: u32 = 8192;

/// Why an upload was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AvatarError {
    /// Not JPEG, PNG or WebP by content, or not decodable.
    Unsupported,
}

/// Checks, decodes, scales and re-encodes an uploaded image as PNG (runs on a blocking thread).
pub fn normalise(bytes: &[u8]) -> Result<Vec<u8>, AvatarError> {
    let format = image::guess_format(bytes).map_err(|_| AvatarError::Unsupported)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) {
        return Err(AvatarError::Unsupported);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_EDGE);
    limits.max_image_height = Some(MAX_SOURCE_EDGE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let img = reader.decode().map_err(|_| AvatarError::Unsupported)?;
    let img = if img.width() > MAX_EDGE || img.height() > MAX_EDGE {
        img.resize(MAX_EDGE, MAX_EDGE, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).map_err(|_| AvatarError::Unsupported)?;
    Ok(out.into_inner())
}
