//! Field-level validation failures, the one type every service's domain collects into:
//! keyed by the JSON field name (`price`, `images[2]`), in the order they were found, and
//! answered as 400 VALIDATION_ERROR by [`crate::errors::validation`].

/// What a failed parse says: one message, or several for the same field.
pub trait Messages {
    /// The messages, in order.
    fn into_messages(self) -> Vec<String>;
}

impl Messages for String {
    fn into_messages(self) -> Vec<String> {
        vec![self]
    }
}

impl Messages for Vec<String> {
    fn into_messages(self) -> Vec<String> {
        self
    }
}

/// Field-level validation failures, in the order they were found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    /// Records a failure of `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    /// Keeps the value of a successful parse, records its failures otherwise.
    pub fn check<T, M: Messages>(&mut self, field: &str, parsed: Result<T, M>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(messages) => {
                for message in messages.into_messages() {
                    self.push(field, message);
                }
                None
            }
        }
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing failed, the violations otherwise.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Violations> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }

    /// The `(field, message)` pairs, for [`crate::errors::validation`].
    pub fn into_inner(self) -> Vec<(String, String)> {
        self.0
    }

    /// The pairs, borrowed.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.0
    }
}

impl Violations {
    /// One failure of `field`.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Violations {
        Violations(vec![(field.into(), message.into())])
    }
}

/// `field: message; field: message`, for logs; clients get the pairs as `details`.
impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (field, message)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {message}")?;
        }
        Ok(())
    }
}

/// So a service's error enum can hold it as `Invalid(#[from] Violations)`.
impl std::error::Error for Violations {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_keeps_values_and_records_every_message_in_order() {
        let mut v = Violations::default();
        assert_eq!(v.check("a", Ok::<_, String>(1)), Some(1));
        assert_eq!(v.check::<i32, _>("b", Err("bad".to_owned())), None);
        assert_eq!(
            v.check::<i32, _>("c", Err(vec!["x".to_owned(), "y".to_owned()])),
            None
        );
        assert_eq!(
            v.into_inner(),
            [("b", "bad"), ("c", "x"), ("c", "y")].map(|(f, m)| (f.to_owned(), m.to_owned()))
        );
    }
}
