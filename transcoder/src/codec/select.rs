//! The field selector of `?select=title,price`.

/// The field selector of `?select=title,price` (comma separated top-level JSON names, whitespace
/// trimmed, empty entries ignored). An empty selector (`?select=`) selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    names: Vec<String>,
}

impl Selector {
    /// Parses the value of a `select` query parameter.
    pub fn parse(s: &str) -> Selector {
        let mut names: Vec<String> = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        Selector { names }
    }

    /// Whether the field with this JSON name is selected.
    pub fn contains(&self, json_name: &str) -> bool {
        self.names.iter().any(|n| n == json_name)
    }

    /// True when no name was given; the encoder then keeps every field.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The selected names, in the order given, without duplicates.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_trims_and_skips_empty_entries() {
        let s = Selector::parse(" title, ,price,,title ");
        assert_eq!(s.names().collect::<Vec<_>>(), ["title", "price"]);
        assert!(s.contains("title"));
        assert!(!s.contains("id"));
        assert!(Selector::parse(" , ").is_empty());
    }
}
