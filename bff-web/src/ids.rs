//! Validation of ids taken from client paths: 1..=32 ASCII digits, else 404 (an id that cannot exist).

use bff_core::BffError;

/// `id` if it is 1..=32 ASCII digits, else [`BffError::NotFound`].
pub(crate) fn numeric_id(id: &str) -> Result<&str, BffError> {
    if (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(BffError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digits pass; traversal, empty and oversized ids do not.
    #[test]
    fn only_digits() {
        assert!(numeric_id("42").is_ok());
        for bad in ["", "../1", "1a", "%2e", &"1".repeat(33)] {
            assert_eq!(numeric_id(bad), Err(BffError::NotFound));
        }
    }
}
