//! `POST /api/products/{id}/reviews`: the caller reviews a product — one command to the reviews service,
//! whose shape adds the author (the verified user id, never taken from the client). The product page's
//! cached reviews and rating are invalidated (read-your-writes).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bff_core::body::JsonBody;
use bff_core::idempotency::KeyRule;
use bff_core::{BffError, RequestContext};
use shared_schemas::downstream::{CreateReview, Review};
use shared_schemas::views::web::ReviewView;

use super::command::send;
use super::products::REVIEWS;
use crate::App;
use crate::commands::WriteReview;
use crate::ids::numeric_id;

/// Reviews a product as the caller (one review per user and product).
#[utoipa::path(
    post,
    path = "/api/products/{id}/reviews",
    params(("id" = String, Path, description = "Product id (digits)"),
           ("Idempotency-Key" = Option<String>, Header, description = "Optional: a retry with the same key is answered once")),
    request_body(content = WriteReview, content_type = "application/json"),
    responses(
        (status = 201, description = "The review as shown publicly (moderation pending)", body = ReviewView),
        (status = 400, description = "Malformed JSON (`malformed_body`) or Idempotency-Key", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_reviewed` or `idempotency_key_in_flight`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_body` (fields by JSON Pointer in `errors`) or `idempotency_key_reused`", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (writes have their own, tighter limit)", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The reviews service is unavailable", body = bff_core::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`outcome_unknown`: retry with the same Idempotency-Key", body = bff_core::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(command): JsonBody<WriteReview>,
) -> Response {
    let (user, product) = match (ctx.require_scopes(&[]), numeric_id(&id)) {
        (Ok(identity), Ok(product)) => (identity.subject.clone(), product.to_owned()),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let request = format!("POST /api/products/{product}/reviews");
    let idempotency = app.idempotency.clone();
    idempotency
        .run(
            &ctx,
            &headers,
            KeyRule::Optional,
            &request,
            &command,
            |key| async {
                let body = CreateReview {
                    user_id: user.clone(),
                    rating: command.rating,
                    title: command.title.trim().to_owned(),
                    body: command.body.trim().to_owned(),
                };
                let result = async {
                    let review: Review = send(
                        &ctx,
                        &app.reviews,
                        "review",
                        Method::POST,
                        &format!("/products/{product}/reviews"),
                        Some(&body),
                        key,
                    )
                    .await?;
                    app.reviews
                        .invalidate(
                            &ctx,
                            &[
                                format!("/products/{product}/reviews?limit={REVIEWS}"),
                                format!("/products/{product}/rating"),
                            ],
                        )
                        .await;
                    Ok::<_, BffError>(ReviewView::from(review))
                };
                match result.await {
                    Ok(view) => (StatusCode::CREATED, Json(view)).into_response(),
                    Err(e) => e.into_response(),
                }
            },
        )
        .await
}
