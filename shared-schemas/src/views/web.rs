//! Views of the web gateway: rich screens (full product pages, enriched orders, recommendations with price and
//! stock), but never internal, audit or payment fields.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::downstream::Money;
use crate::downstream::{
    Address, Image, Inventory, Order, OrderItem, Product, RatingSummary, Review, User,
};

/// The URL of a product's `thumbnail` rendition, if it has one.
pub fn thumbnail_url(product: &Product) -> Option<String> {
    product
        .images
        .iter()
        .find(|i| i.size == "thumbnail")
        .map(|i| i.url.clone())
}

/// A product in lists: id, name, price, thumbnail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductSummary {
    /// Product id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Current price.
    pub price: Money,
    /// Thumbnail image URL.
    pub thumbnail_url: Option<String>,
}

impl From<&Product> for ProductSummary {
    fn from(p: &Product) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            price: p.price.clone(),
            thumbnail_url: thumbnail_url(p),
        }
    }
}

/// The signed-in user's own profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    /// User id.
    pub id: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// E-mail address (the user's own).
    pub email: String,
}

impl From<User> for Profile {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            first_name: u.first_name,
            last_name: u.last_name,
            email: u.email,
        }
    }
}

/// One line of an order, enriched with the product when it could be loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    /// Ordered product id.
    pub product_id: String,
    /// Quantity.
    pub quantity: u32,
    /// Unit price when ordered.
    pub unit_price: Money,
    /// The product, `null` when the catalog could not be reached (see `bff-partial`).
    pub product: Option<ProductSummary>,
}

impl OrderLine {
    /// A line enriched from `products` (the batch answer), if present.
    pub fn new(item: OrderItem, products: Option<&HashMap<String, Product>>) -> Self {
        let product = products
            .and_then(|p| p.get(&item.product_id))
            .map(ProductSummary::from);
        Self {
            product_id: item.product_id,
            quantity: item.quantity,
            unit_price: item.unit_price,
            product,
        }
    }
}

/// A recent order on the home screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderSummary {
    /// Order id.
    pub id: String,
    /// `placed`, `paid`, `shipped`, `delivered` or `cancelled`.
    pub status: String,
    /// Order total.
    pub total: Money,
    /// RFC 3339 time it was placed.
    pub placed_at: String,
    /// Lines, enriched with product summaries.
    pub items: Vec<OrderLine>,
}

impl OrderSummary {
    /// A summary of `order` with lines enriched from `products`.
    pub fn new(order: Order, products: Option<&HashMap<String, Product>>) -> Self {
        Self {
            id: order.id,
            status: order.status,
            total: order.total,
            placed_at: order.placed_at,
            items: order
                .items
                .into_iter()
                .map(|i| OrderLine::new(i, products))
                .collect(),
        }
    }
}

/// A recommended product with its price and stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecommendedProduct {
    /// The product.
    #[serde(flatten)]
    pub product: ProductSummary,
    /// Whether it can be bought now; `null` when stock is unknown.
    pub in_stock: Option<bool>,
    /// Units available; `null` when stock is unknown.
    pub available: Option<u32>,
}

impl RecommendedProduct {
    /// A recommendation from the product and its stock record, if any.
    pub fn new(product: &Product, stock: Option<&Inventory>) -> Self {
        Self {
            product: ProductSummary::from(product),
            in_stock: stock.map(|s| s.available > 0),
            available: stock.map(|s| s.available),
        }
    }
}

/// `GET /api/home` on bff-web.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HomeView {
    /// The user's profile.
    pub profile: Profile,
    /// The most recent orders, newest first, with product summaries.
    pub recent_orders: Vec<OrderSummary>,
    /// Recommendations with price and stock; `null` when unavailable (see `bff-partial`).
    pub recommendations: Option<Vec<RecommendedProduct>>,
}

/// A product's rating summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rating {
    /// Mean rating, one decimal.
    pub average: f64,
    /// Number of reviews.
    pub count: u32,
    /// Count of 1..=5 star ratings (index 0 = one star).
    pub histogram: Vec<u32>,
}

impl From<RatingSummary> for Rating {
    fn from(r: RatingSummary) -> Self {
        Self {
            average: (r.average * 10.0).round() / 10.0,
            count: r.count,
            histogram: r.histogram,
        }
    }
}

/// A review as shown publicly (no user id, no moderation data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    /// Review id.
    pub id: String,
    /// Author's public display name.
    pub author_name: String,
    /// Stars, 1..=5.
    pub rating: u8,
    /// Headline.
    pub title: String,
    /// Text.
    pub body: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

impl From<Review> for ReviewView {
    fn from(r: Review) -> Self {
        Self {
            id: r.id,
            author_name: r.author_name,
            rating: r.rating,
            title: r.title,
            body: r.body,
            created_at: r.created_at,
        }
    }
}

