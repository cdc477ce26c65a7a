//! Reviews service: `GET /products/{id}/reviews?limit=`, `GET /products/{id}/rating`, and the command
//! `POST /products/{id}/reviews` (one review per user and product). Reviews created at run time are the
//! newest in the list and count in the rating.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shared_schemas::downstream::{CreateReview, Moderation, RatingSummary, Review, ReviewList};

use super::{
    BadRequest, Params, body, created, int_param, json_or_404, not_found, once, params, refused,
};
use crate::data::reviews::{newest_reviews, rating_summary, review_count};
use crate::data::users::names;
use crate::data::{PRODUCT_COUNT, USER_COUNT, parse_id};
use crate::writes::{Writes, now_rfc3339};

pub(super) fn routes(writes: &Writes) -> Router {
    Router::new()
        .route(
            "/products/{id}/reviews",
            get(list_reviews).post(create_review),
        )
        .route("/products/{id}/rating", get(get_rating))
        .with_state(writes.clone())
}

async fn list_reviews(
    State(writes): State<Writes>,
    Path(id): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, BadRequest> {
    let params = params(query)?;
    let Some(product) = parse_id(&id, PRODUCT_COUNT) else {
        return Ok(not_found());
    };
    let limit = int_param(&params, "limit", 10, 1, 50)?;
    let state = writes.lock();
    let written = state.reviews(product);
    Ok(
        match (newest_reviews(product, limit), rating_summary(product)) {
            (Some(generated), Some(summary)) => {
                let items = written
                    .iter()
                    .rev()
                    .cloned()
                    .chain(generated)
                    .take(limit as usize)
                    .collect();
                Json(ReviewList {
                    product_id: product.to_string(),
                    items,
                    summary: with_written(summary, written),
                })
                .into_response()
            }
            _ => not_found(),
        },
    )
}

async fn get_rating(State(writes): State<Writes>, Path(id): Path<String>) -> Response {
    let state = writes.lock();
    json_or_404(
        parse_id(&id, PRODUCT_COUNT)
            .and_then(|p| rating_summary(p).map(|s| with_written(s, state.reviews(p)))),
    )
}

/// The summary over the generated reviews and the written ones.
fn with_written(mut summary: RatingSummary, written: &[Review]) -> RatingSummary {
    if written.is_empty() {
        return summary;
    }
    let mut sum = summary.average * f64::from(summary.count);
    for r in written {
        summary.histogram[usize::from(r.rating - 1)] += 1;
        summary.count += 1;
        sum += f64::from(r.rating);
    }
    summary.average = (sum / f64::from(summary.count) * 100.0).round() / 100.0;
    summary
}

async fn create_review(
    State(writes): State<Writes>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<CreateReview>, JsonRejection>,
) -> Response {
    let Some(product) = parse_id(&id, PRODUCT_COUNT).filter(|p| rating_summary(*p).is_some())
    else {
        return not_found();
    };
    once(&writes, &format!("review {product}"), &headers, |state| {
        let command = match body(request) {
            Ok(c) => c,
            Err(answer) => return answer,
        };
        let Some(user) = parse_id(&command.user_id, USER_COUNT) else {
            return refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "unknown user");
        };
        let title_len = command.title.chars().count();
        let body_len = command.body.chars().count();
        if !(1..=5).contains(&command.rating)
            || !(1..=120).contains(&title_len)
            || !(1..=4000).contains(&body_len)
        {
            return refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "rating 1..=5, title 1..=120 and body 1..=4000 characters",
            );
        }
        let user_id = user.to_string();
        if state.reviews(product).iter().any(|r| r.user_id == user_id) {
            return refused(
                StatusCode::CONFLICT,
                "already_reviewed",
                "one review per user and product",
            );
        }
        let j = review_count(product) + state.reviews(product).len() as u32 + 1;
        let (first, last) = names(user);
        let review = Review {
            id: format!("{product}-{j}"),
            product_id: product.to_string(),
            user_id,
            author_name: format!("{first} {}.", last.chars().next().unwrap_or('X')),
            rating: command.rating,
            title: command.title,
            body: command.body,
            created_at: now_rfc3339(),
            helpful_votes: 0,
            moderation: Moderation {
                status: "pending".to_owned(),
                moderator_id: String::new(),
            },
        };
        state.add_review(product, review.clone());
        created(StatusCode::CREATED, &review)
    })
}
