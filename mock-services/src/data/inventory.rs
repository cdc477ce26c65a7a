//! Inventory: one stock record per product; `available` is 0 for about 10% of products (those with
//! `restock_eta`), otherwise 1..=500.

use shared_schemas::downstream::{Inventory, WarehouseStock};

use super::catalog::product_exists;
use super::rng::{Rng, domain};
use super::time::{BASE_EPOCH, rfc3339};
use super::{PRODUCT_COUNT, parse_id};

/// The stock record of the product with the given id string, if the product exists.
pub fn inventory_by_id(id: &str) -> Option<Inventory> {
    parse_id(id, PRODUCT_COUNT).map(inventory)
}

/// Stock of product `product` (must exist for a meaningful result).
pub fn inventory(product: u32) -> Inventory {
    debug_assert!(product_exists(product));
    let mut rng = Rng::for_entity(domain::INVENTORY, u64::from(product));
    let out_of_stock = rng.below(10) == 0;
    let available = if out_of_stock {
        0
    } else {
        rng.range(1, 500) as u32
    };
    let reserved = rng.below(30) as u32;
    let n_warehouses = rng.range(1, 3) as u32;
    let mut remaining = available + reserved;
    let warehouses = (1..=n_warehouses)
        .map(|w| {
            let on_hand = if w == n_warehouses {
                remaining
            } else {
                rng.below(u64::from(remaining) + 1) as u32
            };
            remaining -= on_hand;
            WarehouseStock {
                warehouse_id: format!("wh-{}", ["ber", "ham", "muc"][(w - 1) as usize]),
                on_hand,
            }
        })
        .collect();
    let updated = BASE_EPOCH + 86_400 * 180 + rng.below(86_400 * 20) as i64;
    Inventory {
        product_id: product.to_string(),
        available,
        reserved,
        warehouses,
        restock_eta: out_of_stock.then(|| rfc3339(updated + 86_400 * rng.range(3, 30) as i64)),
        updated_at: rfc3339(updated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_ten_percent_out_of_stock() {
        let zero = (1..=PRODUCT_COUNT)
            .map(inventory)
            .filter(|i| i.available == 0)
            .count();
        assert!((350..=650).contains(&zero), "{zero}");
        let i = (1..=PRODUCT_COUNT)
            .map(inventory)
            .find(|i| i.available == 0)
            .expect("one");
        assert!(i.restock_eta.is_some());
        assert!(inventory(1).available <= 500);
    }
}
