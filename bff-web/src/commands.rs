//! The commands web clients send (typed request bodies, unknown fields refused), their gateway-side checks
//! (JSON Pointers on failure).

use bff_core::body::{Validate, Violations};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/cart/items`: add units of a product to the caller's cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddToCart {
    /// Product id (digits).
    pub product_id: String,
    /// Units to add, 1..=20.
    pub quantity: u32,
}

impl Validate for AddToCart {
    fn validate(&self, errors: &mut Violations) {
        errors.check(
            shared_schemas::services::is_valid_id(&self.product_id),
            "/product_id",
            "must be a product id (1..=32 digits)",
        );
        errors.check(
            (1..=20).contains(&self.quantity),
            "/quantity",
            "must be 1..=20",
        );
    }
}

/// `POST /api/orders`: order the caller's cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// `card`, `paypal`, `invoice` or `apple_pay`.
    pub payment_method: String,
}

/// Payment methods the web app offers.
pub const PAYMENT_METHODS: &[&str] = &["card", "paypal", "invoice", "apple_pay"];

impl Validate for PlaceOrder {
    fn validate(&self, errors: &mut Violations) {
        errors.check(
            PAYMENT_METHODS.contains(&self.payment_method.as_str()),
            "/payment_method",
            "must be one of card, paypal, invoice, apple_pay",
        );
    }
}

/// `POST /api/products/{id}/reviews`: review a product as the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteReview {
    /// Stars, 1..=5.
    pub rating: u8,
    /// Headline, 1..=120 characters.
    pub title: String,
    /// Text, 1..=4000 characters.
    pub body: String,
}

impl Validate for WriteReview {
    fn validate(&self, errors: &mut Violations) {
        errors.check((1..=5).contains(&self.rating), "/rating", "must be 1..=5");
        let title = self.title.trim().chars().count();
        errors.check(
            (1..=120).contains(&title),
            "/title",
            "must have 1..=120 characters",
        );
        let body = self.body.trim().chars().count();
        errors.check(
            (1..=4000).contains(&body),
            "/body",
            "must have 1..=4000 characters",
        );
    }
}
