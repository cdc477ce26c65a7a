//! The downstream services of the domain: their names (the config keys under `downstreams`) and default ports.

/// `(name, default port)` of every downstream service, identity provider first.
pub const DEFAULT_PORTS: &[(&str, u16)] = &[
    ("identity", 7000),
    ("users", 7001),
    ("catalog", 7002),
    ("orders", 7003),
    ("reviews", 7004),
    ("inventory", 7005),
    ("recommendations", 7006),
];

/// Issuer of the dev identity provider's tokens.
pub const DEV_ISSUER: &str = "bff-dev-idp";

/// Most ids the catalog and inventory batch endpoints (`?ids=a,b,c`) accept in one call.
pub const MAX_BATCH_IDS: usize = 100;

/// Whether `id` can name a resource of the domain: 1..=32 ASCII digits. Anything else names nothing, so a
/// gateway answers 404 without calling a downstream.
pub fn is_valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

/// `(name, base URL)` of every domain service at its default port on `127.0.0.1`.
pub fn default_urls() -> impl Iterator<Item = (&'static str, String)> {
    DEFAULT_PORTS
        .iter()
        .map(|(name, port)| (*name, format!("http://127.0.0.1:{port}")))
}

/// Cache policy of the domain's shared services, `(name, fresh for s, served stale on error for s)`: catalog,
/// reviews and inventory answer the same for everybody (cached once, batched across requests); catalog data
/// and ratings are fresh for 60 s, stock for 5 s; each may be served up to 5 minutes (stock: 30 s) stale when
/// its service fails. Users, orders and recommendations are private and not listed (cached only when they say
/// so, per user).
pub const SHARED_CACHE: &[(&str, u64, u64)] = &[
    ("catalog", 60, 300),
    ("reviews", 60, 300),
    ("inventory", 5, 30),
];
