//! Recommendations: up to 50 distinct, existing products per user, best (highest score) first.

use shared_schemas::downstream::{Recommendation, Recommendations};

use super::PRODUCT_COUNT;
use super::rng::{Rng, domain};
use super::time::{BASE_EPOCH, rfc3339};
use super::users::user_exists;
use super::words::REASONS;

/// Maximum number of recommendations per user.
pub const MAX_RECOMMENDATIONS: u32 = 50;

/// The best `limit` (at most 50) recommendations of `user`. `None` for unknown users.
pub fn recommendations(user: u32, limit: u32) -> Option<Recommendations> {
    if !user_exists(user) {
        return None;
    }
    let mut rng = Rng::for_entity(domain::RECOMMENDATION, u64::from(user));
    let limit = limit.min(MAX_RECOMMENDATIONS) as usize;
    let mut ids: Vec<u32> = Vec::with_capacity(limit);
    let mut items = Vec::with_capacity(limit);
    let mut score = 0.99 - rng.unit() * 0.05;
    while items.len() < limit {
        let product = rng.range(1, u64::from(PRODUCT_COUNT)) as u32;
        if ids.contains(&product) {
            continue;
        }
        ids.push(product);
        items.push(Recommendation {
            product_id: product.to_string(),
            score: (score * 1000.0_f64).round() / 1000.0,
            reason: rng.pick(REASONS).to_owned(),
        });
        score -= 0.005 + rng.unit() * 0.01;
    }
    Some(Recommendations {
        user_id: user.to_string(),
        items,
        model_version: "recs-2024.06.1".to_owned(),
        generated_at: rfc3339(BASE_EPOCH + 86_400 * 200 + (u64::from(user) * 37) as i64),
    })
}
