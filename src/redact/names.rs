//! The word splitting of key and parameter names, shared by the JSON walker
//! (sensitive keys) and the query-string redactor (sensitive parameters).

/// Splits a parameter or key name into lower-case words: on every
/// non-alphanumeric character and on lower-to-upper case changes
/// (`xApiKey` → `x`, `api`, `key`).
pub(super) fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}
