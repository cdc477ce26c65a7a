//! Unit tests: the partner views carry no personal or internal data, the defaults hold the documented keys,
//! and the OpenAPI document describes the API.

use std::collections::HashMap;

use bff_core::auth::{ApiKeys, hash_key};
use shared_schemas::downstream::{
    Address, Image, Inventory, Money, Order, OrderItem, Payment, Product, ProductInternal,
    WarehouseStock,
};
use shared_schemas::views::partner::{OrderV1, ProductAvailabilityV1, ProductListV1, ProductV1};

use super::*;

/// Strings planted in the rich DTOs that must never reach a partner.
const FORBIDDEN: &[&str] = &[
    "user_id",
    "user-4711",
    "shipping_address",
    "Secret Street",
    "Hidden City",
    "99999",
    "payment",
    "card_last4",
    "1234",
    "processor_ref",
    "psp-ref-xyz",
    "internal",
    "vip customer, call back",
    "supplier",
    "sup-777",
    "cost_cents",
    "margin",
    "warehouse",
    "wh-secret",
    "reserved",
    "created_at",
    "updated_at",
    "tags",
    "secret-tag",
    "related_ids",
    "attributes",
    "email",
    "@",
    "original.jpg",
    "thumbnail",
];

fn money(cents: i64) -> Money {
    Money {
        amount_cents: cents,
        currency: "EUR".into(),
    }
}

fn rich_product(id: &str) -> Product {
    Product {
        id: id.into(),
        sku: format!("SKU-{id}"),
        name: format!("Product {id}"),
        description: "A fine product.".into(),
        category: "kitchen".into(),
        brand: "Brandt".into(),
        price: money(1999),
        images: ["thumbnail", "small", "medium", "large", "original"]
            .iter()
            .map(|size| Image {
                size: (*size).into(),
                url: format!("https://img.example/{id}/{size}.jpg"),
                width: 100,
                height: 100,
            })
            .collect(),
        attributes: vec![("colour".into(), "red".into())],
        related_ids: vec!["12".into()],
        tags: vec!["secret-tag".into()],
        created_at: "2020-01-01T00:00:00Z".into(),
        updated_at: "2020-01-02T00:00:00Z".into(),
        internal: ProductInternal {
            supplier_id: "sup-777".into(),
            cost_cents: 123,
            margin_pct: 55.5,
            warehouse_notes: "wh-secret notes".into(),
        },
    }
}

fn rich_inventory(id: &str, available: u32) -> Inventory {
    Inventory {
        product_id: id.into(),
        available,
        reserved: 4,
        warehouses: vec![WarehouseStock {
            warehouse_id: "wh-secret".into(),
            on_hand: available + 4,
        }],
        restock_eta: (available == 0).then(|| "2030-05-01T00:00:00Z".into()),
        updated_at: "2020-01-03T00:00:00Z".into(),
    }
}

fn rich_order() -> Order {
    Order {
        id: "1001".into(),
        user_id: "user-4711".into(),
        partner_id: Some("acme".into()),
        status: "shipped".into(),
        items: vec![
            OrderItem {
                product_id: "5".into(),
                quantity: 2,
                unit_price: money(500),
            },
            OrderItem {
                product_id: "6".into(),
                quantity: 1,
                unit_price: money(250),
            },
        ],
        total: money(1250),
        placed_at: "2024-03-01T10:00:00Z".into(),
        shipping_address: Address {
            line1: "1 Secret Street".into(),
            city: "Hidden City".into(),
            postal_code: "99999".into(),
            country: "DE".into(),
        },
        payment: Payment {
            method: "card".into(),
            card_last4: "1234".into(),
            processor_ref: "psp-ref-xyz".into(),
        },
        internal_notes: "vip customer, call back".into(),
    }
}

fn assert_clean(json: &serde_json::Value) {
    let text = json.to_string();
    for needle in FORBIDDEN {
        assert!(!text.contains(needle), "`{needle}` leaked into {text}");
    }
}

fn keys(json: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = json
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}

/// A product view built from a rich DTO has exactly the contract's fields and nothing internal.
#[test]
fn product_view_has_no_internal_data() {
    let view = ProductV1::new(rich_product("5"), Some(&rich_inventory("5", 3)));
    let json = serde_json::to_value(&view).unwrap();
    assert_clean(&json);
    assert_eq!(
        keys(&json),
        [
            "availability",
            "brand",
            "category",
            "description",
            "id",
            "image_url",
            "name",
            "price",
            "sku"
        ]
    );
    assert_eq!(json["image_url"], "https://img.example/5/large.jpg");
    assert_eq!(
        json["availability"],
        serde_json::json!({"in_stock": true, "available": 3})
    );
    assert_eq!(
        json["price"],
        serde_json::json!({"amount_cents": 1999, "currency": "EUR"})
    );
    // Without stock the field is still present, as null (stable shape).
    let json = serde_json::to_value(ProductV1::from(rich_product("5"))).unwrap();
    assert!(json["availability"].is_null());
    // The view round-trips.
    let back: ProductV1 = serde_json::from_value(serde_json::to_value(&view).unwrap()).unwrap();
    assert_eq!(back, view);
}

