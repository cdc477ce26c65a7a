//! Views of the partner gateway (`bff-partner`, API version 1): a stable, versioned contract for external
//! partners. Every type here is an allow-list: it carries catalog facts, stock figures and the partner's own
//! order lines, and nothing personal or internal — no user ids, names, e-mails, addresses, payment data,
//! supplier/margin data, warehouse ids or audit timestamps. Fields are only ever added, never renamed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::downstream::{Inventory, Money, Order, OrderItem, Product};

/// Name of the image rendition a partner receives as `image_url`.
pub const IMAGE_RENDITION: &str = "large";

/// Current stock of a product, as embedded in [`ProductV1`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AvailabilityV1 {
    /// Whether at least one unit can be sold now.
    pub in_stock: bool,
    /// Units that can be sold now.
    pub available: u32,
}

impl From<&Inventory> for AvailabilityV1 {
    fn from(inventory: &Inventory) -> Self {
        Self {
            in_stock: inventory.available > 0,
            available: inventory.available,
        }
    }
}

/// A product as a partner sees it: `GET /v1/products/{id}` and the items of `GET /v1/products?ids=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductV1 {
    /// Product id.
    pub id: String,
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Brand name.
    pub brand: String,
    /// Category slug, e.g. `kitchen`.
    pub category: String,
    /// Marketing description.
    pub description: String,
    /// Current price.
    pub price: Money,
    /// URL of the large product image, `null` when the product has none.
    pub image_url: Option<String>,
    /// Current stock; `null` when the key lacks the `inventory:read` scope or stock could not be loaded
    /// (then the `bff-partial` response header names `availability`).
    pub availability: Option<AvailabilityV1>,
}

impl ProductV1 {
    /// The partner view of `product`, with `availability` from `inventory` when given.
    pub fn new(product: Product, inventory: Option<&Inventory>) -> Self {
        let image_url = product
            .images
            .into_iter()
            .find(|image| image.size == IMAGE_RENDITION)
            .map(|image| image.url);
        Self {
            id: product.id,
            sku: product.sku,
            name: product.name,
            brand: product.brand,
            category: product.category,
            description: product.description,
            price: product.price,
            image_url,
            availability: inventory.map(AvailabilityV1::from),
        }
    }
}

impl From<Product> for ProductV1 {
    fn from(product: Product) -> Self {
        Self::new(product, None)
    }
}

/// `GET /v1/products?ids=a,b,c`: the products found, in the order first requested, and the ids not found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductListV1 {
    /// Found products, in the order of the (deduplicated) requested ids.
    pub items: Vec<ProductV1>,
    /// Requested ids that do not exist, in request order.
    pub missing: Vec<String>,
}

impl ProductListV1 {
    /// Builds the list for `requested` (distinct ids, request order) from the catalog's products indexed by
    /// id and, when loaded, the inventory records indexed by product id. Products that were not requested
    /// are ignored; requested ids without a product are `missing`.
    pub fn new(
        requested: &[String],
        mut products: HashMap<String, Product>,
        inventory: Option<&HashMap<String, Inventory>>,
    ) -> Self {
        let mut items = Vec::with_capacity(requested.len());
        let mut missing = Vec::new();
        for id in requested {
            match products.remove(id) {
                Some(product) => {
                    let stock = inventory.and_then(|inv| inv.get(id));
                    items.push(ProductV1::new(product, stock));
                }
                None => missing.push(id.clone()),
            }
        }
        Self { items, missing }
    }
}

/// `GET /v1/products/{id}/availability`: the stock of one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductAvailabilityV1 {
    /// Product id.
    pub product_id: String,
    /// Whether at least one unit can be sold now.
    pub in_stock: bool,
    /// Units that can be sold now.
    pub available: u32,
    /// Expected restock date (RFC 3339) when out of stock, else `null`.
    pub restock_eta: Option<String>,
}

impl From<Inventory> for ProductAvailabilityV1 {
    fn from(inventory: Inventory) -> Self {
        Self {
            in_stock: inventory.available > 0,
            available: inventory.available,
            product_id: inventory.product_id,
            restock_eta: inventory.restock_eta,
        }
    }
}

/// One line of an [`OrderV1`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderItemV1 {
    /// Ordered product.
    pub product_id: String,
    /// The product's SKU; `null` when the product could not be loaded.
    pub sku: Option<String>,
    /// The product's name; `null` when the product could not be loaded.
    pub name: Option<String>,
    /// Quantity ordered.
    pub quantity: u32,
    /// Price of one unit when ordered.
    pub unit_price: Money,
}

impl OrderItemV1 {
    /// The partner view of `item`, with SKU and name from `product` when given.
    pub fn new(item: OrderItem, product: Option<&Product>) -> Self {
        Self {
            product_id: item.product_id,
            sku: product.map(|p| p.sku.clone()),
            name: product.map(|p| p.name.clone()),
            quantity: item.quantity,
            unit_price: item.unit_price,
        }
    }
}

/// `GET /v1/orders/{id}`: an order placed through the calling partner. Carries no customer data (no user id,
/// shipping address or payment details) and no internal notes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderV1 {
    /// Order id.
    pub id: String,
    /// `placed`, `paid`, `shipped`, `delivered` or `cancelled`.
    pub status: String,
    /// RFC 3339 time the order was placed.
    pub placed_at: String,
    /// Order total.
    pub total: Money,
    /// Order lines, in order.
    pub items: Vec<OrderItemV1>,
}

