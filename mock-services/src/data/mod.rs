//! The deterministic data set: every entity is computed on demand from its id, so start-up is instant,
//! memory stays small and every process serves byte-identical JSON. See the crate docs for the formulas.

pub mod catalog;
pub mod inventory;
pub mod orders;
pub mod recommendations;
pub mod reviews;
pub(crate) mod rng;
pub(crate) mod time;
pub mod users;
mod words;

/// Number of users: ids `"1"..="1000"`.
pub const USER_COUNT: u32 = 1000;
/// Number of products: ids `"1"..="5000"`.
pub const PRODUCT_COUNT: u32 = 5000;

/// Parses a canonical decimal id in `1..=max` (no sign, no leading zeros, no whitespace).
pub fn parse_id(id: &str, max: u32) -> Option<u32> {
    if id.is_empty()
        || id.len() > 10
        || id.starts_with('0')
        || !id.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let n: u64 = id.parse().ok()?;
    (1..=u64::from(max)).contains(&n).then_some(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_canonical_ids() {
        assert_eq!(parse_id("1", 10), Some(1));
        assert_eq!(parse_id("10", 10), Some(10));
        for bad in ["", "0", "11", "01", "+1", "-1", " 1", "1a", "99999999999"] {
            assert_eq!(parse_id(bad, 10), None, "{bad:?}");
        }
    }
}
