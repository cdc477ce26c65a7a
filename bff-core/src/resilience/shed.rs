//! Load shedding at the edge: a global and a per-route limit on requests in flight. A request beyond either
//! gets a fast 503 `overloaded` with `Retry-After` instead of waiting in a queue: nothing is queued, so memory
//! stays bounded by the limits, and the requests that are admitted keep their latency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::BffError;
use crate::resilience::LoadShedConfig;

/// The admission of one request; the slots are freed when it is dropped.
#[derive(Debug)]
pub struct Admitted {
    _global: Option<OwnedSemaphorePermit>,
    _route: Option<OwnedSemaphorePermit>,
}

/// The global and per-route concurrency limits of a gateway.
#[derive(Debug)]
pub struct LoadShedder {
    global: Option<Arc<Semaphore>>,
    /// Limit of routes not named in `overrides` (`0` = none).
    route_default: usize,
    overrides: HashMap<String, usize>,
    /// One semaphore per route template seen; route templates are finite (the router's), so this is bounded.
    routes: Mutex<HashMap<String, Arc<Semaphore>>>,
    retry_after_s: u64,
}

impl LoadShedder {
    /// Limits as configured.
    pub fn new(config: &LoadShedConfig) -> Self {
        Self {
            global: (config.max_in_flight > 0)
                .then(|| Arc::new(Semaphore::new(config.max_in_flight))),
            route_default: config.route_max_in_flight,
            overrides: config.routes.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            routes: Mutex::new(HashMap::new()),
            retry_after_s: config.retry_after_s,
        }
    }

    fn route_semaphore(&self, route: &str) -> Option<Arc<Semaphore>> {
        let limit = self
            .overrides
            .get(route)
            .copied()
            .unwrap_or(self.route_default);
        if limit == 0 {
            return None;
        }
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            routes
                .entry(route.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(limit)))
                .clone(),
        )
    }

    /// Admits a request to `route` (its template, `None` for unrouted paths), or refuses it at once with
    /// 503 `overloaded`.
    pub fn admit(&self, route: Option<&str>) -> Result<Admitted, BffError> {
        let overloaded = || BffError::Overloaded {
            part: None,
            retry_after_s: self.retry_after_s,
        };
        let global = match &self.global {
            Some(s) => Some(s.clone().try_acquire_owned().map_err(|_| overloaded())?),
            None => None,
        };
        let route = match route.and_then(|r| self.route_semaphore(r)) {
            Some(s) => Some(s.try_acquire_owned().map_err(|_| overloaded())?),
            None => None,
        };
        Ok(Admitted {
            _global: global,
            _route: route,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Beyond the global or the route limit a request is refused at once; freed slots admit again.
    #[test]
    fn limits_refuse_and_recover() {
        let mut config = LoadShedConfig {
            max_in_flight: 3,
            route_max_in_flight: 0,
            ..LoadShedConfig::default()
        };
        config.routes.insert("/a".into(), 1);
        let shed = LoadShedder::new(&config);
        let a = shed.admit(Some("/a")).expect("first /a");
        assert!(matches!(
            shed.admit(Some("/a")),
            Err(BffError::Overloaded { .. })
        ));
        let b1 = shed.admit(Some("/b")).expect("/b has no route limit");
        let _b2 = shed.admit(None).expect("third");
        assert!(shed.admit(Some("/b")).is_err(), "global limit");
        drop(a);
        drop(b1);
        assert!(shed.admit(Some("/a")).is_ok());
    }
}