/// Stock as shown to shoppers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Availability {
    /// Whether it can be bought now.
    pub in_stock: bool,
    /// Units available.
    pub available: u32,
    /// Expected restock date when out of stock.
    pub restock_eta: Option<String>,
}

impl From<Inventory> for Availability {
    fn from(i: Inventory) -> Self {
        Self {
            in_stock: i.available > 0,
            available: i.available,
            restock_eta: i.restock_eta,
        }
    }
}

/// A product attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attribute {
    /// Attribute name, e.g. `colour`.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// `GET /api/products/{id}` on bff-web.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductDetailView {
    /// Product id.
    pub id: String,
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Full description.
    pub description: String,
    /// Brand.
    pub brand: String,
    /// Category slug.
    pub category: String,
    /// Current price.
    pub price: Money,
    /// All image renditions.
    pub images: Vec<Image>,
    /// Attributes.
    pub attributes: Vec<Attribute>,
    /// Rating summary; `null` when unavailable.
    pub rating: Option<Rating>,
    /// Newest reviews; `null` when unavailable.
    pub reviews: Option<Vec<ReviewView>>,
    /// Stock; `null` when unavailable.
    pub availability: Option<Availability>,
    /// Related products; `null` when unavailable.
    pub related: Option<Vec<ProductSummary>>,
}

impl ProductDetailView {
    /// The page from its parts.
    pub fn new(
        product: Product,
        rating: Option<RatingSummary>,
        reviews: Option<Vec<Review>>,
        availability: Option<Inventory>,
        related: Option<Vec<Product>>,
    ) -> Self {
        Self {
            id: product.id,
            sku: product.sku,
            name: product.name,
            description: product.description,
            brand: product.brand,
            category: product.category,
            price: product.price,
            images: product.images,
            attributes: product
                .attributes
                .into_iter()
                .map(|(name, value)| Attribute { name, value })
                .collect(),
            rating: rating.map(Rating::from),
            reviews: reviews.map(|r| r.into_iter().map(ReviewView::from).collect()),
            availability: availability.map(Availability::from),
            related: related.map(|r| r.iter().map(ProductSummary::from).collect()),
        }
    }
}

/// `GET /api/products` on bff-web.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductListView {
    /// Products of this page.
    pub items: Vec<ProductSummary>,
    /// 1-based page number.
    pub page: u32,
    /// Page size.
    pub page_size: u32,
    /// Number of matching products.
    pub total: u64,
}

/// The `data` of a `status` event of `GET /api/orders/{id}/events` on bff-web.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderStatusEvent {
    /// Order id.
    pub order_id: String,
    /// The order's status: `placed`, `paid`, `shipped`, `delivered` or `cancelled`.
    pub status: String,
}

/// `GET /api/orders/{id}` on bff-web.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderDetailView {
    /// Order id.
    pub id: String,
    /// Status.
    pub status: String,
    /// RFC 3339 time it was placed.
    pub placed_at: String,
    /// Total.
    pub total: Money,
    /// Lines with product summaries (`product: null` when the catalog is unavailable).
    pub items: Vec<OrderLine>,
    /// Where it ships (the user's own address).
    pub shipping_address: Address,
}

impl OrderDetailView {
    /// The order page from the order and the batch of its products.
    pub fn new(order: Order, products: Option<&HashMap<String, Product>>) -> Self {
        Self {
            id: order.id,
            status: order.status,
            placed_at: order.placed_at,
            total: order.total,
            items: order
                .items
                .into_iter()
                .map(|i| OrderLine::new(i, products))
                .collect(),
            shipping_address: order.shipping_address,
        }
    }
}

/// One line of the cart, enriched with the product when it could be loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CartLineView {
    /// Product id.
    pub product_id: String,
    /// Units.
    pub quantity: u32,
    /// Current price per unit.
    pub unit_price: Money,
    /// The product, `null` when the catalog could not be reached (see `bff-partial`).
    pub product: Option<ProductSummary>,
}

/// The caller's cart (`GET /api/cart` and the answer of every cart change on bff-web).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CartView {
    /// Lines, in the order they were first added.
    pub items: Vec<CartLineView>,
    /// Sum of the lines.
    pub total: Money,
    /// Number of changes made to the cart so far.
    pub version: u64,
}

impl CartView {
    /// The cart view from the service's cart and the batch of its products.
    pub fn new(cart: crate::downstream::Cart, products: Option<&HashMap<String, Product>>) -> Self {
        Self {
            items: cart
                .items
                .into_iter()
                .map(|l| CartLineView {
                    product: products
                        .and_then(|p| p.get(&l.product_id))
                        .map(ProductSummary::from),
                    product_id: l.product_id,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                })
                .collect(),
            total: cart.total,
            version: cart.version,
        }
    }
}
