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
