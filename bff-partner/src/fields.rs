//! Sparse fieldsets (`?fields=a,b.c`): the paths a partner may choose per endpoint. Each list names every
//! field of the view (objects and their members); anything else is a 400 naming it.

/// The fields of one product ([`shared_schemas::views::partner::ProductV1`]), under `prefix`.
macro_rules! product_fields {
    ($($prefix:literal)?) => {
        [
            concat!($($prefix,)? "id"),
            concat!($($prefix,)? "sku"),
            concat!($($prefix,)? "name"),
            concat!($($prefix,)? "brand"),
            concat!($($prefix,)? "category"),
            concat!($($prefix,)? "description"),
            concat!($($prefix,)? "price"),
            concat!($($prefix,)? "price.amount_cents"),
            concat!($($prefix,)? "price.currency"),
            concat!($($prefix,)? "image_url"),
            concat!($($prefix,)? "availability"),
            concat!($($prefix,)? "availability.in_stock"),
            concat!($($prefix,)? "availability.available"),
        ]
    };
}

/// `GET /v1/products/{id}`.
pub(crate) const PRODUCT: &[&str] = &product_fields!();

/// `GET /v1/products?ids=`.
pub(crate) const PRODUCT_LIST: &[&str] = &{
    let items = product_fields!("items.");
    let mut all = [""; 15];
    all[0] = "items";
    all[1] = "missing";
    let mut i = 0;
    while i < items.len() {
        all[i + 2] = items[i];
        i += 1;
    }
    all
};

/// `GET /v1/products/{id}/availability`.
pub(crate) const AVAILABILITY: &[&str] = &["product_id", "in_stock", "available", "restock_eta"];

/// `GET /v1/orders/{id}`.
pub(crate) const ORDER: &[&str] = &[
    "id",
    "status",
    "placed_at",
    "total",
    "total.amount_cents",
    "total.currency",
    "items",
    "items.product_id",
    "items.sku",
    "items.name",
    "items.quantity",
    "items.unit_price",
    "items.unit_price.amount_cents",
    "items.unit_price.currency",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The list endpoint allows its two members and every product field under `items.`.
    #[test]
    fn list_fields_are_complete() {
        assert_eq!(PRODUCT_LIST.len(), PRODUCT.len() + 2);
        for f in PRODUCT {
            assert!(PRODUCT_LIST.contains(&format!("items.{f}").as_str()), "{f}");
        }
        assert!(!PRODUCT_LIST.contains(&""));
    }
}
