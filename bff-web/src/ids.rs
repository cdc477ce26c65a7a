//! Validation of ids taken from client paths (see `shared_schemas::services::is_valid_id`): 404 otherwise.

use bff_core::BffError;

/// `id` if it can name a resource, else [`BffError::NotFound`].
pub(crate) fn numeric_id(id: &str) -> Result<&str, BffError> {
    if shared_schemas::services::is_valid_id(id) {
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