/// The list view is clean and keeps order and missing ids.
#[test]
fn product_list_view_has_no_internal_data() {
    let requested: Vec<String> = vec!["6".into(), "404".into(), "5".into()];
    let products: HashMap<String, Product> = ["5", "6"]
        .iter()
        .map(|id| ((*id).to_string(), rich_product(id)))
        .collect();
    let stock: HashMap<String, Inventory> = ["5", "6"]
        .iter()
        .map(|id| ((*id).to_string(), rich_inventory(id, 0)))
        .collect();
    let json =
        serde_json::to_value(ProductListV1::new(&requested, products, Some(&stock))).unwrap();
    assert_clean(&json);
    assert_eq!(keys(&json), ["items", "missing"]);
    assert_eq!(json["items"][0]["id"], "6");
    assert_eq!(json["items"][1]["id"], "5");
    assert_eq!(json["items"][1]["availability"]["in_stock"], false);
    assert_eq!(json["missing"], serde_json::json!(["404"]));
}

/// The availability view is clean (no warehouses, no reserved count).
#[test]
fn availability_view_has_no_internal_data() {
    let json = serde_json::to_value(ProductAvailabilityV1::from(rich_inventory("5", 0))).unwrap();
    assert_clean(&json);
    assert_eq!(
        json,
        serde_json::json!({
            "product_id": "5", "in_stock": false, "available": 0, "restock_eta": "2030-05-01T00:00:00Z"
        })
    );
    let json = serde_json::to_value(ProductAvailabilityV1::from(rich_inventory("5", 7))).unwrap();
    assert!(json["restock_eta"].is_null());
}

/// The order view has no user id, address, payment or internal notes, with or without product data.
#[test]
fn order_view_has_no_pii() {
    let products: HashMap<String, Product> =
        [("5".to_string(), rich_product("5"))].into_iter().collect();
    let json = serde_json::to_value(OrderV1::new(rich_order(), Some(&products))).unwrap();
    assert_clean(&json);
    assert_eq!(keys(&json), ["id", "items", "placed_at", "status", "total"]);
    assert_eq!(
        keys(&json["items"][0]),
        ["name", "product_id", "quantity", "sku", "unit_price"]
    );
    assert_eq!(json["items"][0]["sku"], "SKU-5");
    assert_eq!(json["items"][0]["name"], "Product 5");
    assert!(json["items"][1]["sku"].is_null());
    assert_eq!(json["total"]["amount_cents"], 1250);
    let json = serde_json::to_value(OrderV1::new(rich_order(), None)).unwrap();
    assert_clean(&json);
    assert!(json["items"][0]["name"].is_null());
}

/// The defaults carry the two documented development keys, and they verify to the documented partners.
#[test]
fn defaults_hold_the_dev_keys() {
    let config = defaults();
    assert_eq!(config.server.listen.port(), 8083);
    assert_eq!(config.auth.mode, AuthMode::ApiKey);
    config.validate().unwrap();
    assert_eq!(config.auth.api_keys[0].key_sha256, hash_key("dev-acme-key"));
    assert_eq!(
        config.auth.api_keys[1].key_sha256,
        hash_key("dev-globex-key")
    );
    let keys = ApiKeys::new(&config.auth.api_keys);
    let acme = keys.verify("dev-acme-key").unwrap();
    let partner = acme.partner.clone().unwrap();
    assert_eq!(
        (partner.id.as_str(), partner.tier.as_str()),
        ("acme", "gold")
    );
    assert!(acme.has_scopes(&[SCOPE_CATALOG_READ, SCOPE_INVENTORY_READ, SCOPE_ORDERS_READ]));
    let globex = keys.verify("dev-globex-key").unwrap();
    assert_eq!(globex.partner.unwrap().tier, "silver");
    assert_eq!(globex.scopes, [SCOPE_CATALOG_READ]);
    assert!(keys.verify("dev-other-key").is_none());
    for name in DOWNSTREAMS {
        assert!(config.downstreams.contains_key(*name), "{name}");
    }
}

/// The router builds from the defaults; a config without a needed downstream names it.
#[tokio::test]
async fn app_builds_and_names_missing_downstreams() {
    assert!(app(defaults()).is_ok());
    let mut config = defaults();
    config.downstreams.remove("inventory");
    let err = app(config).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("downstreams.inventory"), "{err}");
}

/// The OpenAPI document lists every route and the views (core adds the API-key scheme).
#[test]
fn openapi_describes_the_api() {
    let doc = serde_json::to_value(openapi()).unwrap();
    for path in [
        "/v1/products",
        "/v1/products/{id}",
        "/v1/products/{id}/availability",
        "/v1/orders/{id}",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path}");
    }
    for schema in [
        "ProductV1",
        "ProductListV1",
        "ProductAvailabilityV1",
        "OrderV1",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    let text = doc.to_string();
    assert!(
        !text.contains("user_id") && !text.contains("shipping_address"),
        "{text}"
    );
}
