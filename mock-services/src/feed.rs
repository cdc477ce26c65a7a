//! Order status changes at run time: `POST /admin/orders/{id}/advance` moves an order to its next status
//! (`placed` → `paid` → `shipped` → `delivered`); each change is kept (so a reconnecting watcher can be sent
//! what it missed) and broadcast to the watchers of `GET /orders/{id}/events`.
//!
//! Each order's changes are numbered: `seq` 0 is the order as it was before the first advance, `seq` n the
//! order after the n-th advance.

use std::collections::HashMap;

use serde::Serialize;
use shared_schemas::downstream::Order;
use tokio::sync::broadcast;

/// Most changes buffered for a slow watcher (one that falls further behind loses its stream).
const BROADCAST_CAPACITY: usize = 256;

/// One status change of an order, as sent on its event stream (one NDJSON line).
#[derive(Debug, Clone, Serialize)]
pub struct OrderChange {
    /// Position in the order's history (0 = as it was before any advance).
    pub seq: u64,
    /// The order after the change (the same document as `GET /orders/{id}`).
    pub order: Order,
}

/// The status history of advanced orders and the broadcast of new changes.
#[derive(Debug)]
pub struct OrderFeed {
    history: HashMap<u64, Vec<Order>>,
    sender: broadcast::Sender<OrderChange>,
}

impl Default for OrderFeed {
    fn default() -> Self {
        Self {
            history: HashMap::new(),
            sender: broadcast::channel(BROADCAST_CAPACITY).0,
        }
    }
}

/// Why an order cannot advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvanceRefused {
    /// The order is `delivered` or `cancelled`.
    Final,
}

/// The status that follows `status`, `None` for a final one.
pub fn next_status(status: &str) -> Option<&'static str> {
    match status {
        "placed" => Some("paid"),
        "paid" => Some("shipped"),
        "shipped" => Some("delivered"),
        _ => None,
    }
}

impl OrderFeed {
    /// The latest version of order `id` if it was advanced.
    pub fn latest(&self, id: u64) -> Option<&Order> {
        self.history.get(&id).and_then(|h| h.last())
    }

    /// Advances `current` (the order's latest version) to its next status, records and broadcasts it.
    pub fn advance(&mut self, id: u64, current: Order) -> Result<OrderChange, AdvanceRefused> {
        let next = next_status(&current.status).ok_or(AdvanceRefused::Final)?;
        let history = self
            .history
            .entry(id)
            .or_insert_with(|| vec![current.clone()]);
        let mut order = current;
        order.status = next.to_owned();
        history.push(order.clone());
        let change = OrderChange {
            seq: history.len() as u64 - 1,
            order,
        };
        // No watcher is not an error.
        let _ = self.sender.send(change.clone());
        Ok(change)
    }

    /// What a new watcher of `current` (order `id`'s latest version) is sent first — the changes after
    /// `after` when given and still known, else the current version — and the receiver of what follows.
    pub fn watch(
        &self,
        id: u64,
        current: Order,
        after: Option<u64>,
    ) -> (Vec<OrderChange>, broadcast::Receiver<OrderChange>) {
        let receiver = self.sender.subscribe();
        let history = self.history.get(&id);
        let latest = history.map_or(0, |h| h.len() as u64 - 1);
        let first = match (after, history) {
            (Some(after), Some(h)) if after < latest => h
                .iter()
                .enumerate()
                .skip(after as usize + 1)
                .map(|(seq, order)| OrderChange {
                    seq: seq as u64,
                    order: order.clone(),
                })
                .collect(),
            (Some(after), _) if after == latest => Vec::new(),
            _ => vec![OrderChange {
                seq: latest,
                order: current,
            }],
        };
        (first, receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_and_resume() {
        let mut feed = OrderFeed::default();
        let mut order = crate::data::orders::order_by_id("1001").expect("order");
        order.status = "placed".to_owned();
        let a = feed.advance(1001, order.clone()).expect("paid");
        assert_eq!((a.seq, a.order.status.as_str()), (1, "paid"));
        let b = feed.advance(1001, a.order).expect("shipped");
        let c = feed.advance(1001, b.order).expect("delivered");
        assert_eq!(c.seq, 3);
        assert_eq!(
            feed.advance(1001, c.order.clone()).unwrap_err(),
            AdvanceRefused::Final
        );
        let (missed, _) = feed.watch(1001, c.order.clone(), Some(1));
        assert_eq!(missed.iter().map(|c| c.seq).collect::<Vec<_>>(), [2, 3]);
        let (none, _) = feed.watch(1001, c.order.clone(), Some(3));
        assert!(none.is_empty());
        let (current, _) = feed.watch(1001, c.order, None);
        assert_eq!(current[0].seq, 3);
        assert_eq!(current[0].order.status, "delivered");
        let (unknown, _) = feed.watch(1001, order, Some(99));
        assert_eq!(unknown.len(), 1);
    }
}