impl OrderV1 {
    /// The partner view of `order`, with line SKUs and names from `products` (indexed by id) when loaded.
    /// Checking that the order belongs to the caller is the gateway's job, before calling this.
    pub fn new(order: Order, products: Option<&HashMap<String, Product>>) -> Self {
        let items = order
            .items
            .into_iter()
            .map(|item| {
                let product = products.and_then(|p| p.get(&item.product_id));
                OrderItemV1::new(item, product)
            })
            .collect();
        Self {
            id: order.id,
            status: order.status,
            placed_at: order.placed_at,
            total: order.total,
            items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::{Address, Image, Payment, ProductInternal, WarehouseStock};

    fn money(cents: i64) -> Money {
        Money {
            amount_cents: cents,
            currency: "EUR".into(),
        }
    }

    fn product(id: &str) -> Product {
        Product {
            id: id.into(),
            sku: format!("SKU-{id}"),
            name: format!("Product {id}"),
            description: "Long text".into(),
            category: "kitchen".into(),
            brand: "Brandt".into(),
            price: money(1999),
            images: ["thumbnail", "large", "original"]
                .iter()
                .map(|size| Image {
                    size: (*size).into(),
                    url: format!("https://img.example/{id}/{size}.jpg"),
                    width: 1,
                    height: 1,
                })
                .collect(),
            attributes: vec![("colour".into(), "red".into())],
            related_ids: vec!["9".into()],
            tags: vec!["tag".into()],
            created_at: "2024-01-01T00:00:00Z".into(),
            updated_at: "2024-01-02T00:00:00Z".into(),
            internal: ProductInternal {
                supplier_id: "sup-1".into(),
                cost_cents: 500,
                margin_pct: 42.0,
                warehouse_notes: "fragile".into(),
            },
        }
    }

    fn inventory(id: &str, available: u32) -> Inventory {
        Inventory {
            product_id: id.into(),
            available,
            reserved: 3,
            warehouses: vec![WarehouseStock {
                warehouse_id: "wh-1".into(),
                on_hand: available + 3,
            }],
            restock_eta: (available == 0).then(|| "2024-02-01T00:00:00Z".into()),
            updated_at: "2024-01-03T00:00:00Z".into(),
        }
    }

    /// The image is the large rendition; availability follows the inventory record.
    #[test]
    fn product_view_picks_large_image_and_stock() {
        let view = ProductV1::new(product("7"), Some(&inventory("7", 0)));
        assert_eq!(
            view.image_url.as_deref(),
            Some("https://img.example/7/large.jpg")
        );
        assert_eq!(
            view.availability,
            Some(AvailabilityV1 {
                in_stock: false,
                available: 0
            })
        );
        let mut no_large = product("8");
        no_large.images.retain(|i| i.size != IMAGE_RENDITION);
        let view = ProductV1::from(no_large);
        assert_eq!(view.image_url, None);
        assert_eq!(view.availability, None);
    }

    /// The list keeps request order, reports missing ids and ignores unrequested products.
    #[test]
    fn product_list_orders_and_reports_missing() {
        let requested: Vec<String> = vec!["3".into(), "404".into(), "1".into()];
        let products: HashMap<String, Product> = ["1", "3", "99"]
            .iter()
            .map(|id| ((*id).to_string(), product(id)))
            .collect();
        let stock: HashMap<String, Inventory> =
            [("3".to_string(), inventory("3", 5))].into_iter().collect();
        let list = ProductListV1::new(&requested, products, Some(&stock));
        let ids: Vec<&str> = list.items.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["3", "1"]);
        assert_eq!(list.missing, ["404"]);
        assert_eq!(
            list.items[0].availability.as_ref().map(|a| a.available),
            Some(5)
        );
        assert_eq!(list.items[1].availability, None);
    }

    /// Order lines get SKU and name when the product is known, `None` otherwise.
    #[test]
    fn order_view_enriches_lines() {
        let order = Order {
            id: "1001".into(),
            user_id: "17".into(),
            partner_id: Some("acme".into()),
            status: "paid".into(),
            items: vec![
                OrderItem {
                    product_id: "1".into(),
                    quantity: 2,
                    unit_price: money(100),
                },
                OrderItem {
                    product_id: "2".into(),
                    quantity: 1,
                    unit_price: money(50),
                },
            ],
            total: money(250),
            placed_at: "2024-01-01T00:00:00Z".into(),
            shipping_address: Address {
                line1: "1 Main St".into(),
                city: "Springfield".into(),
                postal_code: "12345".into(),
                country: "DE".into(),
            },
            payment: Payment {
                method: "card".into(),
                card_last4: "4242".into(),
                processor_ref: "ref".into(),
            },
            internal_notes: "vip".into(),
        };
        let products: HashMap<String, Product> =
            [("1".to_string(), product("1"))].into_iter().collect();
        let view = OrderV1::new(order.clone(), Some(&products));
        assert_eq!(view.items[0].sku.as_deref(), Some("SKU-1"));
        assert_eq!(view.items[1].name, None);
        let view = OrderV1::new(order, None);
        assert!(
            view.items
                .iter()
                .all(|i| i.sku.is_none() && i.name.is_none())
        );
        assert_eq!(view.total, money(250));
    }

    /// The availability view derives `in_stock` and keeps the restock date.
    #[test]
    fn availability_view() {
        let view = ProductAvailabilityV1::from(inventory("5", 0));
        assert_eq!(view.product_id, "5");
        assert!(!view.in_stock);
        assert!(view.restock_eta.is_some());
        assert!(ProductAvailabilityV1::from(inventory("5", 2)).in_stock);
    }
}
