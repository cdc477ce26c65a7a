//! `GET /api/home`: greeting, the last three orders and five recommendations, lean.

use bff_core::downstream::DownstreamError;
use bff_core::prelude::*;
use shared_schemas::downstream::{OrderPage, Recommendations, User};
use shared_schemas::gateway::Services;
use shared_schemas::views::mobile::{
    HOME_ORDERS, HOME_RECOMMENDATIONS, HomeRecommendation, HomeView, home_recommendations,
};

/// The home screen of the caller.
///
/// Profile and orders are required; recommendations (the recommendations service, then one catalog batch
/// call for their names, prices and thumbnails) are optional: when they fail, `recommendations` is `null`
/// and the response carries `bff-partial: recommendations`.
#[utoipa::path(get, path = "/api/home", params(Fields<HomeView>), responses(
    (status = 200, description = "The home screen (under 2 KB); strong `ETag`", body = HomeView),
))]
pub(crate) async fn home(
    State(s): State<Arc<Services>>,
    ctx: RequestContext,
    caller: Caller,
    fields: Fields<HomeView>,
) -> Result<Response, BffError> {
    let user = caller.user();
    let (profile, orders, recommendations) = tokio::try_join!(
        ctx.required(
            "profile",
            s.users.get_json::<User>(&ctx, format!("/users/{user}"))
        ),
        ctx.required(
            "orders",
            s.orders
                .get_json::<OrderPage>(&ctx, format!("/users/{user}/orders?limit={HOME_ORDERS}"))
        ),
        ctx.optional("recommendations", recommended(&s, &ctx, user)),
    )?;
    Ok(fields.json(&HomeView::new(profile, orders, recommendations)))
}

/// The recommendations of `user` (already path-encoded), enriched by one catalog batch call.
async fn recommended(
    s: &Services,
    ctx: &RequestContext,
    user: &str,
) -> Result<Vec<HomeRecommendation>, DownstreamError> {
    let path = format!("/users/{user}/recommendations?limit={HOME_RECOMMENDATIONS}");
    let recs: Recommendations = s.recommendations.get_json(ctx, path).await?;
    let mut ids = unique_ids(recs.items.iter().map(|r| r.product_id.as_str()));
    ids.truncate(HOME_RECOMMENDATIONS);
    let products = s.products.load(ctx, &ids).await?;
    Ok(home_recommendations(&recs, &products))
}
