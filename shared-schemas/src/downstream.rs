//! Downstream DTOs: the JSON the domain services speak, deliberately rich (internal and audit fields,
//! long descriptions, many image sizes) so that every client view has something to remove.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An amount of money in minor units (cents), with its ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Amount in minor units (e.g. cents), never a float.
    pub amount_cents: i64,
    /// ISO 4217 currency code, e.g. `EUR`.
    pub currency: String,
}

/// A postal address (PII).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Address {
    /// Street and number.
    pub line1: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166 country code.
    pub country: String,
}

/// Internal CRM data of a user: never to be shown to any client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInternal {
    /// Fraud risk score in `0.0..1.0`.
    pub risk_score: f64,
    /// Identifier in the CRM system.
    pub crm_id: String,
    /// Marketing segment.
    pub segment: String,
}

/// `GET /users/{id}` on the users service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// User id (`"1"`..`"1000"`).
    pub id: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// E-mail address (PII).
    pub email: String,
    /// Phone number (PII).
    pub phone: String,
    /// Postal address (PII).
    pub address: Address,
    /// BCP 47 locale, e.g. `de-DE`.
    pub locale: String,
    /// Whether the user accepted marketing mail.
    pub marketing_opt_in: bool,
    /// RFC 3339 creation time (audit).
    pub created_at: String,
    /// RFC 3339 last update time (audit).
    pub updated_at: String,
    /// Internal CRM data.
    pub internal: UserInternal,
}

/// One rendition of a product image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Image {
    /// Rendition name: `thumbnail`, `small`, `medium`, `large`, `original`.
    pub size: String,
    /// Absolute URL of the rendition.
    pub url: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Internal supplier and margin data of a product: never to be shown to any client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductInternal {
    /// Supplier identifier.
    pub supplier_id: String,
    /// Purchase cost in cents.
    pub cost_cents: i64,
    /// Margin in percent.
    pub margin_pct: f64,
    /// Free-text notes for the warehouse.
    pub warehouse_notes: String,
}

/// `GET /products/{id}` on the catalog service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Product id (`"1"`..`"5000"`).
    pub id: String,
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Long marketing description (several paragraphs).
    pub description: String,
    /// Category slug, e.g. `kitchen`.
    pub category: String,
    /// Brand name.
    pub brand: String,
    /// Current price.
    pub price: Money,
    /// All renditions of the product image.
    pub images: Vec<Image>,
    /// Free-form attributes (colour, size, material, ...), as `[name, value]` pairs.
    pub attributes: Vec<(String, String)>,
    /// Ids of related products.
    pub related_ids: Vec<String>,
    /// Search tags.
    pub tags: Vec<String>,
    /// RFC 3339 creation time (audit).
    pub created_at: String,
    /// RFC 3339 last update time (audit).
    pub updated_at: String,
    /// Internal supplier and margin data.
    pub internal: ProductInternal,
}

/// `GET /products?ids=a,b,c` on the catalog service: the found products in request order, and the ids not found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductBatch {
    /// Found products, in the order of the requested ids.
    pub items: Vec<Product>,
    /// Requested ids that do not exist.
    pub missing: Vec<String>,
}

/// `GET /products?category=&q=&page=&page_size=` on the catalog service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductPage {
    /// Products of this page.
    pub items: Vec<Product>,
    /// 1-based page number.
    pub page: u32,
    /// Page size used.
    pub page_size: u32,
    /// Number of products matching the filter.
    pub total: u64,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Ordered product.
    pub product_id: String,
    /// Quantity ordered.
    pub quantity: u32,
    /// Price of one unit when ordered.
    pub unit_price: Money,
}

/// Payment details of an order: internal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// Payment method, e.g. `card`.
    pub method: String,
    /// Last four digits of the card (PII).
    pub card_last4: String,
    /// Reference at the payment processor.
    pub processor_ref: String,
}

/// `GET /orders/{id}` on the orders service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Order id, e.g. `"1001"`.
    pub id: String,
    /// The user who placed it.
    pub user_id: String,
    /// The partner channel the order came through, if any (e.g. `"acme"`).
    pub partner_id: Option<String>,
    /// `placed`, `paid`, `shipped`, `delivered` or `cancelled`.
    pub status: String,
    /// Order lines.
    pub items: Vec<OrderItem>,
    /// Order total.
    pub total: Money,
    /// RFC 3339 time the order was placed.
    pub placed_at: String,
    /// Shipping address (PII).
    pub shipping_address: Address,
    /// Payment details (PII, internal).
    pub payment: Payment,
    /// Notes of the customer service (internal).
    pub internal_notes: String,
}

/// One line of the orders service's `GET /orders/{id}/events` stream (NDJSON): the order after a status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderChange {
    /// Position in the order's history (0 = as it was before any change); the stream resumes after it with
    /// `?after=<seq>`.
    pub seq: u64,
    /// The order after the change.
    pub order: Order,
}

/// `GET /users/{id}/orders?limit=&cursor=` on the orders service: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPage {
    /// Orders of this page, newest first.
    pub items: Vec<Order>,
    /// Cursor for the next page, if any.
    pub next_cursor: Option<String>,
}

/// Moderation state of a review (internal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moderation {
    /// `approved`, `pending` or `rejected`.
    pub status: String,
    /// Moderator id.
    pub moderator_id: String,
}

