//! The `bff-web` binary: the shared gateway command line over [`bff_web::app`].

bff_core::gateway_main!("bff-web", "Backend-for-Frontend of the web app", bff_web);
