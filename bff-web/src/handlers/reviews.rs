//! `POST /api/products/{id}/reviews`: the caller reviews a product — one command to the reviews service,
//! whose shape adds the author (the verified user id, never taken from the client). The product page's
//! cached reviews and rating are invalidated (read-your-writes).

use axum::http::StatusCode;
use bff_core::prelude::*;
use shared_schemas::downstream::{CreateReview, Review};
use shared_schemas::gateway::{Call, DomainId, Req, send};
use shared_schemas::views::web::ReviewView;

use super::products::REVIEWS;
use crate::commands::WriteReview;

/// Reviews a product as the caller (one review per user and product).
#[utoipa::path(post, path = "/api/products/{id}/reviews", params(Write), request_body = WriteReview, responses(
    (status = 201, description = "The review as shown publicly (moderation pending)", body = ReviewView),
    (status = 409, description = "`already_reviewed`", body = bff_core::error::Problem),
))]
pub(crate) async fn create(
    Req { s, ctx, who }: Req,
    product: DomainId,
    cmd: Command<WriteReview>,
) -> Response {
    cmd.run(KeyRule::Optional, |key| async {
        let body = CreateReview {
            user_id: who.subject().to_owned(),
            rating: cmd.body.rating,
            title: cmd.body.title.trim().to_owned(),
            body: cmd.body.body.trim().to_owned(),
        };
        let stale = [
            format!("/products/{product}/reviews?limit={REVIEWS}"),
            format!("/products/{product}/rating"),
        ];
        let call =
            Call::post("review", format!("/products/{product}/reviews"), &body).invalidates(stale);
        let review: Review = send(&ctx, &s.reviews, key, call).await?;
        Ok::<_, BffError>((StatusCode::CREATED, Json(ReviewView::from(review))))
    })
    .await
}
