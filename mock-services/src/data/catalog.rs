//! Products: ids `1..=5000`, ten categories.

use shared_schemas::downstream::{Image, Money, Product, ProductInternal};

use super::rng::{Rng, domain};
use super::time::{BASE_EPOCH, rfc3339};
use super::words::{
    ADJECTIVES, BRANDS, CATEGORIES, COLOURS, MATERIALS, NOUNS, SENTENCES, SIZES, TAGS,
};
use super::{PRODUCT_COUNT, parse_id};

/// The ten category slugs.
pub const CATEGORY_SLUGS: &[&str] = CATEGORIES;

/// Image renditions: `(size, width, height)`.
const RENDITIONS: &[(&str, u32, u32)] = &[
    ("thumbnail", 100, 100),
    ("small", 240, 240),
    ("medium", 480, 480),
    ("large", 1024, 1024),
    ("original", 2048, 2048),
];

/// The product with the given id string, if it exists.
pub fn product_by_id(id: &str) -> Option<Product> {
    parse_id(id, PRODUCT_COUNT).map(product)
}

/// Whether a product with this id exists.
pub fn product_exists(id: u32) -> bool {
    (1..=PRODUCT_COUNT).contains(&id)
}

/// Category slug of product `id`: `CATEGORY_SLUGS[(id - 1) % 10]`.
pub fn category(id: u32) -> &'static str {
    CATEGORIES[(id.saturating_sub(1) % CATEGORIES.len() as u32) as usize]
}

/// Display name of product `id` (cheap: no full product is built).
pub fn name(id: u32) -> String {
    let mut rng = Rng::for_entity(domain::PRODUCT_NAME, u64::from(id));
    let cat = (id.saturating_sub(1) % CATEGORIES.len() as u32) as usize;
    format!(
        "{} {} {}",
        rng.pick(ADJECTIVES),
        rng.pick(MATERIALS),
        rng.pick(NOUNS[cat])
    )
}

/// Price of product `id` in EUR cents (cheap: no full product is built).
pub fn price_cents(id: u32) -> i64 {
    let mut rng = Rng::for_entity(domain::PRODUCT ^ 0x9, u64::from(id));
    (rng.range(99, 49_999) as i64 / 100) * 100 + 99
}

/// Product `id` (`id` must be in `1..=5000` for a meaningful result).
pub fn product(id: u32) -> Product {
    let mut rng = Rng::for_entity(domain::PRODUCT, u64::from(id));
    let name = name(id);
    let category = category(id);
    let price = price_cents(id);
    let paragraphs = rng.range(3, 4);
    let description = (0..paragraphs)
        .map(|p| {
            let mut para = if p == 0 {
                format!("Meet the {name}, a {category} favourite. ")
            } else {
                String::new()
            };
            for s in 0..3 {
                if s > 0 {
                    para.push(' ');
                }
                para.push_str(rng.pick(SENTENCES));
            }
            para
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    let images = RENDITIONS
        .iter()
        .map(|(size, w, h)| Image {
            size: (*size).to_owned(),
            url: format!("https://img.example.com/p/{id}/{size}.jpg"),
            width: *w,
            height: *h,
        })
        .collect();
    let attributes = vec![
        ("colour".to_owned(), rng.pick(COLOURS).to_owned()),
        ("material".to_owned(), rng.pick(MATERIALS).to_lowercase()),
        ("size".to_owned(), rng.pick(SIZES).to_owned()),
        ("weight_g".to_owned(), rng.range(50, 5000).to_string()),
    ];
    let related_count = rng.range(4, 6) as usize;
    let mut related: Vec<u32> = Vec::with_capacity(related_count);
    while related.len() < related_count {
        let r = rng.range(1, u64::from(PRODUCT_COUNT)) as u32;
        if r != id && !related.contains(&r) {
            related.push(r);
        }
    }
    let tag_count = rng.range(2, 4) as usize;
    let mut tags: Vec<String> = Vec::with_capacity(tag_count);
    while tags.len() < tag_count {
        let t = rng.pick(TAGS);
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_owned());
        }
    }
    let cost_pct = rng.range(35, 75) as i64;
    let cost = price * cost_pct / 100;
    let created = BASE_EPOCH - 86_400 * 700 + rng.below(86_400 * 600) as i64;
    let updated = created + rng.below(86_400 * 100) as i64;
    Product {
        id: id.to_string(),
        sku: format!("SKU-{}-{id:05}", category[..3].to_uppercase()),
        name,
        description,
        category: category.to_owned(),
        brand: rng.pick(BRANDS).to_owned(),
        price: Money {
            amount_cents: price,
            currency: "EUR".to_owned(),
        },
        images,
        attributes,
        related_ids: related.iter().map(u32::to_string).collect(),
        tags,
        created_at: rfc3339(created),
        updated_at: rfc3339(updated),
        internal: ProductInternal {
            supplier_id: format!("SUP-{:04}", rng.range(1, 300)),
            cost_cents: cost,
            margin_pct: ((price - cost) as f64 * 1000.0 / price as f64).round() / 10.0,
            warehouse_notes: format!(
                "Shelf {}{}; reorder at {} units.",
                (b'A' + rng.below(26) as u8) as char,
                rng.range(1, 40),
                rng.range(5, 50)
            ),
        },
    }
}

/// Ids of the products matching an optional category and an optional case-insensitive name substring,
/// in id order.
pub fn search(category_filter: Option<&str>, query: Option<&str>) -> Vec<u32> {
    let q = query.map(str::to_lowercase).filter(|q| !q.is_empty());
    (1..=PRODUCT_COUNT)
        .filter(|&id| category_filter.is_none_or(|c| c.is_empty() || category(id) == c))
        .filter(|&id| {
            q.as_deref()
                .is_none_or(|q| name(id).to_lowercase().contains(q))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_shape() {
        for id in [1, 2, 17, 4999, 5000] {
            let p = product(id);
            assert_eq!(p.id, id.to_string());
            assert!(p.description.len() > 700, "{}", p.description.len());
            assert_eq!(p.images.len(), 5);
            assert!((4..=6).contains(&p.related_ids.len()));
            assert!(p.related_ids.iter().all(|r| product_by_id(r).is_some()));
            assert_eq!(p.price.amount_cents, price_cents(id));
        }
        assert_eq!(product(5), product(5));
    }
}
