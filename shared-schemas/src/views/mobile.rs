//! Views of the mobile gateway: the same screens as web, but lean. Every view keeps only what a phone screen
//! shows (one thumbnail URL instead of five renditions, a 140-character teaser instead of the description, a
//! rounded rating instead of the histogram), so that a home screen stays well under 2 KB of JSON.
//!
//! Each view is built from downstream DTOs by a plain constructor; nothing here does I/O.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::downstream::{
    Image, Inventory, Money, Order, OrderPage, Product, RatingSummary, Recommendations, User,
};

/// Number of recent orders on the home screen.
pub const HOME_ORDERS: usize = 3;
/// Number of recommendations on the home screen.
pub const HOME_RECOMMENDATIONS: usize = 5;
/// Longest `short_description`, in characters.
pub const SHORT_DESCRIPTION_CHARS: usize = 140;

/// `GET /api/home` of the mobile gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HomeView {
    /// The user's given name, for the greeting.
    pub first_name: String,
    /// The last three orders, newest first.
    pub orders: Vec<HomeOrder>,
    /// Up to five recommended products, best first; `null` when recommendations are unavailable
    /// (the response then carries `bff-partial: recommendations`).
    pub recommendations: Option<Vec<HomeRecommendation>>,
}

/// One recent order on the home screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HomeOrder {
    /// Order id.
    pub id: String,
    /// `placed`, `paid`, `shipped`, `delivered` or `cancelled`.
    pub status: String,
    /// Order total.
    pub total: Money,
    /// Number of units ordered (sum of the quantities of all lines).
    pub item_count: u32,
}

/// One recommended product on the home screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HomeRecommendation {
    /// Product id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Current price.
    pub price: Money,
    /// URL of the thumbnail rendition (the smallest image when there is no thumbnail), if any.
    pub thumbnail_url: Option<String>,
}

/// `GET /api/products/{id}` of the mobile gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    /// Product id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Current price.
    pub price: Money,
    /// URL of the thumbnail rendition (the smallest image when there is no thumbnail), if any.
    pub thumbnail_url: Option<String>,
    /// Rating summary; `null` when reviews are unavailable (`bff-partial: rating`).
    pub rating: Option<RatingView>,
    /// Whether units can be sold now; `null` when inventory is unavailable (`bff-partial: inventory`).
    pub in_stock: Option<bool>,
    /// The start of the description: at most 140 characters, cut at a word boundary, whitespace collapsed.
    pub short_description: String,
}

/// A lean rating summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingView {
    /// Mean rating, rounded to one decimal (0 when there are no reviews).
    pub average: f64,
    /// Number of reviews.
    pub count: u32,
}

/// `GET /api/orders/{id}` of the mobile gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    /// Order id.
    pub id: String,
    /// `placed`, `paid`, `shipped`, `delivered` or `cancelled`.
    pub status: String,
    /// Order total.
    pub total: Money,
    /// RFC 3339 time the order was placed.
    pub placed_at: String,
    /// Order lines.
    pub items: Vec<OrderItemView>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderItemView {
    /// Ordered product.
    pub product_id: String,
    /// Product name; `null` when the product is unknown or the catalog is unavailable (`bff-partial: products`).
    pub name: Option<String>,
    /// Quantity ordered.
    pub quantity: u32,
    /// Thumbnail URL; `null` when unknown, like `name`.
    pub thumbnail_url: Option<String>,
}

/// The URL of the `thumbnail` rendition, else of the smallest rendition (by pixel count), if there is any image.
pub fn thumbnail_url(images: &[Image]) -> Option<String> {
    images
        .iter()
        .find(|i| i.size == "thumbnail")
        .or_else(|| {
            images
                .iter()
                .min_by_key(|i| u64::from(i.width) * u64::from(i.height))
        })
        .map(|i| i.url.clone())
}

/// The first at most `max_chars` characters of `text` with whitespace runs collapsed to one space, cut at a
/// word boundary: a word that does not fit is dropped whole. A first word longer than `max_chars` is cut
/// hard, so the result is never empty for non-blank text and never longer than `max_chars` characters.
pub fn short_text(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut out_chars = 0;
    for word in text.split_whitespace() {
        let word_chars = word.chars().count();
        let sep = usize::from(!out.is_empty());
        if out_chars + sep + word_chars <= max_chars {
            if sep == 1 {
                out.push(' ');
            }
            out.push_str(word);
            out_chars += sep + word_chars;
        } else {
            if out.is_empty() {
                out.extend(word.chars().take(max_chars));
            }
            break;
        }
    }
    out
}

/// `value` rounded to one decimal; non-finite values become 0.
pub fn round1(value: f64) -> f64 {
    if value.is_finite() {
        (value * 10.0).round() / 10.0
    } else {
        0.0
    }
}

impl HomeOrder {
    /// The home-screen summary of `order`.
    pub fn new(order: Order) -> Self {
        Self {
            item_count: order
                .items
                .iter()
                .fold(0u32, |n, i| n.saturating_add(i.quantity)),
            id: order.id,
            status: order.status,
            total: order.total,
        }
    }
}

impl From<Product> for HomeRecommendation {
    fn from(p: Product) -> Self {
        Self {
            thumbnail_url: thumbnail_url(&p.images),
            id: p.id,
            name: p.name,
            price: p.price,
        }
    }
}

