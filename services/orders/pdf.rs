//! A minimal PDF 1.4 writer: pages of text in the standard Helvetica fonts and
//! straight rules, which is all an invoice needs.
//!
//! Why hand-written rather than a crate: the PDF crates either need font files
//! (genpdf embeds TrueType fonts, and the machines have no system fonts), pull
//! image and layout stacks into the server (printpdf), or bring their own
//! encryption stack (lopdf: aes, sha2, md-5, rand), which would all ship in the
//! production binary for ~150 lines of text layout. The standard 14 fonts need
//! no embedding, and an uncompressed content stream keeps the output easy to
//! inspect. The tests parse the output with lopdf (a dev-dependency only) and
//! check the extracted text, so the file is checked by an independent reader.

use std::fmt::Write as _;

/// US Letter, in points.
pub const PAGE_WIDTH: f32 = 612.0;
pub const PAGE_HEIGHT: f32 = 792.0;

/// One of the two fonts every page has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Font {
    Regular,
    Bold,
}

impl Font {
    fn resource(self) -> &'static str {
        match self {
            Font::Regular => "F1",
            Font::Bold => "F2",
        }
    }
}

/// A page being drawn: its content stream.
#[derive(Default)]
pub struct Page {
    content: String,
}

impl Page {
    /// Writes `text` with its baseline starting at (`x`, `y`), from the bottom left.
    pub fn text(&mut self, x: f32, y: f32, font: Font, size: f32, text: &str) {
        let _ = writeln!(
            self.content,
            "BT /{} {size:.1} Tf {x:.2} {y:.2} Td ({}) Tj ET",
            font.resource(),
            escape(text)
        );
    }

    /// Writes `text` ending at `right` (right-aligned, for figures).
    pub fn text_right(&mut self, right: f32, y: f32, font: Font, size: f32, text: &str) {
        self.text(right - width(text, size), y, font, size, text);
    }

    /// A horizontal rule from `x1` to `x2` at height `y`.
    pub fn rule(&mut self, x1: f32, x2: f32, y: f32) {
        let _ = writeln!(self.content, "0.5 w {x1:.2} {y:.2} m {x2:.2} {y:.2} l S");
    }
}

/// Width of `text` in Helvetica at `size` points. Exact for digits and the
/// punctuation of amounts (what is right-aligned); other characters count as a
/// digit, which is close enough for Helvetica's average glyph.
pub fn width(text: &str, size: f32) -> f32 {
    let units: u32 = text
        .chars()
        .map(|c| match c {
            ' ' | ',' | '.' | '/' => 278,
            '-' => 333,
            '%' => 889,
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0
}

/// `text` as a PDF literal string in WinAnsiEncoding: Latin-1 characters are
/// kept, others become `?` (the standard fonts have no glyphs for them), and
/// `(`, `)` and `\` are escaped; control characters become spaces.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push(' '),
            c if (c as u32) < 0x7f => out.push(c),
            // WinAnsi equals Latin-1 from 0xA0 on; written as octal escapes so the
            // file stays ASCII.
            c if (0xa0..=0xff).contains(&(c as u32)) => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            _ => out.push('?'),
        }
    }
    out
}

/// Assembles `pages` into a PDF file with `title` in its information dictionary.
pub fn render(title: &str, pages: &[Page]) -> Vec<u8> {
    // Objects: 1 catalog, 2 page tree, 3 and 4 fonts, 5 info, then per page
    // the page and its content stream.
    let first_page = 6;
    let page_ids: Vec<usize> = (0..pages.len()).map(|i| first_page + 2 * i).collect();
    let mut objects: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            page_ids
                .iter()
                .map(|id| format!("{id} 0 R"))
                .collect::<Vec<_>>()
                .join(" "),
            pages.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
            .to_owned(),
        format!("<< /Title ({}) /Producer (ecom) >>", escape(title)),
    ];
    for (page, id) in pages.iter().zip(&page_ids) {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] \
             /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
            id + 1
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{}endstream",
            page.content.len(),
            page.content
        ));
    }

    // The header's second line has bytes above 127, which tells transfer
    // tools that the file is binary.
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        // Each entry is 20 bytes: the line ends in a space and a newline.
        let _ = writeln!(table, "{offset:010} 00000 n ");
    }
    let _ = write!(
        table,
        "trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(table.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_kept_in_winansi() {
        assert_eq!(escape(r"a (b) \c"), r"a \(b\) \\c");
        assert_eq!(escape("Café"), r"Caf\351");
        assert_eq!(escape("€ 5\n"), "? 5 ");
    }

    #[test]
    fn the_cross_reference_table_points_at_each_object() {
        let mut page = Page::default();
        page.text(50.0, 700.0, Font::Bold, 12.0, "Hello");
        let pdf = render("T", &[page]);
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        // Past the binary comment of the header, the file is ASCII.
        let header = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".len();
        let text = std::str::from_utf8(&pdf[header..]).expect("ASCII after the header");
        let xref: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|s| s.lines().next())
            .and_then(|s| s.parse().ok())
            .expect("startxref");
        let table = &text[xref - header..];
        assert!(table.starts_with("xref\n0 8\n"), "{table}");
        for (n, line) in table.lines().skip(3).take(7).enumerate() {
            let offset: usize = line[..10].parse().unwrap();
            assert!(
                pdf[offset..].starts_with(format!("{} 0 obj", n + 1).as_bytes()),
                "object {}",
                n + 1
            );
        }
    }
}
