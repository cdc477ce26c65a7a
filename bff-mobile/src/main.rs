//! The `bff-mobile` binary: serves the mobile gateway (see [`bff_mobile`]).

bff_core::gateway_main!(
    "bff-mobile",
    "the mobile Backend-for-Frontend (lean screens, ETags)",
    bff_mobile
);
