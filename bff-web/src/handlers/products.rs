//! `GET /api/products/{id}` (product page) and `GET /api/products` (listing).

use bff_core::downstream::encode_query;
use bff_core::prelude::*;
use serde::Deserialize;
use shared_schemas::downstream::{Product, ProductPage, RatingSummary, ReviewList};
use shared_schemas::gateway::{DomainId, Req};
use shared_schemas::views::web::{ProductDetailView, ProductListView, ProductSummary};
use utoipa::IntoParams;

/// Reviews shown on a product page.
pub(crate) const REVIEWS: usize = 5;

/// Product page: product + rating + reviews + availability + related products.
#[utoipa::path(get, path = "/api/products/{id}", responses(
    (status = 200, description = "Composed product page; `bff-partial` names failed optional parts", body = ProductDetailView),
))]
pub(crate) async fn product(
    Req { s, ctx, .. }: Req,
    id: DomainId,
) -> Reply<Json<ProductDetailView>> {
    let product_and_related = async {
        let product: Product = ctx
            .required(
                "product",
                s.catalog.get_json(&ctx, format!("/products/{id}")),
            )
            .await?;
        let related = ctx
            .optional("related", s.products.load(&ctx, &product.related_ids))
            .await?;
        let related = related.map(|by_id| {
            let found = product
                .related_ids
                .iter()
                .filter_map(|id| by_id.get(id).cloned());
            found.collect()
        });
        Ok::<_, BffError>((product, related))
    };
    let rating = s
        .reviews
        .get_json::<RatingSummary>(&ctx, format!("/products/{id}/rating"));
    let reviews = s
        .reviews
        .get_json::<ReviewList>(&ctx, format!("/products/{id}/reviews?limit={REVIEWS}"));
    let availability = s.stock_of(&ctx, id.as_str());
    let ((product, related), rating, reviews, availability) = tokio::try_join!(
        product_and_related,
        ctx.optional("rating", rating),
        ctx.optional("reviews", reviews),
        ctx.optional("availability", availability),
    )?;
    let reviews = reviews.map(|r| r.items);
    Ok(Json(ProductDetailView::new(
        product,
        rating,
        reviews,
        availability,
        related,
    )))
}

/// Query of the product listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Category slug, e.g. `kitchen`.
    category: Option<String>,
    /// Case-insensitive search in product names (at most 100 characters).
    q: Option<String>,
    /// 1-based page (1..=1000, default 1).
    page: Option<u32>,
    /// Page size (1..=50, default 20).
    page_size: Option<u32>,
}

fn bad(detail: &str) -> BffError {
    BffError::BadRequest {
        detail: detail.to_owned(),
    }
}

impl ListQuery {
    /// The catalog query, or 400 naming the bad parameter.
    fn downstream_query(&self) -> Result<String, BffError> {
        let page = self.page.unwrap_or(1);
        let page_size = self.page_size.unwrap_or(20);
        if !(1..=1000).contains(&page) {
            return Err(bad("`page` must be between 1 and 1000"));
        }
        if !(1..=50).contains(&page_size) {
            return Err(bad("`page_size` must be between 1 and 50"));
        }
        let mut query = format!("/products?page={page}&page_size={page_size}");
        if let Some(category) = &self.category {
            if category.is_empty()
                || category.len() > 40
                || !category
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
            {
                return Err(bad("`category` must be a lower-case slug"));
            }
            query.push_str(&format!("&category={category}"));
        }
        if let Some(q) = &self.q {
            if q.chars().count() > 100 {
                return Err(bad("`q` must be at most 100 characters"));
            }
            query.push_str(&format!("&q={}", encode_query(q)));
        }
        Ok(query)
    }
}

/// Product listing by category and/or name search, paginated.
#[utoipa::path(get, path = "/api/products", params(ListQuery), responses(
    (status = 200, description = "One page of product summaries", body = ProductListView),
))]
pub(crate) async fn list(
    Req { s, ctx, .. }: Req,
    Query(query): Query<ListQuery>,
) -> Reply<Json<ProductListView>> {
    let path = query.downstream_query()?;
    let page: ProductPage = ctx
        .required("listing", s.catalog.get_json(&ctx, &path))
        .await?;
    Ok(Json(ProductListView {
        items: page.items.iter().map(ProductSummary::from).collect(),
        page: page.page,
        page_size: page.page_size,
        total: page.total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(
        category: Option<&str>,
        q_: Option<&str>,
        page: Option<u32>,
        page_size: Option<u32>,
    ) -> ListQuery {
        ListQuery {
            category: category.map(Into::into),
            q: q_.map(Into::into),
            page,
            page_size,
        }
    }

    /// Valid queries are forwarded encoded; out-of-range or malformed ones are 400.
    #[test]
    fn listing_query_validation() {
        assert_eq!(
            q(Some("kitchen"), Some("a&b"), None, Some(5))
                .downstream_query()
                .unwrap(),
            "/products?page=1&page_size=5&category=kitchen&q=a%26b"
        );
        assert!(q(None, None, Some(0), None).downstream_query().is_err());
        assert!(q(None, None, None, Some(51)).downstream_query().is_err());
        assert!(q(Some("a/b"), None, None, None).downstream_query().is_err());
        assert!(
            q(None, Some(&"x".repeat(101)), None, None)
                .downstream_query()
                .is_err()
        );
    }
}
