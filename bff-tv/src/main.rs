//! The `bff-tv` binary: the shared gateway command line over [`bff_tv::app`].

bff_core::gateway_main!("bff-tv", "Backend-for-Frontend of the tv app", bff_tv);