/// The recommended products, best first, at most [`HOME_RECOMMENDATIONS`]: each recommendation is looked up in
/// `products` (the catalog batch answer, by id); recommendations of unknown products are skipped.
pub fn home_recommendations(
    recs: &Recommendations,
    products: &HashMap<String, Product>,
) -> Vec<HomeRecommendation> {
    let mut seen = std::collections::HashSet::new();
    recs.items
        .iter()
        .filter(|r| seen.insert(r.product_id.as_str()))
        .filter_map(|r| {
            products
                .get(&r.product_id)
                .cloned()
                .map(HomeRecommendation::from)
        })
        .take(HOME_RECOMMENDATIONS)
        .collect()
}

impl HomeView {
    /// The home screen: the user's first name, the newest [`HOME_ORDERS`] orders, and the recommendations
    /// (`None` when that optional part failed).
    pub fn new(
        user: User,
        orders: OrderPage,
        recommendations: Option<Vec<HomeRecommendation>>,
    ) -> Self {
        Self {
            first_name: user.first_name,
            orders: orders
                .items
                .into_iter()
                .take(HOME_ORDERS)
                .map(HomeOrder::new)
                .collect(),
            recommendations,
        }
    }
}

impl From<RatingSummary> for RatingView {
    fn from(r: RatingSummary) -> Self {
        Self {
            average: round1(r.average),
            count: r.count,
        }
    }
}

impl ProductView {
    /// The product screen; `rating` and `inventory` are `None` when their optional parts failed.
    pub fn new(
        product: Product,
        rating: Option<RatingSummary>,
        inventory: Option<Inventory>,
    ) -> Self {
        Self {
            thumbnail_url: thumbnail_url(&product.images),
            short_description: short_text(&product.description, SHORT_DESCRIPTION_CHARS),
            id: product.id,
            name: product.name,
            price: product.price,
            rating: rating.map(RatingView::from),
            in_stock: inventory.map(|i| i.available > 0),
        }
    }
}

impl OrderView {
    /// The order screen; line names and thumbnails come from `products` (the catalog batch answer, by id), or
    /// are all `null` when `products` is `None` (that optional part failed).
    pub fn new(order: Order, products: Option<&HashMap<String, Product>>) -> Self {
        let items = order
            .items
            .into_iter()
            .map(|item| {
                let product = products.and_then(|p| p.get(&item.product_id));
                OrderItemView {
                    name: product.map(|p| p.name.clone()),
                    thumbnail_url: product.and_then(|p| thumbnail_url(&p.images)),
                    product_id: item.product_id,
                    quantity: item.quantity,
                }
            })
            .collect();
        Self {
            id: order.id,
            status: order.status,
            total: order.total,
            placed_at: order.placed_at,
            items,
        }
    }
}

/// `POST /api/orders` of the mobile gateway: the placed order, lean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderPlacedView {
    /// Order id (read it with `GET /api/orders/{id}`).
    pub id: String,
    /// `placed`.
    pub status: String,
    /// Order total.
    pub total: Money,
    /// Units ordered, over all lines.
    pub item_count: u32,
}

impl From<Order> for OrderPlacedView {
    fn from(order: Order) -> Self {
        Self {
            item_count: order.items.iter().map(|i| i.quantity).sum(),
            id: order.id,
            status: order.status,
            total: order.total,
        }
    }
}

/// Most orders one `GET /api/live` connection watches.
pub const LIVE_MAX_ORDERS: usize = 8;
/// Most products one `GET /api/live` connection watches.
pub const LIVE_MAX_PRODUCTS: usize = 32;

/// A client message on `GET /api/live`: `{"watch": {...}}` adds to what the connection watches,
/// `{"unwatch": {...}}` removes; both may come in one message (unwatch first).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveRequest {
    /// Orders and products to watch from now on.
    #[serde(default)]
    pub watch: Option<LiveTopics>,
    /// Orders and products to stop watching.
    #[serde(default)]
    pub unwatch: Option<LiveTopics>,
}

/// Orders and products of a [`LiveRequest`] (ids as in the REST routes).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveTopics {
    /// Order ids (the caller's own orders only).
    #[serde(default)]
    pub orders: Vec<String>,
    /// Product ids (their stock).
    #[serde(default)]
    pub products: Vec<String>,
}

/// A gateway message on `GET /api/live` (one JSON text message each, told apart by `type`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// What the connection watches now, after each client message.
    Watching {
        /// Watched orders, sorted.
        orders: Vec<String>,
        /// Watched products, sorted.
        products: Vec<String>,
    },
    /// A watched order's status: once when watching starts, then on each change.
    OrderStatus {
        /// Order id.
        order_id: String,
        /// `placed`, `paid`, `shipped`, `delivered` or `cancelled`.
        status: String,
    },
    /// A watched product's stock: once when watching starts, then when it changes.
    Stock {
        /// Product id.
        product_id: String,
        /// Units that can be sold now.
        available: u32,
        /// Whether any unit can be sold now.
        in_stock: bool,
    },
    /// Something the gateway could not do for the client; the connection stays open.
    Error {
        /// `bad_message` (not a `LiveRequest`), `not_found` (no such order of this user, or no such
        /// product), `too_many_watches` (beyond 8 orders or 32 products), `unavailable` (the service could not
        /// be asked; try again).
        code: &'static str,
        /// The order or product concerned, if any.
        id: Option<String>,
    },
}