/// One product review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// Review id.
    pub id: String,
    /// Reviewed product.
    pub product_id: String,
    /// Author's user id (PII).
    pub user_id: String,
    /// Author's public display name.
    pub author_name: String,
    /// Stars, 1..=5.
    pub rating: u8,
    /// Headline.
    pub title: String,
    /// Review text.
    pub body: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Votes of other users that found it helpful.
    pub helpful_votes: u32,
    /// Moderation state (internal).
    pub moderation: Moderation,
}

/// Rating summary of a product: `GET /products/{id}/rating` on the reviews service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingSummary {
    /// Rated product.
    pub product_id: String,
    /// Mean of all ratings (0 when there are none).
    pub average: f64,
    /// Number of reviews.
    pub count: u32,
    /// Number of 1..=5 star ratings, index 0 = one star.
    pub histogram: Vec<u32>,
}

/// `GET /products/{id}/reviews?limit=` on the reviews service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewList {
    /// Reviewed product.
    pub product_id: String,
    /// Newest reviews first, at most `limit`.
    pub items: Vec<Review>,
    /// Summary over all reviews of the product.
    pub summary: RatingSummary,
}

/// Stock of one product in one warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarehouseStock {
    /// Warehouse id (internal).
    pub warehouse_id: String,
    /// Units on hand there.
    pub on_hand: u32,
}

/// `GET /inventory/{product_id}` on the inventory service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Product id.
    pub product_id: String,
    /// Units that can be sold now.
    pub available: u32,
    /// Units reserved by open orders.
    pub reserved: u32,
    /// Per-warehouse stock (internal).
    pub warehouses: Vec<WarehouseStock>,
    /// Expected restock date (RFC 3339) when out of stock.
    pub restock_eta: Option<String>,
    /// RFC 3339 time of the last stock movement.
    pub updated_at: String,
}

/// `GET /inventory?ids=a,b,c` on the inventory service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryBatch {
    /// Found stock records, in the order of the requested ids.
    pub items: Vec<Inventory>,
    /// Requested ids that do not exist.
    pub missing: Vec<String>,
}

/// One recommended product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Recommended product.
    pub product_id: String,
    /// Model score in `0.0..1.0`.
    pub score: f64,
    /// Why it was recommended (internal), e.g. `bought_together`.
    pub reason: String,
}

/// `GET /users/{id}/recommendations?limit=` on the recommendations service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendations {
    /// The user they are for.
    pub user_id: String,
    /// Best first, at most `limit`.
    pub items: Vec<Recommendation>,
    /// Model version (internal).
    pub model_version: String,
    /// RFC 3339 generation time.
    pub generated_at: String,
}

/// `POST /token` request body on the dev identity provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Subject (user id).
    pub sub: String,
    /// Audience = the client the token is for, e.g. `bff-web`.
    pub aud: String,
    /// Granted scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Lifetime in seconds (default 300).
    #[serde(default)]
    pub ttl_s: Option<u64>,
    /// Signing algorithm: `RS256` (default) or `ES256`.
    #[serde(default)]
    pub alg: Option<String>,
}

/// `POST /token` response body on the dev identity provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The signed JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

/// One line of a cart, as the orders service keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// Product in the cart.
    pub product_id: String,
    /// Units, 1..=20.
    pub quantity: u32,
    /// The product's current price per unit.
    pub unit_price: Money,
}

/// A user's cart: `GET /users/{id}/cart` on the orders service (also the answer of every cart change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// Owner.
    pub user_id: String,
    /// Lines, in the order they were first added.
    pub items: Vec<CartLine>,
    /// Sum of `unit_price * quantity`.
    pub total: Money,
    /// Number of changes made to the cart so far (0 for a cart never touched).
    pub version: u64,
}

/// `POST /users/{id}/cart/items` on the orders service: add `quantity` units of a product to the cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCartItem {
    /// Product to add.
    pub product_id: String,
    /// Units to add (the line may hold at most 20).
    pub quantity: u32,
}

/// `POST /users/{id}/orders` on the orders service: turn the user's cart into an order (the cart is emptied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkout {
    /// `card`, `paypal`, `invoice` or `apple_pay`.
    pub payment_method: String,
}

/// One line of a [`CreateOrder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrderLine {
    /// Ordered product.
    pub product_id: String,
    /// Units, 1..=20.
    pub quantity: u32,
}

/// `POST /orders` on the orders service: an order placed by a partner (named by `x-bff-partner-id`) with
/// explicit lines, no cart and no user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Lines, 1..=50, each product at most once.
    pub items: Vec<NewOrderLine>,
    /// The partner's own reference for the order (1..=64 characters), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
}

/// `POST /products/{id}/reviews` on the reviews service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReview {
    /// Author (a user id).
    pub user_id: String,
    /// Stars, 1..=5.
    pub rating: u8,
    /// Headline, 1..=120 characters.
    pub title: String,
    /// Text, 1..=4000 characters.
    pub body: String,
}

/// The error body of the domain services: `{"error": "<code>", "detail": "..."}` (`detail` optional). Write
/// endpoints use codes such as `unknown_product`, `quantity_limit`, `out_of_stock`, `cart_empty`,
/// `already_reviewed`, `invalid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceError {
    /// Machine code.
    pub error: String,
    /// Explanation, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
