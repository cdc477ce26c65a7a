//! Reviews: product `p` has `review_count(p)` (0..=20) reviews with ids `"{p}-{j}"` (`j` 1-based,
//! oldest first); the rating summary is computed from exactly these reviews.

use shared_schemas::downstream::{Moderation, RatingSummary, Review};

use super::PRODUCT_COUNT;
use super::catalog::product_exists;
use super::rng::{Rng, domain};
use super::time::{BASE_EPOCH, rfc3339};
use super::users::names;
use super::words::{REVIEW_BODIES, REVIEW_TITLES};

/// Number of reviews of product `product` (0..=20; 0 for unknown products).
pub fn review_count(product: u32) -> u32 {
    if !product_exists(product) {
        return 0;
    }
    Rng::for_entity(domain::REVIEW_COUNT, u64::from(product)).below(21) as u32
}

fn review_rng(product: u32, j: u32) -> Rng {
    Rng::for_entity(domain::REVIEW, u64::from(product) * 1000 + u64::from(j))
}

/// The star rating of review `j` of `product` (cheap).
fn rating(product: u32, j: u32) -> u8 {
    // Skewed towards good ratings: 1,2,3,4,5 with weights 1,1,2,4,5.
    const TABLE: [u8; 13] = [1, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5];
    TABLE[review_rng(product, j).below(TABLE.len() as u64) as usize]
}

/// Review `j` (1-based, oldest first) of `product`.
pub fn review(product: u32, j: u32) -> Review {
    let stars = rating(product, j);
    let mut rng = review_rng(product, j);
    rng.next_u64(); // consumed by `rating`
    let user = rng.range(1, 1000) as u32;
    let (first, last) = names(user);
    let created = BASE_EPOCH + i64::from(j) * 86_400 * 9 + rng.below(86_400 * 5) as i64;
    let titles = REVIEW_TITLES[usize::from(stars - 1)];
    let body = (0..rng.range(1, 3))
        .map(|_| rng.pick(REVIEW_BODIES))
        .collect::<Vec<_>>()
        .join(" ");
    let moderation = if rng.chance(0.9) {
        "approved"
    } else {
        "pending"
    };
    Review {
        id: format!("{product}-{j}"),
        product_id: product.to_string(),
        user_id: user.to_string(),
        author_name: format!("{first} {}.", last.chars().next().unwrap_or('X')),
        rating: stars,
        title: rng.pick(titles).to_owned(),
        body,
        created_at: rfc3339(created),
        helpful_votes: rng.below(60) as u32,
        moderation: Moderation {
            status: moderation.to_owned(),
            moderator_id: format!("mod-{}", rng.range(1, 12)),
        },
    }
}

/// The newest `limit` reviews of `product`, newest first. `None` for unknown products.
pub fn newest_reviews(product: u32, limit: u32) -> Option<Vec<Review>> {
    if !(1..=PRODUCT_COUNT).contains(&product) {
        return None;
    }
    let count = review_count(product);
    Some(
        (1..=count)
            .rev()
            .take(limit as usize)
            .map(|j| review(product, j))
            .collect(),
    )
}

/// Rating summary over all reviews of `product`. `None` for unknown products.
pub fn rating_summary(product: u32) -> Option<RatingSummary> {
    if !product_exists(product) {
        return None;
    }
    let count = review_count(product);
    let mut histogram = vec![0u32; 5];
    let mut sum = 0u32;
    for j in 1..=count {
        let r = rating(product, j);
        histogram[usize::from(r - 1)] += 1;
        sum += u32::from(r);
    }
    let average = if count == 0 {
        0.0
    } else {
        (f64::from(sum) / f64::from(count) * 100.0).round() / 100.0
    };
    Some(RatingSummary {
        product_id: product.to_string(),
        average,
        count,
        histogram,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_reviews() {
        for p in [1, 2, 3, 42, 5000] {
            let all = newest_reviews(p, 100).expect("product");
            let s = rating_summary(p).expect("summary");
            assert_eq!(all.len() as u32, s.count);
            let sum: u32 = all.iter().map(|r| u32::from(r.rating)).sum();
            assert_eq!(s.histogram.iter().sum::<u32>(), s.count);
            if s.count > 0 {
                let avg = f64::from(sum) / f64::from(s.count);
                assert!((avg - s.average).abs() < 0.006);
            }
        }
        assert!(newest_reviews(5001, 10).is_none());
    }
}
