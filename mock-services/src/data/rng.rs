//! A tiny deterministic PRNG (splitmix64) and the seeding helpers the generators use.

/// Mixes a 64-bit value (the splitmix64 finaliser).
pub(crate) const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A splitmix64 generator: tiny, fast and fully deterministic.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for entity `id` of the domain `domain` (e.g. `b"product"` hashed into a constant).
    pub(crate) fn for_entity(domain: u64, id: u64) -> Self {
        Rng(mix(domain ^ mix(id.wrapping_add(0x9E37_79B9_7F4A_7C15))))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n` (`0` when `n == 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A number in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// A float in `0.0..1.0`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Domain constants that keep the streams of the different entity kinds independent.
pub(crate) mod domain {
    pub(crate) const USER: u64 = 0x5553_4552;
    pub(crate) const PRODUCT: u64 = 0x5052_4f44;
    pub(crate) const PRODUCT_NAME: u64 = 0x504e_414d;
    pub(crate) const ORDER_COUNT: u64 = 0x4f43_4e54;
    pub(crate) const ORDER: u64 = 0x4f52_4452;
    pub(crate) const REVIEW_COUNT: u64 = 0x5243_4e54;
    pub(crate) const REVIEW: u64 = 0x5256_4557;
    pub(crate) const INVENTORY: u64 = 0x494e_5654;
    pub(crate) const RECOMMENDATION: u64 = 0x5245_4353;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = Rng::for_entity(domain::USER, 7);
        let mut b = Rng::for_entity(domain::USER, 7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
            let r = a.range(3, 12);
            assert!((3..=12).contains(&r));
            b.range(3, 12);
            let u = a.unit();
            assert!((0.0..1.0).contains(&u));
            b.unit();
        }
    }
}
