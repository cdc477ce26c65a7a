//! The dev stack's reusable parts: the demo web app (a static SPA that logs in through bff-web's browser
//! sessions) and the session wiring of bff-web against the dev identity provider, shared by the `dev-stack`
//! binary and the browser tests.

pub mod demo;
