//! `GET /api/home`: greeting, the last three orders and five recommendations, lean.

use bff_core::downstream::DownstreamError;
use bff_core::prelude::*;
use shared_schemas::downstream::{OrderPage, User};
use shared_schemas::gateway::{Req, Services};
use shared_schemas::views::mobile::{
    HOME_ORDERS, HOME_RECOMMENDATIONS, HomeRecommendation, HomeView, home_recommendations,
};

/// The home screen of the who.
///
/// Profile and orders are required; recommendations (the recommendations service, then one catalog batch
/// call for their names, prices and thumbnails) are optional: when they fail, `recommendations` is `null`
/// and the response carries `bff-partial: recommendations`.
#[utoipa::path(get, path = "/api/home", params(Fields<HomeView>), responses(
    (status = 200, description = "The home screen (under 2 KB); strong `ETag`", body = HomeView),
))]
pub(crate) async fn home(Req { s, ctx, who }: Req, f: Fields<HomeView>) -> Reply {
    let user = who.user();
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
    Ok(f.json(&HomeView::new(profile, orders, recommendations)))
}

/// The recommendations of `user` (already path-encoded), enriched by one catalog batch call.
async fn recommended(
    s: &Services,
    ctx: &RequestContext,
    user: &str,
) -> Result<Vec<HomeRecommendation>, DownstreamError> {
    let (recs, ids) = s.recommended(ctx, user, HOME_RECOMMENDATIONS).await?;
    let products = s.products.load(ctx, &ids).await?;
    Ok(home_recommendations(&recs, &products))
}
