//! Identity's domain types, shared by the auth and users services (both own
//! the `users` table).
//!
//! Values here are valid by construction: the gRPC layer turns wire messages
//! into them, collecting one violation per bad field (named by its JSON
//! name), and code past that point never re-checks.

use secrecy::{ExposeSecret, SecretString};

pub use crate::validation::Violations;

/// An email address, trimmed, at most 254 characters, `local@domain.tld`.
/// Compared case-insensitively by the database (unique on `lower(email)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses a user-entered address.
    pub fn parse(s: &str) -> Result<Email, Vec<String>> {
        let s = s.trim();
        if s.is_empty() {
            return Err(vec!["Email is required".to_owned()]);
        }
        let valid = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.len() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
                    && domain
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            });
        if valid {
            Ok(Email(s.to_owned()))
        } else {
            Err(vec!["Invalid email format".to_owned()])
        }
    }

    /// The address as entered (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8 to 128 characters, at least one uppercase letter and one digit
/// (registration, reset and change alike). Never logged.
#[derive(Debug, Clone)]
pub struct NewPassword(SecretString);

impl NewPassword {
    /// Checks the rules, reporting every one that fails.
    pub fn parse(s: &str) -> Result<NewPassword, Vec<String>> {
        let mut failures = Vec::new();
        let len = s.chars().count();
        if len < 8 {
            failures.push("Must be at least 8 characters".to_owned());
        }
        if len > 128 {
            failures.push("Must be at most 128 characters".to_owned());
        }
        if !s.chars().any(|c| c.is_uppercase()) {
            failures.push("Must contain an uppercase letter".to_owned());
        }
        if !s.chars().any(|c| c.is_ascii_digit()) {
            failures.push("Must contain a number".to_owned());
        }
        if failures.is_empty() {
            Ok(NewPassword(SecretString::from(s.to_owned())))
        } else {
            Err(failures)
        }
    }

    /// The password, for hashing.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    /// The password's characters, for hashing.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A first or last name: 2 to 50 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    /// Parses a name.
    pub fn parse(s: &str) -> Result<PersonName, Vec<String>> {
        let s = s.trim();
        let len = s.chars().count();
        if !(2..=50).contains(&len) {
            return Err(vec!["Must be between 2 and 50 characters".to_owned()]);
        }
        if s.chars().any(char::is_control) {
            return Err(vec!["Must not contain control characters".to_owned()]);
        }
        Ok(PersonName(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A login name: 3 to 30 characters of letters, digits, `.`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a user-chosen username.
    pub fn parse(s: &str) -> Result<Username, Vec<String>> {
        let s = s.trim();
        let len = s.chars().count();
        if !(3..=30).contains(&len) {
            return Err(vec!["Must be between 3 and 30 characters".to_owned()]);
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(vec![
                "May contain only letters, digits, '.', '_' and '-'".to_owned(),
            ]);
        }
        Ok(Username(s.to_owned()))
    }

    /// A username made from an email's local part (the caller adds a suffix on collision).
    pub fn from_email(email: &Email) -> Username {
        let local = email.as_str().split('@').next().unwrap_or("user");
        let mut name: String = local
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(24)
            .collect();
        while name.len() < 3 {
            name.push('0');
        }
        Username(name)
    }

    /// The same name with a numeric suffix, for collisions.
    pub fn with_suffix(&self, n: u32) -> Username {
        Username(format!("{}{n}", self.0))
    }

    /// The username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number: optional `+`, then 6 to 20 digits, spaces, dashes, dots or parentheses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Parses a phone number; the empty string clears it.
    pub fn parse(s: &str) -> Result<Phone, Vec<String>> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Phone(String::new()));
        }
        let body = s.strip_prefix('+').unwrap_or(s);
        let digits = body.chars().filter(char::is_ascii_digit).count();
        let allowed = body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'));
        if allowed && (6..=20).contains(&digits) && s.len() <= 30 {
            Ok(Phone(s.to_owned()))
        } else {
            Err(vec!["Invalid phone number".to_owned()])
        }
    }

    /// The number as entered (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An age in years, 0 to 150.
pub fn parse_age(age: i32) -> Result<i32, Vec<String>> {
    if (0..=150).contains(&age) {
        Ok(age)
    } else {
        Err(vec!["Must be between 0 and 150".to_owned()])
    }
}

/// A gender as entered: at most 30 characters, no control characters.
pub fn parse_gender(s: &str) -> Result<String, Vec<String>> {
    let s = s.trim();
    if s.chars().count() > 30 || s.chars().any(char::is_control) {
        Err(vec!["Must be at most 30 characters".to_owned()])
    } else {
        Ok(s.to_lowercase())
    }
}

/// A registration (POST /auth/register), validated.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub password: NewPassword,
    pub first_name: PersonName,
    pub last_name: PersonName,
    /// Chosen by the user, or derived from the email when absent.
    pub username: Option<Username>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_need_length_uppercase_and_digit() {
        assert!(NewPassword::parse("SecurePass123").is_ok());
        assert_eq!(NewPassword::parse("short1A").unwrap_err().len(), 1);
        assert_eq!(NewPassword::parse("alllowercase").unwrap_err().len(), 2);
        assert!(NewPassword::parse(&format!("A1{}", "x".repeat(127))).is_err());
    }

    #[test]
    fn emails_are_checked() {
        assert!(Email::parse("Jane.Doe@Example.com").is_ok());
        for bad in [
            "", "no-at", "a@b", "a@@b.co", "a b@c.co", "@b.co", "a@.b.co",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_2_to_50_chars() {
        assert!(PersonName::parse("Jo").is_ok());
        assert!(PersonName::parse("J").is_err());
        assert!(PersonName::parse(&"x".repeat(51)).is_err());
    }
}
