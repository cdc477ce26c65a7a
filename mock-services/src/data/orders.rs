//! Orders: user `u` has `order_count(u)` (3..=12) orders; the `k`-th (1-based, oldest first) has id
//! `u * 100 + k`. The partner channel is `acme` when `k % 3 == 1`, `globex` when `k % 3 == 2`, none
//! when `k % 3 == 0`.

use shared_schemas::downstream::{Money, Order, OrderItem, Payment};

use super::catalog::price_cents;
use super::rng::{Rng, domain};
use super::time::{BASE_EPOCH, rfc3339};
use super::users::{address, user_exists};
use super::words::{ORDER_NOTES, PAYMENT_METHODS};
use super::{PRODUCT_COUNT, USER_COUNT, parse_id};

/// The partner that owns orders with `k % 3 == 1`.
pub const PARTNER_ACME: &str = "acme";
/// The partner that owns orders with `k % 3 == 2`.
pub const PARTNER_GLOBEX: &str = "globex";

/// Number of orders of user `user` (3..=12; 0 for unknown users).
pub fn order_count(user: u32) -> u32 {
    if !user_exists(user) {
        return 0;
    }
    3 + Rng::for_entity(domain::ORDER_COUNT, u64::from(user)).below(10) as u32
}

/// Id of the `k`-th (1-based, oldest first) order of `user`: `user * 100 + k`.
pub const fn order_id(user: u32, k: u32) -> u64 {
    user as u64 * 100 + k as u64
}

/// Splits an order id into `(user, k)` if such an order exists.
pub fn split_order_id(id: u64) -> Option<(u32, u32)> {
    let user = u32::try_from(id / 100).ok()?;
    let k = (id % 100) as u32;
    (k >= 1 && k <= order_count(user)).then_some((user, k))
}

/// The partner channel of the `k`-th order of a user.
pub fn partner_of(k: u32) -> Option<&'static str> {
    match k % 3 {
        1 => Some(PARTNER_ACME),
        2 => Some(PARTNER_GLOBEX),
        _ => None,
    }
}

/// The order with the given id string, if it exists.
pub fn order_by_id(id: &str) -> Option<Order> {
    let n = parse_id(id, u32::MAX)?;
    let (user, k) = split_order_id(u64::from(n))?;
    Some(order(user, k))
}

/// The `k`-th order of `user` (both must exist for a meaningful result).
pub fn order(user: u32, k: u32) -> Order {
    let id = order_id(user, k);
    let mut rng = Rng::for_entity(domain::ORDER, id);
    let count = order_count(user);
    // Orders are spread over the last ~two years, older k = earlier, the newest ones most recent.
    let placed = BASE_EPOCH + 86_400 * 200
        - i64::from(count - k) * 86_400 * 45
        - rng.below(86_400 * 30) as i64;
    let age_rank = count - k; // 0 = newest
    let status = if rng.chance(0.08) {
        "cancelled"
    } else {
        match age_rank {
            0 => ["placed", "paid", "shipped"][rng.below(3) as usize],
            1 => ["shipped", "delivered"][rng.below(2) as usize],
            _ => "delivered",
        }
    };
    let n_items = rng.range(1, 5);
    let items: Vec<OrderItem> = (0..n_items)
        .map(|_| {
            let product = rng.range(1, u64::from(PRODUCT_COUNT)) as u32;
            OrderItem {
                product_id: product.to_string(),
                quantity: rng.range(1, 3) as u32,
                unit_price: eur(price_cents(product)),
            }
        })
        .collect();
    let total = items
        .iter()
        .map(|i| i.unit_price.amount_cents * i64::from(i.quantity))
        .sum();
    Order {
        id: id.to_string(),
        user_id: user.to_string(),
        partner_id: partner_of(k).map(str::to_owned),
        status: status.to_owned(),
        items,
        total: eur(total),
        placed_at: rfc3339(placed),
        shipping_address: address(user),
        payment: Payment {
            method: rng.pick(PAYMENT_METHODS).to_owned(),
            card_last4: format!("{:04}", rng.below(10_000)),
            processor_ref: format!("ch_{:016x}", rng.next_u64()),
        },
        internal_notes: rng.pick(ORDER_NOTES).to_owned(),
    }
}

/// Orders of `user`, newest first, skipping `offset` and returning at most `limit`, plus the offset of
/// the next page if there is one. `None` for unknown users.
pub fn orders_page(user: u32, offset: u32, limit: u32) -> Option<(Vec<Order>, Option<u32>)> {
    if !(1..=USER_COUNT).contains(&user) {
        return None;
    }
    let count = order_count(user);
    let start = offset.min(count);
    let end = start.saturating_add(limit).min(count);
    // Newest first: position p (0-based) is k = count - p.
    let items = (start..end).map(|p| order(user, count - p)).collect();
    Some((items, (end < count).then_some(end)))
}

fn eur(amount_cents: i64) -> Money {
    Money {
        amount_cents,
        currency: "EUR".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_orders_exist() {
        let o = order_by_id("1001").expect("order 1001");
        assert_eq!(o.user_id, "10");
        assert_eq!(o.partner_id.as_deref(), Some("acme"));
        assert_eq!(
            order_by_id("702").and_then(|o| o.partner_id).as_deref(),
            Some("globex")
        );
        assert_eq!(order_by_id("703").map(|o| o.partner_id), Some(None));
        assert!(order_by_id("100").is_none());
        assert!(order_by_id("113").is_none());
        assert!(order_by_id("100101").is_none());
        for u in 1..=USER_COUNT {
            assert!((3..=12).contains(&order_count(u)));
        }
    }

    #[test]
    fn pages_cover_all_orders_newest_first() {
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let (items, next) = orders_page(7, offset, 2).expect("user 7");
            all.extend(items);
            match next {
                Some(n) => offset = n,
                None => break,
            }
        }
        assert_eq!(all.len() as u32, order_count(7));
        assert!(all.windows(2).all(|w| w[0].placed_at > w[1].placed_at));
    }
}
