//! The `bff-partner` binary: serves the partner gateway (see the [`bff_partner`] crate docs).

bff_core::gateway_main!(
    "bff-partner",
    "the partner Backend-for-Frontend gateway (versioned API, API-key authentication)",
    bff_partner
);
