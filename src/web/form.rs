//! Forms read as pairs, for forms whose checkboxes repeat a key.

use actix_web::web;

/// The raw pairs of a form.
pub type Pairs = web::Form<Vec<(String, String)>>;

/// The first value of `key` ("" when absent).
pub fn field<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// Every value of `key`, in order.
pub fn all_of(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}
