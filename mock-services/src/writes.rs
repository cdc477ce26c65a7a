//! The mutable part of the domain: carts, orders and reviews created at run time, and the answers of
//! creations remembered by `Idempotency-Key`. Everything else is computed from ids (see [`crate::data`]);
//! what is written here is merged into the reads (`GET /orders/{id}`, `GET /users/{id}/orders`,
//! `GET /products/{id}/reviews`, `GET /products/{id}/rating`), so a client reads its own writes. Kept in
//! memory, per running service, for the life of the process.
//!
//! Each mutation runs under one lock, so it is all or nothing: a refused command changes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use shared_schemas::downstream::{Cart, CartLine, Money, Order, OrderItem, Review};

use crate::data::catalog::price_cents;
use crate::data::orders::order_count;

/// Most units of one product in a cart or an order line.
pub const MAX_LINE_QUANTITY: u32 = 20;
/// Most distinct products in a cart or an order.
pub const MAX_LINES: usize = 50;
/// First id of orders placed by partners (no user): `10000001`, `10000002`, ...
pub const PARTNER_ORDER_BASE: u64 = 10_000_000;
/// Most remembered `Idempotency-Key` answers per service (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 10_000;

/// A remembered answer of a creation: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
}

/// The written state of one service. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Writes(Arc<Mutex<State>>);

/// What was written.
#[derive(Debug, Default)]
pub struct State {
    /// Carts by user: lines (product, quantity) in insertion order, and the change counter.
    carts: HashMap<u32, (Vec<(u32, u32)>, u64)>,
    /// Orders created at run time, by id.
    orders: HashMap<u64, Order>,
    /// Ids of the orders created for each user, oldest first.
    user_orders: HashMap<u32, Vec<u64>>,
    /// Orders placed by partners so far.
    partner_orders: u64,
    /// Reviews created at run time, by product, oldest first.
    reviews: HashMap<u32, Vec<Review>>,
    /// Remembered answers by `Idempotency-Key` (scoped by route), and their arrival order.
    remembered: HashMap<String, Remembered>,
    /// Keys of `remembered`, oldest first (to bound it).
    remembered_order: std::collections::VecDeque<String>,
    /// Order status changes made at run time, and their watchers.
    feed: crate::feed::OrderFeed,
}

impl Writes {
    /// Locks the state (a poisoned lock is recovered: every mutation is complete before it can panic).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Euros in cents.
pub(crate) fn eur(amount_cents: i64) -> Money {
    Money {
        amount_cents,
        currency: "EUR".to_owned(),
    }
}

/// Now, as an RFC 3339 string.
pub(crate) fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::data::time::rfc3339(i64::try_from(secs).unwrap_or(0))
}

impl State {
    /// The cart of `user` (empty when never touched).
    pub fn cart(&self, user: u32) -> Cart {
        let (lines, version) = self
            .carts
            .get(&user)
            .map_or((&[][..], 0), |(l, v)| (l.as_slice(), *v));
        let items: Vec<CartLine> = lines
            .iter()
            .map(|&(product, quantity)| CartLine {
                product_id: product.to_string(),
                quantity,
                unit_price: eur(price_cents(product)),
            })
            .collect();
        let total = items
            .iter()
            .map(|l| l.unit_price.amount_cents * i64::from(l.quantity))
            .sum();
        Cart {
            user_id: user.to_string(),
            items,
            total: eur(total),
            version,
        }
    }

