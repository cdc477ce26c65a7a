//! Sparse fieldsets (`?fields=a,b.c`): the paths a client may choose per screen. Each list names every
//! field of the view (objects and their members); anything else is a 400 naming it.

/// `GET /api/home`.
pub(crate) const HOME: &[&str] = &[
    "first_name",
    "orders",
    "orders.id",
    "orders.status",
    "orders.total",
    "orders.total.amount_cents",
    "orders.total.currency",
    "orders.item_count",
    "recommendations",
    "recommendations.id",
    "recommendations.name",
    "recommendations.price",
    "recommendations.price.amount_cents",
    "recommendations.price.currency",
    "recommendations.thumbnail_url",
];

/// `GET /api/products/{id}`.
pub(crate) const PRODUCT: &[&str] = &[
    "id",
    "name",
    "price",
    "price.amount_cents",
    "price.currency",
    "thumbnail_url",
    "rating",
    "rating.average",
    "rating.count",
    "in_stock",
    "short_description",
];

/// `GET /api/orders/{id}`.
pub(crate) const ORDER: &[&str] = &[
    "id",
    "status",
    "total",
    "total.amount_cents",
    "total.currency",
    "placed_at",
    "items",
    "items.product_id",
    "items.name",
    "items.quantity",
    "items.thumbnail_url",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use shared_schemas::downstream::Money;
    use shared_schemas::views::mobile::{
        HomeOrder, HomeRecommendation, HomeView, OrderItemView, OrderView, ProductView, RatingView,
    };

    /// Every dotted path of a fully populated value.
    fn paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            if let Value::Object(map) = item {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    if !out.contains(&path) {
                        out.push(path.clone());
                    }
                    paths(v, &path, out);
                }
            }
        }
    }

    fn assert_lists_exactly<T: serde::Serialize>(view: &T, list: &[&str]) {
        let mut found = Vec::new();
        paths(&serde_json::to_value(view).unwrap(), "", &mut found);
        found.sort();
        let mut listed: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        listed.sort();
        assert_eq!(found, listed);
    }

    fn money() -> Money {
        Money {
            amount_cents: 1,
            currency: "EUR".into(),
        }
    }

    /// The allow-lists name exactly the fields of the views (no stale or missing entry).
    #[test]
    fn allow_lists_match_the_views() {
        let home = HomeView {
            first_name: "A".into(),
            orders: vec![HomeOrder {
                id: "1".into(),
                status: "paid".into(),
                total: money(),
                item_count: 1,
            }],
            recommendations: Some(vec![HomeRecommendation {
                id: "1".into(),
                name: "n".into(),
                price: money(),
                thumbnail_url: Some("u".into()),
            }]),
        };
        assert_lists_exactly(&home, HOME);
        let product = ProductView {
            id: "1".into(),
            name: "n".into(),
            price: money(),
            thumbnail_url: Some("u".into()),
            rating: Some(RatingView {
                average: 1.0,
                count: 1,
            }),
            in_stock: Some(true),
            short_description: "d".into(),
        };
        assert_lists_exactly(&product, PRODUCT);
        let order = OrderView {
            id: "1".into(),
            status: "paid".into(),
            total: money(),
            placed_at: "t".into(),
            items: vec![OrderItemView {
                product_id: "1".into(),
                name: Some("n".into()),
                quantity: 1,
                thumbnail_url: Some("u".into()),
            }],
        };
        assert_lists_exactly(&order, ORDER);
    }
}
