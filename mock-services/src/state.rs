//! Per-service configuration and shared state: fault rules, recorder, IdP keys and the shutdown signal.

use std::sync::Arc;

use tokio::sync::watch;

use crate::Service;
use crate::faults::{FaultRule, Faults};
use crate::idp::{Idp, IdpConfig};
use crate::recorder::Recorder;
use crate::writes::Writes;

/// Start-up configuration of one service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceConfig {
    /// Fault rules active from the start.
    pub faults: Vec<FaultRule>,
    /// Identity provider settings (used by [`Service::Identity`] only).
    pub idp: IdpConfig,
}

/// The state shared by a running service's routes, middleware and [`crate::MockHandle`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct ServiceState {
    service: Service,
    faults: Faults,
    recorder: Recorder,
    idp: Option<Idp>,
    writes: Writes,
    shutdown: Arc<watch::Sender<bool>>,
}

impl ServiceState {
    /// Fresh state for `service` (loads the signing keys for [`Service::Identity`]).
    pub fn new(service: Service, config: &ServiceConfig) -> std::io::Result<Self> {
        let idp = match service {
            Service::Identity => Some(Idp::new(config.idp.clone()).map_err(std::io::Error::other)?),
            _ => None,
        };
        Ok(ServiceState {
            service,
            faults: Faults::new(config.faults.clone()),
            recorder: Recorder::default(),
            idp,
            writes: Writes::default(),
            shutdown: Arc::new(watch::channel(false).0),
        })
    }

    /// The service.
    pub fn service(&self) -> Service {
        self.service
    }

    /// The fault rules.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The request recorder.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The identity provider, for [`Service::Identity`].
    pub fn idp(&self) -> Option<&Idp> {
        self.idp.as_ref()
    }

    /// What was written at run time (carts, created orders and reviews, remembered answers).
    pub fn writes(&self) -> &Writes {
        &self.writes
    }

    /// Signals shutdown: ends hanging and dripping responses and graceful serving.
    pub fn signal_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub(crate) fn shutdown_signal(&self) -> Shutdown {
        Shutdown(self.shutdown.subscribe())
    }
}

/// A future-producing view of the shutdown signal.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Completes once shutdown is signalled (never, if the state is gone without a signal).
    pub(crate) async fn wait(&mut self) {
        if self.0.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
