//! `GET /api/home`: profile + recent orders enriched with product summaries + recommendations with price and
//! stock, all fetched in parallel.

use bff_core::downstream::DownstreamError;
use bff_core::prelude::*;
use shared_schemas::downstream::{OrderPage, User};
use shared_schemas::gateway::Req;
use shared_schemas::views::web::{HomeView, OrderSummary, Profile, RecommendedProduct};

/// Orders shown on the home screen.
pub(crate) const RECENT_ORDERS: usize = 5;
/// Recommendations shown on the home screen.
const RECOMMENDATIONS: usize = 8;

/// Home screen of the signed-in user.
#[utoipa::path(get, path = "/api/home", responses(
    (status = 200, description = "Composed home screen; `bff-partial` names failed optional parts (`order_products`, `recommendations`)", body = HomeView),
))]
pub(crate) async fn home(Req { s, ctx, who }: Req) -> Reply<Json<HomeView>> {
    let user = who.user();
    let profile = ctx.required(
        "profile",
        s.users.get_json::<User>(&ctx, format!("/users/{user}")),
    );
    let orders = async {
        let path = format!("/users/{user}/orders?limit={RECENT_ORDERS}");
        let page: OrderPage = ctx
            .required("orders", s.orders.get_json(&ctx, path))
            .await?;
        let ids = unique_ids(
            page.items
                .iter()
                .flat_map(|o| o.items.iter().map(|i| i.product_id.as_str())),
        );
        let products = ctx
            .optional("order_products", s.products.load(&ctx, &ids))
            .await?;
        let orders = page
            .items
            .into_iter()
            .map(|o| OrderSummary::new(o, products.as_ref()));
        Ok::<_, BffError>(orders.collect())
    };
    // Recommendations, then their products and stock in two parallel batch calls.
    let recommendations = ctx.optional("recommendations", async {
        let (_, ids) = s.recommended(&ctx, user, RECOMMENDATIONS).await?;
        let (products, stock) =
            tokio::try_join!(s.products.load(&ctx, &ids), s.stock_by_id(&ctx, &ids))?;
        let view = |id: &String| {
            products
                .get(id)
                .map(|p| RecommendedProduct::new(p, stock.get(id)))
        };
        Ok::<_, DownstreamError>(ids.iter().filter_map(view).collect())
    });
    let (profile, recent_orders, recommendations) =
        tokio::try_join!(profile, orders, recommendations)?;
    Ok(Json(HomeView {
        profile: Profile::from(profile),
        recent_orders,
        recommendations,
    }))
}
