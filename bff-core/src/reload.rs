//! Hot reload: on SIGHUP and when the config file changes, the configuration is loaded and validated like
//! `check` does (defaults < file < environment, then the whole gateway is built), and only a gateway that
//! builds is swapped in, atomically: every request runs on the router that was current when it arrived, so
//! requests in flight finish on the old one. A configuration that fails is refused with a log line and
//! `bff_config_reloads_total{result="failure"}`, and the old one keeps serving.
//!
//! Reloadable: everything a gateway builds from its configuration — routes, aggregates, downstream URLs and
//! instances, resilience policies, rate-limit policies, API keys, CORS, cache settings. The rebuilt gateway
//! starts with fresh connection pools, caches, breakers and in-memory rate-limit buckets; the metrics
//! continue. Not reloadable (a change is logged as a warning and needs a restart): `server.listen`,
//! `server.limits`, `server.worker_threads`, `server.tls` (its certificate and key files are reloaded by
//! [`crate::tls`] itself), `admin`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;

use crate::admin::Admin;
use crate::config::{BffConfig, ConfigError};
use crate::metrics::{Counter, Metrics};
pub use crate::swap::{Routes, Swappable};

/// How a gateway is (re)built: its defaults, its config file, its `app`.
#[derive(Debug, Clone, Copy)]
pub struct Build {
    /// Built-in defaults (lowest configuration layer).
    pub defaults: fn() -> BffConfig,
    /// Builds the complete router from a loaded configuration.
    pub app: fn(BffConfig) -> Result<Router, ConfigError>,
}

/// A running gateway that can be rebuilt from its configuration.
#[derive(Debug)]
pub struct Reloader {
    build: Build,
    path: Option<PathBuf>,
    public: Swappable,
    admin: Swappable,
    current: Mutex<(BffConfig, Admin)>,
    ok: Counter,
    failed: Counter,
}

impl Reloader {
    /// Builds the gateway from `config` (loaded from `path`, if any).
    pub fn start(
        build: Build,
        path: Option<&Path>,
        config: BffConfig,
    ) -> Result<Self, ConfigError> {
        let (router, admin) = crate::admin::capture(|| (build.app)(config.clone()));
        let router = router?;
        let admin =
            admin.ok_or_else(|| ConfigError::Load("the gateway offered no admin side".into()))?;
        let metrics: &Metrics = admin.metrics();
        let reloads = |result| {
            metrics.counter(
                "bff_config_reloads_total",
                "Configuration reloads, by result.",
                &[("result", result)],
            )
        };
        Ok(Self {
            build,
            path: path.map(Path::to_owned),
            public: Swappable::new(router),
            admin: Swappable::new(admin.router()),
            ok: reloads("success"),
            failed: reloads("failure"),
            current: Mutex::new((config, admin)),
        })
    }

    /// The public router (follows reloads), to hand to [`crate::server::serve`].
    pub fn public_router(&self) -> Swappable {
        self.public.clone()
    }

    /// The admin router (follows reloads), to hand to [`crate::server::serve`].
    pub fn admin_router(&self) -> Swappable {
        self.admin.clone()
    }

    /// The admin side of the gateway serving now.
    pub fn admin(&self) -> Admin {
        self.lock().1.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (BffConfig, Admin)> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads, validates and builds the configuration again and swaps it in; on any error nothing changes
    /// and the error is logged, counted and returned.
    pub fn reload(&self) -> Result<(), String> {
        let mut current = self.lock();
        let result = self.rebuild(&current.0, &current.1);
        match result {
            Ok((config, router, admin)) => {
                self.public.swap(router);
                self.admin.swap(admin.router());
                *current = (config, admin);
                self.ok.inc();
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.failed.inc();
                tracing::error!(error = %e, "configuration reload refused; the previous configuration keeps serving");
                Err(e)
            }
        }
    }

    fn rebuild(
        &self,
        old: &BffConfig,
        admin: &Admin,
    ) -> Result<(BffConfig, Router, Admin), String> {
        let config = BffConfig::load(&(self.build.defaults)(), self.path.as_deref())
            .map_err(|e| e.to_string())?;
        for (key, changed) in [
            ("server.listen", config.server.listen != old.server.listen),
            ("server.limits", config.server.limits != old.server.limits),
            (
                "server.worker_threads",
                config.server.worker_threads != old.server.worker_threads,
            ),
            ("admin", config.admin != old.admin),
            // The listener's TLS is set up once; its certificate and key files reload on their own.
            ("server.tls", config.server.tls != old.server.tls),
        ] {
            if changed {
                tracing::warn!(key, "not reloadable: the change applies after a restart");
            }
        }
        let draining: Arc<AtomicBool> = admin.readiness().draining_flag();
        let (router, new_admin) = crate::admin::capture_into(
            Some(admin.metrics().clone()),
            Some(draining),
            admin.session_store(),
            || (self.build.app)(config.clone()),
        );
        let router = router.map_err(|e| e.to_string())?;
        let new_admin = new_admin.ok_or("the gateway offered no admin side")?;
        Ok((config, router, new_admin))
    }

    /// Reloads on SIGHUP and whenever the config file's modification time or size changes (checked every
    /// `poll`), until the runtime stops.
    pub fn watch(self: &Arc<Self>, poll: Duration) {
        #[cfg(unix)]
        {
            let this = self.clone();
            tokio::spawn(async move {
                let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    tracing::warn!("cannot listen for SIGHUP; reload on file change only");
                    return;
                };
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = this.reload();
                }
            });
        }
        let Some(path) = self.path.clone() else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let stamp = |p: &Path| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
            };
            let mut last = stamp(&path);
            let mut ticker = tokio::time::interval(poll);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let now = stamp(&path);
                if now != last {
                    last = now;
                    tracing::info!(path = %path.display(), "config file changed: reloading");
                    let _ = this.reload();
                }
            }
        });
    }
}