    /// Adds `quantity` of `product` to the cart; `Err(code)` when the line would exceed its limit.
    pub fn add_to_cart(
        &mut self,
        user: u32,
        product: u32,
        quantity: u32,
    ) -> Result<Cart, &'static str> {
        let (lines, version) = self.carts.entry(user).or_default();
        match lines.iter_mut().find(|(p, _)| *p == product) {
            Some((_, q)) => {
                if *q + quantity > MAX_LINE_QUANTITY {
                    return Err("quantity_limit");
                }
                *q += quantity;
            }
            None => {
                if lines.len() >= MAX_LINES {
                    return Err("cart_full");
                }
                lines.push((product, quantity));
            }
        }
        *version += 1;
        Ok(self.cart(user))
    }

    /// Removes the line of `product`; `None` when it is not in the cart.
    pub fn remove_from_cart(&mut self, user: u32, product: u32) -> Option<Cart> {
        let (lines, version) = self.carts.get_mut(&user)?;
        let at = lines.iter().position(|(p, _)| *p == product)?;
        lines.remove(at);
        *version += 1;
        Some(self.cart(user))
    }

    /// Turns the cart of `user` into a new order and empties the cart; `Err(code)` when the cart is empty or
    /// the user has no order id left.
    pub fn checkout(&mut self, user: u32, payment_method: &str) -> Result<Order, &'static str> {
        let lines = match self.carts.get(&user) {
            Some((lines, _)) if !lines.is_empty() => lines.clone(),
            _ => return Err("cart_empty"),
        };
        let created = self.user_orders.get(&user).map_or(0, Vec::len) as u32;
        let k = order_count(user) + created + 1;
        if k > 99 {
            return Err("order_limit");
        }
        let id = u64::from(user) * 100 + u64::from(k);
        let mut order = new_order(id, &lines, None, payment_method);
        order.user_id = user.to_string();
        order.shipping_address = crate::data::users::address(user);
        self.orders.insert(id, order.clone());
        self.user_orders.entry(user).or_default().push(id);
        if let Some((lines, version)) = self.carts.get_mut(&user) {
            lines.clear();
            *version += 1;
        }
        Ok(order)
    }

    /// A new order of `partner` with the given lines.
    pub fn partner_order(
        &mut self,
        partner: &str,
        lines: &[(u32, u32)],
        external_ref: Option<&str>,
    ) -> Order {
        self.partner_orders += 1;
        let id = PARTNER_ORDER_BASE + self.partner_orders;
        let mut order = new_order(id, lines, Some(partner), "invoice");
        if let Some(reference) = external_ref {
            order.internal_notes = format!("partner reference {reference}");
        }
        self.orders.insert(id, order.clone());
        order
    }

    /// An order created at run time.
    pub fn order(&self, id: u64) -> Option<Order> {
        self.orders.get(&id).cloned()
    }

    /// The latest version of order `id`: advanced, created at run time, or generated.
    pub fn current_order(&self, id: u64) -> Option<Order> {
        self.feed
            .latest(id)
            .cloned()
            .or_else(|| self.order(id))
            .or_else(|| crate::data::orders::order_by_id(&id.to_string()))
    }

    /// The order status feed.
    pub fn feed(&self) -> &crate::feed::OrderFeed {
        &self.feed
    }

    /// Moves order `id` to its next status (kept for the reads and broadcast to its watchers); `None` for
    /// an unknown order.
    pub fn advance_order(
        &mut self,
        id: u64,
    ) -> Option<Result<crate::feed::OrderChange, crate::feed::AdvanceRefused>> {
        let current = self.current_order(id)?;
        let change = self.feed.advance(id, current);
        if let Ok(change) = &change
            && let Some(created) = self.orders.get_mut(&id)
        {
            created.clone_from(&change.order);
        }
        Some(change)
    }

    /// The orders created for `user`, newest first.
    pub fn user_orders(&self, user: u32) -> Vec<Order> {
        self.user_orders
            .get(&user)
            .map(|ids| {
                ids.iter()
                    .rev()
                    .filter_map(|id| self.orders.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The reviews created for `product`, oldest first.
    pub fn reviews(&self, product: u32) -> &[Review] {
        self.reviews.get(&product).map_or(&[], Vec::as_slice)
    }

    /// Stores a new review (the caller checked that the user has not reviewed the product yet).
    pub fn add_review(&mut self, product: u32, review: Review) {
        self.reviews.entry(product).or_default().push(review);
    }

    /// The answer remembered under `key`.
    pub fn remembered(&self, key: &str) -> Option<Remembered> {
        self.remembered.get(key).cloned()
    }

    /// Remembers the answer of a creation under `key`.
    pub fn remember(&mut self, key: String, answer: Remembered) {
        if self.remembered.len() >= MAX_REMEMBERED
            && let Some(oldest) = self.remembered_order.pop_front()
        {
            self.remembered.remove(&oldest);
        }
        self.remembered_order.push_back(key.clone());
        self.remembered.insert(key, answer);
    }
}

/// An order with `lines` at current prices, placed now.
fn new_order(id: u64, lines: &[(u32, u32)], partner: Option<&str>, payment: &str) -> Order {
    let items: Vec<OrderItem> = lines
        .iter()
        .map(|&(product, quantity)| OrderItem {
            product_id: product.to_string(),
            quantity,
            unit_price: eur(price_cents(product)),
        })
        .collect();
    let total = items
        .iter()
        .map(|i| i.unit_price.amount_cents * i64::from(i.quantity))
        .sum();
    Order {
        id: id.to_string(),
        user_id: String::new(),
        partner_id: partner.map(str::to_owned),
        status: "placed".to_owned(),
        items,
        total: eur(total),
        placed_at: now_rfc3339(),
        shipping_address: shared_schemas::downstream::Address {
            line1: String::new(),
            city: String::new(),
            postal_code: String::new(),
            country: String::new(),
        },
        payment: shared_schemas::downstream::Payment {
            method: payment.to_owned(),
            card_last4: "0000".to_owned(),
            processor_ref: format!("ch_{id:016x}"),
        },
        internal_notes: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checkout turns the cart into the user's next order id and empties the cart; an empty cart is refused.
    #[test]
    fn checkout_uses_next_order_id_and_empties_cart() {
        let writes = Writes::default();
        let mut state = writes.lock();
        assert_eq!(state.checkout(7, "card"), Err("cart_empty"));
        state.add_to_cart(7, 42, 2).expect("added");
        state.add_to_cart(7, 42, 1).expect("added");
        assert_eq!(state.add_to_cart(7, 42, 18), Err("quantity_limit"));
        assert_eq!(state.cart(7).items[0].quantity, 3);
        let order = state.checkout(7, "card").expect("order");
        let expected = 7 * 100 + u64::from(order_count(7)) + 1;
        assert_eq!(order.id, expected.to_string());
        assert_eq!(order.items.len(), 1);
        assert_eq!(order.total.amount_cents, price_cents(42) * 3);
        assert!(state.cart(7).items.is_empty());
        assert_eq!(state.user_orders(7)[0].id, order.id);
    }
}
