//! Users: ids `1..=1000`.

use shared_schemas::downstream::{Address, User, UserInternal};

use super::rng::{Rng, domain};
use super::time::{BASE_EPOCH, rfc3339};
use super::words::{CITIES, FIRST_NAMES, LAST_NAMES, SEGMENTS, STREETS};
use super::{USER_COUNT, parse_id};

/// The user with the given id string, if it exists.
pub fn user_by_id(id: &str) -> Option<User> {
    parse_id(id, USER_COUNT).map(user)
}

/// Whether a user with this id exists.
pub fn user_exists(id: u32) -> bool {
    (1..=USER_COUNT).contains(&id)
}

/// The postal address of user `id` (also the shipping address of their orders).
pub fn address(id: u32) -> Address {
    let mut rng = Rng::for_entity(domain::USER ^ 0xADD, u64::from(id));
    let (city, country, _) = CITIES[rng.below(CITIES.len() as u64) as usize];
    Address {
        line1: format!("{} {}", rng.pick(STREETS), rng.range(1, 220)),
        city: city.to_owned(),
        postal_code: format!("{:05}", rng.range(1000, 99_999)),
        country: country.to_owned(),
    }
}

/// `(first_name, last_name)` of user `id`.
pub fn names(id: u32) -> (&'static str, &'static str) {
    let mut rng = Rng::for_entity(domain::USER, u64::from(id));
    (rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES))
}

/// User `id` (`id` must be in `1..=1000` for a meaningful result).
pub fn user(id: u32) -> User {
    let (first, last) = names(id);
    let mut rng = Rng::for_entity(domain::USER ^ 0x1, u64::from(id));
    let address = address(id);
    let locale = CITIES
        .iter()
        .find(|(city, _, _)| *city == address.city)
        .map_or("en-GB", |(_, _, locale)| locale);
    let created = BASE_EPOCH - 86_400 * 900 + (rng.below(86_400 * 800) as i64);
    let updated = created + rng.below(86_400 * 90) as i64;
    User {
        id: id.to_string(),
        first_name: first.to_owned(),
        last_name: last.to_owned(),
        email: format!(
            "{}.{}{id}@example.com",
            ascii_lower(first),
            ascii_lower(last)
        ),
        phone: format!("+49 30 {:07}", rng.below(10_000_000)),
        address,
        locale: locale.to_owned(),
        marketing_opt_in: rng.chance(0.4),
        created_at: rfc3339(created),
        updated_at: rfc3339(updated),
        internal: UserInternal {
            risk_score: (rng.unit() * 1000.0).round() / 1000.0,
            crm_id: format!("CRM-{:08X}", rng.next_u64() as u32),
            segment: rng.pick(SEGMENTS).to_owned(),
        },
    }
}

fn ascii_lower(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ü' => 'u',
            'ö' => 'o',
            'ä' => 'a',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}
