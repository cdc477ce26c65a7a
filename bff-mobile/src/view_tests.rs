//! Unit tests of the mobile views (shared_schemas::views::mobile): teaser cutting, rounding, thumbnails and
//! the lean shapes, with hand-built downstream DTOs.

use std::collections::HashMap;

use shared_schemas::downstream::*;
use shared_schemas::views::mobile::*;

fn money(cents: i64) -> Money {
    Money {
        amount_cents: cents,
        currency: "EUR".into(),
    }
}

fn image(size: &str, w: u32) -> Image {
    Image {
        size: size.into(),
        url: format!("https://img.example/{size}.jpg"),
        width: w,
        height: w,
    }
}

fn product(id: &str, description: &str) -> Product {
    Product {
        id: id.into(),
        sku: format!("SKU-{id}"),
        name: format!("Product {id}"),
        description: description.into(),
        category: "kitchen".into(),
        brand: "Acme".into(),
        price: money(1999),
        images: vec![
            image("original", 4000),
            image("thumbnail", 100),
            image("large", 1200),
        ],
        attributes: vec![("colour".into(), "red".into())],
        related_ids: vec!["2".into()],
        tags: vec!["tag".into()],
        created_at: "2024-01-01T00:00:00Z".into(),
        updated_at: "2024-01-02T00:00:00Z".into(),
        internal: ProductInternal {
            supplier_id: "sup-1".into(),
            cost_cents: 900,
            margin_pct: 55.0,
            warehouse_notes: "fragile".into(),
        },
    }
}

fn address() -> Address {
    Address {
        line1: "Main St 1".into(),
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: "DE".into(),
    }
}

fn order(id: &str, user: &str, quantities: &[u32]) -> Order {
    Order {
        id: id.into(),
        user_id: user.into(),
        partner_id: None,
        status: "shipped".into(),
        items: quantities
            .iter()
            .enumerate()
            .map(|(n, q)| OrderItem {
                product_id: (n + 1).to_string(),
                quantity: *q,
                unit_price: money(100),
            })
            .collect(),
        total: money(4200),
        placed_at: "2024-05-01T10:00:00Z".into(),
        shipping_address: address(),
        payment: Payment {
            method: "card".into(),
            card_last4: "4242".into(),
            processor_ref: "pr_1".into(),
        },
        internal_notes: "vip".into(),
    }
}

fn user() -> User {
    User {
        id: "7".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        email: "ada@example.com".into(),
        phone: "+49 30 1234".into(),
        address: address(),
        locale: "de-DE".into(),
        marketing_opt_in: true,
        created_at: "2024-01-01T00:00:00Z".into(),
        updated_at: "2024-01-01T00:00:00Z".into(),
        internal: UserInternal {
            risk_score: 0.1,
            crm_id: "crm-7".into(),
            segment: "gold".into(),
        },
    }
}

fn recs(ids: &[&str]) -> Recommendations {
    Recommendations {
        user_id: "7".into(),
        items: ids
            .iter()
            .map(|id| Recommendation {
                product_id: (*id).into(),
                score: 0.5,
                reason: "bought_together".into(),
            })
            .collect(),
        model_version: "m1".into(),
        generated_at: "2024-01-01T00:00:00Z".into(),
    }
}

/// Short text: whole words only, at most the limit, whitespace collapsed, short text unchanged.
#[test]
fn short_text_cuts_at_word_boundary() {
    assert_eq!(short_text("Hello world", 140), "Hello world");
    assert_eq!(short_text("  Hello\n\n  world  ", 140), "Hello world");
    assert_eq!(short_text("aaa bbb ccc", 7), "aaa bbb");
    assert_eq!(short_text("aaa bbb ccc", 8), "aaa bbb");
    assert_eq!(short_text("aaa bbb ccc", 6), "aaa");
    assert_eq!(short_text("abcdefghij", 4), "abcd");
    assert_eq!(short_text("", 140), "");
    // Exactly at the limit is kept whole.
    let exact = format!("{} {}", "a".repeat(69), "b".repeat(70));
    assert_eq!(short_text(&exact, 140), exact);
    // Long description: <= 140 chars, a word-boundary prefix of the collapsed text.
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(10);
    let short = short_text(&long, 140);
    assert!(short.chars().count() <= 140, "{short}");
    assert!(long.starts_with(&short));
    assert!(long[short.len()..].starts_with(' '));
    assert!(!short.ends_with(' '));
}

/// Characters, not bytes: multi-byte text is never split inside a character and counts by character.
#[test]
fn short_text_counts_characters() {
    let text = "äöü ".repeat(50);
    let short = short_text(&text, 140);
    assert_eq!(short.chars().count(), 139);
    assert_eq!(short_text("ééééé", 3), "ééé");
}

