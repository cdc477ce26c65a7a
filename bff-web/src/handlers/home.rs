//! `GET /api/home`: profile + recent orders enriched with product summaries + recommendations with price and
//! stock, all fetched in parallel.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use bff_core::compose::unique_ids;
use bff_core::downstream::{DownstreamError, encode_segment};
use bff_core::{BffError, RequestContext};
use shared_schemas::downstream::{OrderPage, Recommendations, User};
use shared_schemas::views::web::{HomeView, OrderSummary, Profile, RecommendedProduct};

use super::catalog;
use crate::App;

/// Orders shown on the home screen.
pub(crate) const RECENT_ORDERS: usize = 5;
/// Recommendations shown on the home screen.
const RECOMMENDATIONS: usize = 8;

/// Home screen of the signed-in user.
#[utoipa::path(
    get,
    path = "/api/home",
    responses(
        (status = 200, description = "Composed home screen; `bff-partial` names failed optional parts", body = HomeView),
        (status = 401, description = "Missing or invalid token", body = bff_core::error::Problem),
        (status = 502, description = "A required part answered badly", body = bff_core::error::Problem),
        (status = 503, description = "A required part is unreachable", body = bff_core::error::Problem),
        (status = 504, description = "The time budget ran out", body = bff_core::error::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn home(
    State(app): State<Arc<App>>,
    ctx: RequestContext,
) -> Result<Json<HomeView>, BffError> {
    let user = encode_segment(&ctx.require_scopes(&[])?.subject);
    let profile = ctx.required(
        "profile",
        app.users.get_json::<User>(&ctx, format!("/users/{user}")),
    );
    let orders = async {
        let page: OrderPage = ctx
            .required(
                "orders",
                app.orders
                    .get_json(&ctx, format!("/users/{user}/orders?limit={RECENT_ORDERS}")),
            )
            .await?;
        let ids = unique_ids(
            page.items
                .iter()
                .flat_map(|o| o.items.iter().map(|i| i.product_id.as_str())),
        );
        let products = ctx
            .optional(
                "order_products",
                catalog::products(&app.products, &ctx, &ids),
            )
            .await?;
        Ok::<_, BffError>(
            page.items
                .into_iter()
                .map(|o| OrderSummary::new(o, products.as_ref()))
                .collect::<Vec<_>>(),
        )
    };
    let recommendations = ctx.optional("recommendations", recommended(&app, &ctx, &user));
    let (profile, recent_orders, recommendations) =
        tokio::try_join!(profile, orders, recommendations)?;
    Ok(Json(HomeView {
        profile: Profile::from(profile),
        recent_orders,
        recommendations,
    }))
}

/// Recommendations, then their products and stock in two parallel batch calls.
async fn recommended(
    app: &App,
    ctx: &RequestContext,
    user: &str,
) -> Result<Vec<RecommendedProduct>, DownstreamError> {
    let recs: Recommendations = app
        .recommendations
        .get_json(
            ctx,
            format!("/users/{user}/recommendations?limit={RECOMMENDATIONS}"),
        )
        .await?;
    let ids = unique_ids(recs.items.iter().map(|r| r.product_id.as_str()));
    let (products, stock) = tokio::try_join!(
        catalog::products(&app.products, ctx, &ids),
        catalog::stock(&app.stock, ctx, &ids)
    )?;
    Ok(ids
        .iter()
        .filter_map(|id| {
            products
                .get(id)
                .map(|p| RecommendedProduct::new(p, stock.get(id)))
        })
        .collect())
}
