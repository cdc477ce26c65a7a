//! The composed endpoints of the mobile gateway, one module per screen, and what they share: id validation
//! and the sparse-fieldset allow-lists.

pub(crate) mod checkout;
pub(crate) mod fields;
pub(crate) mod home;
pub(crate) mod order;
pub(crate) mod product;

use bff_core::BffError;

/// Ok when `id` can name a resource of the domain (`shared_schemas::services::is_valid_id`), else 404.
pub(crate) fn validate_id(id: &str) -> Result<(), BffError> {
    if shared_schemas::services::is_valid_id(id) {
        Ok(())
    } else {
        Err(BffError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only short digit strings are ids.
    #[test]
    fn id_validation() {
        assert!(validate_id("1").is_ok());
        assert!(validate_id(&"9".repeat(32)).is_ok());
        for bad in ["", "abc", "1a", "../1", "1 ", "-1", "１", &"9".repeat(33)] {
            assert_eq!(validate_id(bad), Err(BffError::NotFound), "{bad:?}");
        }
    }
}
