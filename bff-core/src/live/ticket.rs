//! Single-use tickets for opening a WebSocket: a browser cannot set `Authorization` on a WebSocket, so the
//! client first asks for a ticket with its bearer token and then opens `...?ticket=<ticket>`. A ticket is
//! 32 random bytes (base64url), bound to the caller's identity, valid for `live.ticket_ttl_s` and never past
//! the token's `exp`, held in memory by its SHA-256 (a dump of the table yields no usable ticket), and
//! removed when it is redeemed — a second use is refused like an unknown ticket.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use sha2::Digest;
use tokio::time::Instant;

use crate::auth::Identity;
use crate::error::BffError;

/// The outstanding tickets of one gateway.
#[derive(Debug)]
pub(crate) struct Tickets {
    ttl: Duration,
    max: usize,
    by_hash: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
}

fn hash(ticket: &str) -> [u8; 32] {
    sha2::Sha256::digest(ticket.as_bytes()).into()
}

impl Tickets {
    /// Tickets valid for `ttl`, at most `max` outstanding.
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            by_hash: Mutex::new(HashMap::new()),
        }
    }

    /// A new ticket for `identity`, or 503 `overloaded` when `max` tickets are outstanding (after the
    /// expired ones were dropped).
    pub(crate) fn issue(&self, identity: &Identity) -> Result<String, BffError> {
        let now = Instant::now();
        let mut until = now + self.ttl;
        if let Some(exp) = identity.expires_at {
            let unix_now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            until = until.min(now + Duration::from_secs(exp.saturating_sub(unix_now)));
        }
        let mut table = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= self.max {
            table.retain(|_, (_, expires)| *expires > now);
            if table.len() >= self.max {
                return Err(BffError::Refused {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "overloaded",
                    detail: "too many tickets outstanding; try again shortly",
                });
            }
        }
        let ticket = crate::session::random_token();
        table.insert(hash(&ticket), (identity.clone(), until));
        Ok(ticket)
    }

    /// The identity `ticket` was issued to, removing it: `None` when it is unknown, used or expired.
    pub(crate) fn redeem(&self, ticket: &str) -> Option<Identity> {
        let mut table = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        let (identity, until) = table.remove(&hash(ticket))?;
        (until > Instant::now()).then_some(identity)
    }

    /// Tickets held now (expired ones included until the table is next pruned).
    #[cfg(test)]
    pub(crate) fn outstanding(&self) -> usize {
        self.by_hash.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(expires_at: Option<u64>) -> Identity {
        Identity {
            subject: "7".into(),
            client: "mobile".into(),
            scopes: vec![],
            partner: None,
            expires_at,
        }
    }

    /// A ticket is redeemed once, for the identity it was issued to; a second use and an unknown ticket
    /// yield nothing.
    #[test]
    fn single_use() {
        let tickets = Tickets::new(Duration::from_secs(30), 10);
        let ticket = tickets.issue(&identity(None)).expect("issued");
        assert_eq!(ticket.len(), 43);
        assert_eq!(tickets.redeem(&ticket).map(|i| i.subject), Some("7".into()));
        assert!(tickets.redeem(&ticket).is_none());
        assert!(tickets.redeem("nope").is_none());
        assert_eq!(tickets.outstanding(), 0);
    }

    /// A ticket never outlives its token; the table is bounded (expired tickets make room).
    #[tokio::test(start_paused = true)]
    async fn bounded_by_token_expiry_and_count() {
        let tickets = Tickets::new(Duration::from_secs(30), 1);
        let past = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 1;
        let expired = tickets.issue(&identity(Some(past))).expect("issued");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(tickets.redeem(&expired).is_none());
        let first = tickets.issue(&identity(None)).expect("issued");
        assert!(matches!(
            tickets.issue(&identity(None)),
            Err(BffError::Refused {
                code: "overloaded",
                ..
            })
        ));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(tickets.issue(&identity(None)).is_ok());
        assert!(tickets.redeem(&first).is_none());
    }
}
