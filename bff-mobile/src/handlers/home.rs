//! `GET /api/home`: greeting, the last three orders and five recommendations, lean.

use std::sync::Arc;

use axum::extract::RawQuery;
use axum::extract::State;
use axum::response::Response;
use bff_core::compose::unique_ids;
use bff_core::downstream::{DownstreamError, encode_segment};
use bff_core::{BffError, RequestContext};
use shared_schemas::downstream::{OrderPage, Recommendations, User};
use shared_schemas::views::mobile::{
    HOME_ORDERS, HOME_RECOMMENDATIONS, HomeRecommendation, HomeView, home_recommendations,
};

use crate::App;
use bff_core::shape::{sparse_fields, sparse_json};

/// The home screen of the caller.
///
/// Profile and orders are required; recommendations (the recommendations service, then one catalog batch
/// call for their names, prices and thumbnails) are optional: when they fail, `recommendations` is `null`
/// and the response carries `bff-partial: recommendations`.
#[utoipa::path(
    get,
    path = "/api/home",
    tag = "mobile",
    security(("bearer" = [])),
    params(
        ("If-None-Match" = Option<String>, Header, description = "ETag of a cached copy: 304 when unchanged"),
        ("fields" = Option<String>, Query, description = "Sparse fieldset: comma-separated dotted paths, e.g. `first_name,orders.id` (allowed: the view's fields)"),
    ),
    responses(
        (status = 200, description = "The home screen (under 2 KB)", body = HomeView,
            headers(("ETag" = String, description = "Strong tag of the body"),
                    ("bff-partial" = String, description = "Optional parts that failed, e.g. `recommendations`"))),
        (status = 304, description = "The cached copy named by If-None-Match is current; empty body"),
        (status = 400, description = "`fields` names unknown or disallowed fields", body = bff_core::error::Problem),
        (status = 401, description = "No valid token", body = bff_core::error::Problem),
        (status = 502, description = "A required part answered badly", body = bff_core::error::Problem),
        (status = 503, description = "A required part is unavailable", body = bff_core::error::Problem),
        (status = 504, description = "The time budget ran out", body = bff_core::error::Problem),
    )
)]
pub(crate) async fn home(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
    RawQuery(query): RawQuery,
) -> Result<Response, BffError> {
    let user = encode_segment(&ctx.require_scopes(&[])?.subject);
    let fields = sparse_fields(query.as_deref(), super::fields::HOME)?;
    let profile_path = format!("/users/{user}");
    let orders_path = format!("/users/{user}/orders?limit={HOME_ORDERS}");
    let (profile, orders, recommendations) = tokio::try_join!(
        ctx.required("profile", app.users.get_json::<User>(&ctx, &profile_path)),
        ctx.required(
            "orders",
            app.orders.get_json::<OrderPage>(&ctx, &orders_path)
        ),
        ctx.optional("recommendations", recommended(&app, &ctx, &user)),
    )?;
    Ok(sparse_json(
        &HomeView::new(profile, orders, recommendations),
        fields.as_ref(),
    ))
}

/// The recommendations of `user` (already path-encoded), enriched by one catalog batch call.
async fn recommended(
    app: &App,
    ctx: &RequestContext,
    user: &str,
) -> Result<Vec<HomeRecommendation>, DownstreamError> {
    let path = format!("/users/{user}/recommendations?limit={HOME_RECOMMENDATIONS}");
    let recs: Recommendations = app.recommendations.get_json(ctx, &path).await?;
    let ids = unique_ids(recs.items.iter().map(|r| r.product_id.as_str()));
    let ids: Vec<String> = ids.into_iter().take(HOME_RECOMMENDATIONS).collect();
    let products = app.products.load(ctx, &ids).await?;
    Ok(home_recommendations(&recs, &products))
}
