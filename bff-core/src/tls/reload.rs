//! A certificate + key pair read from PEM files and swapped in place when the files change (polled) or on
//! SIGHUP: new handshakes use the new pair, open connections keep theirs. A changed pair that fails to load
//! (unreadable, not PEM, key not matching) is refused with a log line and the previous pair keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use rustls::sign::CertifiedKey;

use crate::config::error::ConfigError;

/// A reloadable certificate chain with its private key.
pub(crate) struct CertSource {
    /// Dotted config path of the section (`server.tls`, `downstreams.users.tls`), for keys and logs.
    section: String,
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The file contents last tried (loaded or refused), so an unchanged file is not parsed or logged again.
    seen: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for CertSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertSource")
            .field("section", &self.section)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("{}: {e}", path.display()),
    })
}

impl CertSource {
    /// Loads `cert_path` + `key_path`, configured as `<section>.cert_file` / `<section>.key_file`.
    pub(crate) fn load(
        section: &str,
        cert_path: PathBuf,
        key_path: PathBuf,
    ) -> Result<Arc<Self>, ConfigError> {
        let (cert, key) = (
            read(&format!("{section}.cert_file"), &cert_path)?,
            read(&format!("{section}.key_file"), &key_path)?,
        );
        let loaded = parse(section, &cert_path, &key_path, &cert, &key)?;
        Ok(Arc::new(Self {
            section: section.to_owned(),
            current: RwLock::new(loaded),
            cert_path,
            key_path,
            seen: Mutex::new((cert, key)),
        }))
    }

    /// The pair in use.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the files again and, if they changed and load, swaps the pair in. Returns whether a new pair
    /// is in use.
    pub(crate) fn reload(&self) -> bool {
        let files =
            read(&format!("{}.cert_file", self.section), &self.cert_path).and_then(|cert| {
                Ok((
                    cert,
                    read(&format!("{}.key_file", self.section), &self.key_path)?,
                ))
            });
        let (cert, key) = match files {
            Ok(files) => files,
            Err(e) => {
                tracing::error!(section = %self.section, error = %e, "certificate reload refused; the previous certificate stays in use");
                return false;
            }
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.0 == cert && seen.1 == key {
            return false;
        }
        let result = parse(&self.section, &self.cert_path, &self.key_path, &cert, &key);
        *seen = (cert, key);
        drop(seen);
        match result {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
                tracing::info!(section = %self.section, cert_file = %self.cert_path.display(), "certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(section = %self.section, error = %e, "certificate reload refused; the previous certificate stays in use");
                false
            }
        }
    }

    /// Watches the files in the background: every `interval` (`0` = never) and on each SIGHUP. Needs a Tokio
    /// runtime (without one, e.g. for `check`, nothing is watched); the task ends when the source is dropped.
    pub(crate) fn watch(self: &Arc<Self>, interval: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        runtime.spawn(async move {
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = (!interval.is_zero()).then(|| {
                let mut t = tokio::time::interval(interval);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                let ticked = async {
                    match tick.as_mut() {
                        Some(t) => {
                            t.tick().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(unix)]
                let hup = async {
                    match hangup.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let hup = std::future::pending::<()>();
                let signalled = tokio::select! {
                    () = ticked => false,
                    () = hup => true,
                };
                let Some(source) = weak.upgrade() else {
                    return;
                };
                if signalled {
                    tracing::info!(section = %source.section, "SIGHUP: checking certificate files");
                }
                source.reload();
            }
        });
    }
}

fn parse(
    section: &str,
    cert_path: &Path,
    key_path: &Path,
    cert: &[u8],
    key: &[u8],
) -> Result<Arc<CertifiedKey>, ConfigError> {
    super::pem::certified_key_from(
        (&format!("{section}.cert_file"), cert_path, cert),
        (&format!("{section}.key_file"), key_path, key),
    )
}

/// Serves the current pair of a [`CertSource`] to every TLS handshake (server side).
#[derive(Debug)]
pub(crate) struct ServerCert(pub(crate) Arc<CertSource>);

impl rustls::server::ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

/// Presents the current pair of a [`CertSource`] as the client certificate (downstream mTLS).
#[derive(Debug)]
pub(crate) struct ClientCert(pub(crate) Arc<CertSource>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
