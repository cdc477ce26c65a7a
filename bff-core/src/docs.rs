//! The OpenAPI document (`/openapi.json`) and a self-contained docs page (`/docs`) that renders it in the
//! browser without fetching anything from the internet.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// The docs page: plain HTML + inline script that lists every operation of `/openapi.json`.
const DOCS_PAGE: &str = include_str!("docs.html");

/// Routes serving `openapi` (the completed document, see [`crate::openapi`]) and the docs page.
pub(crate) fn router(openapi: serde_json::Value) -> Router {
    // Serialized once: the document only changes with the config, which builds a new router.
    let doc = axum::body::Bytes::from(serde_json::to_vec(&openapi).unwrap_or_default());
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        .route(
            "/docs",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CONTENT_SECURITY_POLICY, "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"),
                    ],
                    DOCS_PAGE,
                )
                    .into_response()
            }),
        )
}
