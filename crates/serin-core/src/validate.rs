//! Rules for the words people type: names, free text, instants. Shared by
//! every room (a deployment's target, a product's name and a signal's tag
//! obey the same name rule), so none of them has to import another for it.

use crate::{DomainError, Timestamp};

/// Longest name accepted (products, targets, tags given as names).
pub const MAX_NAME_LEN: usize = 100;
/// Longest description accepted, for products and releases.
pub const MAX_DESCRIPTION_LEN: usize = 10_000;
/// How far ahead of the server's clock a reported timestamp may be.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// The earliest timestamp accepted: the Unix epoch (both databases store it).
pub const MIN_TIMESTAMP_SECS: i64 = 0;

/// Checks a product name (also used for names given in paths and signals).
pub fn validate_name(field: &str, name: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let all_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !all_ok {
        return Err(DomainError::invalid(
            field,
            "must start with a letter or digit and contain only letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// Checks an optional description: its length, and no control characters but
/// tab and line breaks.
pub fn validate_description(field: &str, text: Option<&str>) -> Result<(), DomainError> {
    let Some(t) = text else { return Ok(()) };
    if t.len() > MAX_DESCRIPTION_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_DESCRIPTION_LEN} bytes"),
        ));
    }
    validate_text(field, t)
}

/// Refuses control characters (NUL among them) other than tab, CR and LF: they
/// break terminals and logs, and PostgreSQL can't store NUL at all.
pub fn validate_text(field: &str, text: &str) -> Result<(), DomainError> {
    match text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some(c) => Err(DomainError::invalid(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                u32::from(c)
            ),
        )),
        None => Ok(()),
    }
}

/// Checks that an instant is not before [`MIN_TIMESTAMP_SECS`] nor after 9999.
pub fn validate_instant(field: &str, t: Timestamp) -> Result<(), DomainError> {
    use chrono::Datelike;
    if t.timestamp() < MIN_TIMESTAMP_SECS || t.year() > 9999 {
        return Err(DomainError::invalid(
            field,
            "must lie between 1970-01-01 and 9999-12-31",
        ));
    }
    Ok(())
}