/// Ratings are rounded to one decimal; NaN becomes 0.
#[test]
fn rating_is_rounded() {
    assert_eq!(round1(4.26), 4.3);
    assert_eq!(round1(4.24), 4.2);
    assert_eq!(round1(3.0), 3.0);
    assert_eq!(round1(f64::NAN), 0.0);
    let r = RatingView::from(RatingSummary {
        product_id: "1".into(),
        average: 3.6666,
        count: 3,
        histogram: vec![0, 0, 1, 2, 0],
    });
    assert_eq!(
        r,
        RatingView {
            average: 3.7,
            count: 3
        }
    );
}

/// The thumbnail rendition is chosen; without one, the smallest image; without images, none.
#[test]
fn thumbnail_choice() {
    assert_eq!(
        thumbnail_url(&product("1", "").images).as_deref(),
        Some("https://img.example/thumbnail.jpg")
    );
    assert_eq!(
        thumbnail_url(&[image("large", 1200), image("small", 300)]).as_deref(),
        Some("https://img.example/small.jpg")
    );
    assert_eq!(thumbnail_url(&[]), None);
}

/// The product view is lean: only the listed fields, none of the internal ones.
#[test]
fn product_view_is_lean() {
    let p = product("42", &"word ".repeat(100));
    let inv = Inventory {
        product_id: "42".into(),
        available: 0,
        reserved: 1,
        warehouses: vec![WarehouseStock {
            warehouse_id: "w1".into(),
            on_hand: 1,
        }],
        restock_eta: None,
        updated_at: "2024-01-01T00:00:00Z".into(),
    };
    let view = ProductView::new(p, None, Some(inv));
    assert_eq!(view.in_stock, Some(false));
    assert_eq!(view.rating, None);
    assert!(view.short_description.chars().count() <= 140);
    let json = serde_json::to_value(&view).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "id",
            "in_stock",
            "name",
            "price",
            "rating",
            "short_description",
            "thumbnail_url"
        ]
    );
    let text = json.to_string();
    for secret in ["supplier", "cost_cents", "sku", "warehouse", "original.jpg"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

/// Home: three newest orders with unit counts, recommendations in order with unknown products skipped.
#[test]
fn home_view_shape() {
    let page = OrderPage {
        items: vec![
            order("4", "7", &[1, 2]),
            order("3", "7", &[5]),
            order("2", "7", &[]),
            order("1", "7", &[1]),
        ],
        next_cursor: Some("c".into()),
    };
    let products: HashMap<String, Product> = ["9", "3", "5"]
        .iter()
        .map(|id| (id.to_string(), product(id, "d")))
        .collect();
    let items = home_recommendations(&recs(&["5", "404", "3", "5", "9"]), &products);
    let ids: Vec<&str> = items.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["5", "3", "9"]);
    assert_eq!(
        items[0].thumbnail_url.as_deref(),
        Some("https://img.example/thumbnail.jpg")
    );
    let view = HomeView::new(user(), page, Some(items));
    assert_eq!(view.first_name, "Ada");
    let orders: Vec<(&str, u32)> = view
        .orders
        .iter()
        .map(|o| (o.id.as_str(), o.item_count))
        .collect();
    assert_eq!(orders, [("4", 3), ("3", 5), ("2", 0)]);
    let text = serde_json::to_string(&view).unwrap();
    for secret in [
        "Lovelace",
        "ada@example.com",
        "crm",
        "4242",
        "Main St",
        "bought_together",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let none = HomeView::new(
        user(),
        OrderPage {
            items: vec![],
            next_cursor: None,
        },
        None,
    );
    assert_eq!(
        serde_json::to_value(&none).unwrap(),
        serde_json::json!({"first_name": "Ada", "orders": [], "recommendations": null})
    );
}

/// Home recommendations are capped at five.
#[test]
fn home_recommendations_capped() {
    let ids: Vec<String> = (1..=8).map(|n| n.to_string()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let products: HashMap<String, Product> = ids
        .iter()
        .map(|id| (id.clone(), product(id, "d")))
        .collect();
    assert_eq!(
        home_recommendations(&recs(&refs), &products).len(),
        HOME_RECOMMENDATIONS
    );
}

/// Order lines get names and thumbnails from the batch, `null` for unknown products or a failed batch.
#[test]
fn order_view_enrichment() {
    let products: HashMap<String, Product> =
        [("1".to_string(), product("1", "d"))].into_iter().collect();
    let view = OrderView::new(order("1001", "7", &[2, 1]), Some(&products));
    assert_eq!(view.items.len(), 2);
    assert_eq!(view.items[0].name.as_deref(), Some("Product 1"));
    assert_eq!(view.items[0].quantity, 2);
    assert!(view.items[0].thumbnail_url.is_some());
    assert_eq!(view.items[1].product_id, "2");
    assert_eq!(view.items[1].name, None);
    assert_eq!(view.items[1].thumbnail_url, None);
    let bare = OrderView::new(order("1001", "7", &[2]), None);
    assert_eq!(bare.items[0].name, None);
    let text = serde_json::to_string(&bare).unwrap();
    for secret in ["user_id", "4242", "vip", "Main St", "unit_price"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}
