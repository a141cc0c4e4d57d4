//! Where a picture lives in the media store.

/// A path under `/media`: segments of ASCII letters, digits, `-`, `_` and `.`, never `.` or
/// `..` alone, no leading slash, at most 200 bytes. The store is a table keyed by this path,
/// not a folder, so nothing can be read outside it; the check makes every attempt (`..`,
/// `%2e%2e` once decoded, absolute paths) a plain 404 before any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPath(String);

impl MediaPath {
    /// The path, if it is one the store could hold.
    pub fn parse(raw: &str) -> Option<MediaPath> {
        let valid = !raw.is_empty()
            && raw.len() <= 200
            && raw.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            });
        valid.then(|| MediaPath(raw.to_owned()))
    }

    /// The path as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a client holding `if_none_match` (an If-None-Match header) already has the
/// picture tagged `etag` (quoted): a listed tag, weak or strong, or `*`.
pub fn not_modified(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|header| {
        header
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*")
    })
}

#[cfg(test)]
mod tests {
    use super::{MediaPath, not_modified};

    #[test]
    fn a_listed_tag_or_a_star_is_not_modified() {
        let etag = "\"abc\"";
        assert!(not_modified(Some("\"abc\""), etag));
        assert!(not_modified(Some("\"x\", W/\"abc\""), etag));
        assert!(not_modified(Some("*"), etag));
        assert!(!not_modified(Some("\"abd\""), etag));
        assert!(!not_modified(None, etag));
    }

    #[test]
    fn only_plain_relative_paths_are_media_paths() {
        assert!(MediaPath::parse("products/1/thumbnail.png").is_some());
        for bad in [
            "",
            "/etc/passwd",
            "../secret",
            "products/../../x",
            "products/./1.png",
            "products//1.png",
            "products/1.png/",
            "products\\1.png",
            "%2e%2e/x",
            "products/1 .png",
        ] {
            assert!(MediaPath::parse(bad).is_none(), "{bad:?}");
        }
    }
}
