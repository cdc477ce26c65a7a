//! Running services: [`spawn`] one, [`spawn_all`]/[`spawn_many`] several, and control them through
//! [`MockHandle`] and [`MockStack`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::faults::FaultRule;
use crate::grpc::{PORT_OFFSET, grpc_router};
use crate::idp::Idp;
use crate::recorder::Received;
use crate::tls::{MockTls, TlsListener};
use crate::{Service, ServiceConfig, ServiceState, router};

/// How long [`MockHandle::shutdown`] waits for in-flight requests before aborting the server task.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` (port 0 picks a free port), serves `service` in a background task and returns at once.
pub async fn spawn(
    service: Service,
    addr: SocketAddr,
    config: ServiceConfig,
) -> io::Result<MockHandle> {
    let ephemeral = addr.port() == 0;
    for rule in &config.faults {
        rule.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    }
    let state = ServiceState::new(service, &config)?;
    let tls = config
        .tls
        .as_ref()
        .map(MockTls::server_config)
        .transpose()?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let grpc = match grpc_router(&state) {
        None => None,
        Some(app) => {
            // The REST port + 100, or an ephemeral port beside an ephemeral REST port.
            let port = if ephemeral {
                0
            } else {
                addr.port().checked_add(PORT_OFFSET).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "no room for the gRPC port")
                })?
            };
            let grpc_listener = TcpListener::bind(SocketAddr::new(addr.ip(), port)).await?;
            let grpc_addr = grpc_listener.local_addr()?;
            let task = tokio::spawn(crate::h2c::serve(
                grpc_listener,
                app,
                state.shutdown_signal(),
            ));
            Some((grpc_addr, task))
        }
    };
    let app = router(&state);
    let mut shutdown = state.shutdown_signal();
    let task = match tls {
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.wait().await })
                .await
        }),
        Some(tls) => {
            let listener = TlsListener::new(listener, tls)?;
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { shutdown.wait().await })
                    .await
            })
        }
    };
    tracing::debug!(service = service.name(), %addr, tls = config.tls.is_some(), "mock service listening");
    Ok(MockHandle {
        addr,
        state,
        task,
        grpc,
    })
}

/// A running service. Dropping it leaves the server running; [`MockHandle::shutdown`] stops it.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    state: ServiceState,
    task: JoinHandle<io::Result<()>>,
    /// The gRPC listener's address and task (inventory, recommendations, orders).
    grpc: Option<(SocketAddr, JoinHandle<io::Result<()>>)>,
}

impl MockHandle {
    /// The service.
    pub fn service(&self) -> Service {
        self.state.service()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:7001` (`https://` when serving TLS; no trailing slash).
    pub fn url(&self) -> String {
        format!("{}://{}", self.state.scheme(), self.addr)
    }

    /// The gRPC address (the REST port + 100, or ephemeral), for a service with a gRPC face.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().map(|(addr, _)| *addr)
    }

    /// The gRPC base URL, e.g. `http://127.0.0.1:7105`, for a service with a gRPC face.
    pub fn grpc_url(&self) -> Option<String> {
        self.grpc_addr().map(|addr| format!("http://{addr}"))
    }

    /// The shared state (faults, recorder, IdP).
    pub fn state(&self) -> &ServiceState {
        &self.state
    }

    /// The identity provider, for [`Service::Identity`].
    pub fn idp(&self) -> Option<&Idp> {
        self.state.idp()
    }

    /// Everything recorded so far.
    pub fn received(&self) -> Received {
        self.state.recorder().snapshot()
    }

    /// Number of non-admin requests received.
    pub fn received_total(&self) -> u64 {
        self.received().total
    }

    /// Requests whose caller went away before the answer was ready (cancelled by the gateway).
    pub fn abandoned(&self) -> u64 {
        self.received().abandoned
    }

    /// Requests received on one route, e.g. `route_count("GET /users/{id}")`.
    pub fn route_count(&self, route: &str) -> u64 {
        self.received().routes.get(route).copied().unwrap_or(0)
    }

    /// Headers of the last non-admin request (lowercased names, repeated headers joined with `", "`).
    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.received().last.map(|l| l.headers).unwrap_or_default()
    }

    /// One header of the last non-admin request.
    pub fn last_header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.last_headers()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// Path and query of the last non-admin request.
    pub fn last_uri(&self) -> Option<String> {
        self.received().last.map(|l| l.uri)
    }

    /// Forgets everything recorded.
    pub fn reset_received(&self) {
        self.state.recorder().reset();
    }

    /// The current fault rules.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.state.faults().list()
    }

    /// Replaces all fault rules.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        self.state.faults().set(rules);
    }

    /// Appends one fault rule.
    pub fn add_fault(&self, rule: FaultRule) {
        self.state.faults().push(rule);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        self.state.faults().clear();
    }

    /// Stops the server: ends hanging responses, waits up to 5 s for in-flight requests, then aborts.
    pub async fn shutdown(self) {
        self.state.signal_shutdown();
        let tasks = std::iter::once(self.task).chain(self.grpc.map(|(_, task)| task));
        futures::future::join_all(tasks.map(|mut task| async move {
            if tokio::time::timeout(SHUTDOWN_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }))
        .await;
    }
}

/// Several running services.
#[derive(Debug, Default)]
pub struct MockStack {
    handles: HashMap<Service, MockHandle>,
}

impl MockStack {
    /// The handle of `service`, if it runs in this stack.
    pub fn get(&self, service: Service) -> Option<&MockHandle> {
        self.handles.get(&service)
    }

    /// The handle of `service`.
    ///
    /// # Panics
    /// If `service` is not part of this stack (a test set-up error).
    pub fn handle(&self, service: Service) -> &MockHandle {
        match self.handles.get(&service) {
            Some(h) => h,
            None => panic!("service {service} is not part of this mock stack"),
        }
    }

    /// Base URL of `service`.
    ///
    /// # Panics
    /// If `service` is not part of this stack (a test set-up error).
    pub fn url(&self, service: Service) -> String {
        self.handle(service).url()
    }

    /// The running handles, in [`Service::ALL`] order.
    pub fn handles(&self) -> impl Iterator<Item = &MockHandle> {
        Service::ALL
            .into_iter()
            .filter_map(|s| self.handles.get(&s))
    }

    /// Stops every service.
    pub async fn shutdown(self) {
        futures::future::join_all(self.handles.into_values().map(MockHandle::shutdown)).await;
    }
}

/// Spawns all seven services on `host`: on ephemeral ports when `port_base` is `None`, else service `i`
/// (in [`Service::ALL`] order) on `port_base + i`. Default configuration.
pub async fn spawn_all(host: IpAddr, port_base: Option<u16>) -> io::Result<MockStack> {
    spawn_many(Service::ALL.into_iter().map(|s| {
        let port = port_base.map_or(0, |base| base.saturating_add(s.index()));
        (s, SocketAddr::new(host, port), ServiceConfig::default())
    }))
    .await
}

/// Spawns the given services; if one fails to start, the ones already started are shut down.
pub async fn spawn_many(
    services: impl IntoIterator<Item = (Service, SocketAddr, ServiceConfig)>,
) -> io::Result<MockStack> {
    let mut stack = MockStack::default();
    for (service, addr, config) in services {
        match spawn(service, addr, config).await {
            Ok(handle) => {
                if let Some(old) = stack.handles.insert(service, handle) {
                    old.shutdown().await;
                }
            }
            Err(e) => {
                stack.shutdown().await;
                return Err(io::Error::new(
                    e.kind(),
                    format!("{service} on {addr}: {e}"),
                ));
            }
        }
    }
    Ok(stack)
}
