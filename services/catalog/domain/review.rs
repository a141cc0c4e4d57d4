//! Customer reviews and wishlists: what a request may ask, valid by construction.

use super::Violations;

/// Stars of a review: an integer 1 to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stars(i16);

impl Stars {
    pub fn parse(raw: i32) -> Result<Stars, String> {
        match i16::try_from(raw) {
            Ok(n) if (1..=5).contains(&n) => Ok(Stars(n)),
            _ => Err("must be an integer from 1 to 5".to_owned()),
        }
    }

    pub fn get(self) -> i16 {
        self.0
    }
}

/// The text of a review: 1 to 2,000 characters once trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment(String);

impl Comment {
    pub const MAX_CHARS: usize = 2000;

    pub fn parse(raw: &str) -> Result<Comment, String> {
        let text = raw.trim();
        match text.chars().count() {
            0 => Err("must not be empty".to_owned()),
            n if n > Self::MAX_CHARS => Err(format!(
                "must be at most {} characters (got {n})",
                Self::MAX_CHARS
            )),
            _ if super::has_control(text) => Err(super::CONTROL.to_owned()),
            _ => Ok(Comment(text.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new review: both fields required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReview {
    pub stars: Stars,
    pub comment: Comment,
}

impl NewReview {
    pub fn parse(rating: i32, comment: &str) -> Result<NewReview, Violations> {
        let mut violations = Violations::default();
        let stars = violations.check("rating", Stars::parse(rating));
        let comment = violations.check("comment", Comment::parse(comment));
        match (stars, comment) {
            (Some(stars), Some(comment)) if violations.is_empty() => {
                Ok(NewReview { stars, comment })
            }
            _ => Err(violations),
        }
    }
}

/// An edit of a review: the fields present change, at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewEdit {
    pub stars: Option<Stars>,
    pub comment: Option<Comment>,
}

impl ReviewEdit {
    pub fn parse(rating: Option<i32>, comment: Option<&str>) -> Result<ReviewEdit, Violations> {
        let mut violations = Violations::default();
        if rating.is_none() && comment.is_none() {
            violations.push("rating", "give a rating or a comment to change");
        }
        let stars = rating.and_then(|r| violations.check("rating", Stars::parse(r)));
        let comment = comment.and_then(|c| violations.check("comment", Comment::parse(c)));
        violations.finish(|| ReviewEdit { stars, comment })
    }
}

/// A page of a wishlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WishlistPage {
    pub skip: i64,
    pub limit: i64,
}

impl WishlistPage {
    pub const DEFAULT_LIMIT: i64 = 30;
    /// Larger asks are clamped to it, like the product listings' limit.
    pub const MAX_LIMIT: i64 = 100;

    /// `limit` 0 (absent on the wire) is the default; negative values are violations.
    pub fn parse(skip: i64, limit: i64) -> Result<WishlistPage, Violations> {
        let mut violations = Violations::default();
        if skip < 0 {
            violations.push("skip", "must be 0 or more");
        }
        if limit < 0 {
            violations.push("limit", "must be 0 or more");
        }
        let limit = match limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        };
        violations.finish(|| WishlistPage { skip, limit })
    }
}

/// One product in a wishlist, with the product as a list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WishlistEntry {
    pub added_at: chrono::DateTime<chrono::Utc>,
    pub product: ProductSummary,
}

/// What a wishlist shows of a product.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductSummary {
    pub id: i64,
    pub title: String,
    pub price_cents: i64,
    pub discount_percentage: f64,
    pub thumbnail: String,
    pub stock: i32,
    pub availability_status: String,
    pub rating: f64,
    pub category: String,
    pub brand: Option<String>,
}

/// The most entries one wishlist holds: a bound on what one account can make the catalog
/// store and page through (Shopify's wishlist apps cap lists in the hundreds too).
pub const WISHLIST_MAX_ITEMS: i64 = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_are_integers_from_one_to_five() {
        assert!(Stars::parse(0).is_err());
        assert!(Stars::parse(6).is_err());
        assert!(Stars::parse(-1).is_err());
        assert!(Stars::parse(70_000).is_err());
        assert_eq!(Stars::parse(1).unwrap().get(), 1);
        assert_eq!(Stars::parse(5).unwrap().get(), 5);
    }

    #[test]
    fn a_comment_is_one_to_two_thousand_characters_trimmed() {
        assert!(Comment::parse("").is_err());
        assert!(Comment::parse("   ").is_err());
        assert!(Comment::parse(&"é".repeat(2001)).is_err());
        assert_eq!(
            Comment::parse(&"é".repeat(2000))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            2000
        );
        assert_eq!(Comment::parse("  Great  ").unwrap().as_str(), "Great");
        assert!(Comment::parse("a\u{0}b").is_err());
        assert!(Comment::parse("a\u{7}b").is_err());
        assert!(Comment::parse("Line one\n\tLine two").is_ok());
    }

    #[test]
    fn a_new_review_names_every_bad_field() {
        let v = NewReview::parse(0, "").unwrap_err().into_inner();
        let fields: Vec<_> = v.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["rating", "comment"]);
        assert!(NewReview::parse(4, "Nice").is_ok());
    }

    #[test]
    fn an_edit_changes_at_least_one_field() {
        assert!(ReviewEdit::parse(None, None).is_err());
        assert!(ReviewEdit::parse(Some(6), None).is_err());
        let edit = ReviewEdit::parse(None, Some("Better")).unwrap();
        assert_eq!(edit.stars, None);
        assert_eq!(edit.comment.unwrap().as_str(), "Better");
    }

    #[test]
    fn a_wishlist_page_has_a_default_and_a_bound() {
        assert_eq!(WishlistPage::parse(0, 0).unwrap().limit, 30);
        assert_eq!(WishlistPage::parse(0, 1000).unwrap().limit, 100);
        assert!(WishlistPage::parse(-1, 10).is_err());
        assert!(WishlistPage::parse(0, -1).is_err());
    }
}
