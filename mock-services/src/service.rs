//! The seven services: names, default ports, parsing.

use std::fmt;
use std::str::FromStr;

/// One of the seven mock services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Dev identity provider (JWKS, token minting, key rotation); port 7000.
    Identity,
    /// Users; port 7001.
    Users,
    /// Product catalog; port 7002.
    Catalog,
    /// Orders; port 7003.
    Orders,
    /// Reviews and ratings; port 7004.
    Reviews,
    /// Stock levels; port 7005.
    Inventory,
    /// Personalised recommendations; port 7006.
    Recommendations,
}

impl Service {
    /// All services, in port order.
    pub const ALL: [Service; 7] = [
        Service::Identity,
        Service::Users,
        Service::Catalog,
        Service::Orders,
        Service::Reviews,
        Service::Inventory,
        Service::Recommendations,
    ];

    /// Lower-case name, e.g. `"catalog"`.
    pub const fn name(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Users => "users",
            Service::Catalog => "catalog",
            Service::Orders => "orders",
            Service::Reviews => "reviews",
            Service::Inventory => "inventory",
            Service::Recommendations => "recommendations",
        }
    }

    /// Position in [`Service::ALL`] (0..=6).
    pub const fn index(self) -> u16 {
        self as u16
    }

    /// Default port: 7000 + [`Service::index`].
    pub const fn default_port(self) -> u16 {
        7000 + self.index()
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of parsing an unknown service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownService(pub String);

impl fmt::Display for UnknownService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown service {:?} (expected one of: ", self.0)?;
        let names: Vec<&str> = Service::ALL.iter().map(|s| s.name()).collect();
        write!(f, "{})", names.join(", "))
    }
}

impl std::error::Error for UnknownService {}

impl FromStr for Service {
    type Err = UnknownService;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|svc| svc.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownService(s.to_owned()))
    }
}
