//! TLS termination at the edge: the server configuration (TLS 1.3 and 1.2, ALPN `h2` and `http/1.1`, the
//! reloadable certificate, optional client-certificate verification), and the per-connection handshake with
//! its timeout; the server then serves the TLS stream like a plain one, with the verified client certificate
//! attached to every request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::config::{ClientAuth, ServerTlsConfig};
use super::peer::ClientCertificate;
use super::reload::{CertSource, ServerCert};
use crate::config::error::ConfigError;

/// A TLS listener's configuration, ready to accept connections. Cheap to clone.
#[derive(Clone)]
pub struct EdgeTls {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    source: Arc<CertSource>,
}

impl std::fmt::Debug for EdgeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeTls")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl EdgeTls {
    /// Reads the certificate, key and client CA files of `[server.tls]`; an unreadable or mismatched file is
    /// an error naming its key. Inside a Tokio runtime, starts watching the certificate and key for changes
    /// (see `reload_interval_ms`) and SIGHUP.
    pub fn new(config: &ServerTlsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let source = CertSource::load(
            "server.tls",
            config.cert_file.clone(),
            config.key_file.clone(),
        )?;
        let builder = rustls::ServerConfig::builder_with_provider(super::provider())
            .with_protocol_versions(super::VERSIONS)
            .expect("the ring provider supports TLS 1.2 and 1.3");
        let builder = match &config.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let key = "server.tls.client_ca_file";
                let mut roots = RootCertStore::empty();
                for cert in super::pem::certs(key, path)? {
                    roots.add(cert).map_err(|e| ConfigError::Invalid {
                        key: key.into(),
                        reason: format!("{}: not a usable CA certificate ({e})", path.display()),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::provider());
                let verifier = match config.client_auth {
                    ClientAuth::Required => verifier,
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                };
                let verifier = verifier.build().map_err(|e| ConfigError::Invalid {
                    key: key.into(),
                    reason: format!("{}: {e}", path.display()),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server = builder.with_cert_resolver(Arc::new(ServerCert(source.clone())));
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        source.watch(Duration::from_millis(config.reload_interval_ms));
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
            source,
        })
    }

    /// Reads the certificate and key files again now; returns whether a new certificate is in use (a pair
    /// that fails to load is refused with a log line and the current one stays).
    pub fn reload(&self) -> bool {
        self.source.reload()
    }

    /// Handshakes `stream` within the handshake timeout; the TLS stream and the verified client
    /// certificate's names (if one was presented), or `None` after a log line naming the cause (the
    /// connection is then closed).
    pub(crate) async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(TlsStream<TcpStream>, Option<Arc<ClientCertificate>>)> {
        let timeout = self.handshake_timeout;
        let stream = match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "TLS handshake refused");
                return None;
            }
            Err(_) => {
                tracing::info!(%peer, timeout_ms = timeout.as_millis() as u64, "TLS handshake timed out; connection closed");
                return None;
            }
        };
        let client_cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(ClientCertificate::from_der)
            .map(Arc::new);
        Some((stream, client_cert))
    }
}
