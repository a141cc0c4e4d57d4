//! Property tests: the template parser and the matcher never panic, whatever they are given,
//! and what parses prints back to an equal template.

mod routing_support;

use std::sync::LazyLock;

use http::Method;
use proptest::prelude::*;
use transcoder::routes::{RouteMatch, RouteTable};
use transcoder::template::PathTemplate;

static TABLE: LazyLock<RouteTable> = LazyLock::new(|| {
    RouteTable::from_pool(&routing_support::routing_pool()).expect("table builds")
});

/// Strings made of the characters that matter to templates and paths, so the fuzzer reaches
/// deep into both grammars rather than failing on the first byte.
fn template_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("/"),
            Just("*"),
            Just("**"),
            Just("{"),
            Just("}"),
            Just("="),
            Just(":"),
            Just("."),
            Just("%"),
            Just("%2F"),
            Just("%zz"),
            Just("%E2%82%AC"),
            Just("%FF"),
            Just("a"),
            Just("id"),
            Just("books"),
            Just("search"),
            Just("v1"),
            Just("operations"),
            Just("shelves"),
            Just("files"),
            Just("cancel"),
            Just("archive"),
            Just("_"),
            Just("é"),
            Just(" "),
            Just("1"),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::from_bytes(b"PURGE").unwrap(),
    ])
}

proptest! {
    // PROPTEST_CASES raises the count for the long run (scripts/fuzz.sh --long).
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000)
    ))]

    #[test]
    fn parse_never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = PathTemplate::parse(&s);
    }

    #[test]
    fn parsed_templates_round_trip(s in template_like()) {
        if let Ok(template) = PathTemplate::parse(&s) {
            let printed = template.to_string();
            let reparsed = PathTemplate::parse(&printed);
            prop_assert_eq!(reparsed.as_ref(), Ok(&template), "{} printed as {}", s, printed);
        }
    }

    #[test]
    fn errors_point_inside_the_template(s in template_like()) {
        if let Err(err) = PathTemplate::parse(&s) {
            prop_assert!(err.position <= s.len());
            prop_assert!(s.is_char_boundary(err.position));
        }
    }

    #[test]
    fn match_never_panics_on_arbitrary_strings(m in method(), s in any::<String>()) {
        let _ = TABLE.match_request(&m, &s);
    }

    #[test]
    fn matches_bind_every_variable(m in method(), s in template_like()) {
        let path = format!("/{s}");
        match TABLE.match_request(&m, &path) {
            RouteMatch::Found { route, vars } => {
                prop_assert!(route.method == m || (m == Method::HEAD && route.method == Method::GET));
                prop_assert_eq!(vars.len(), route.template.variables().len());
            }
            RouteMatch::MethodNotAllowed { allow } => {
                prop_assert!(!allow.is_empty());
                prop_assert!(!allow.contains(&m));
            }
            RouteMatch::NotFound | RouteMatch::BadPath { .. } => {}
        }
    }
}
