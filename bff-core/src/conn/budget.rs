//! The connection budget: a global and a per-client-IP cap on open connections, the global cap kept below the
//! process's file-descriptor limit by a headroom (so downstream calls, probes and established clients keep
//! working under a connection flood), the fixed answer given past a cap, and the accept loop's backoff.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ConnectionLimits;

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The global cap (or the file-descriptor limit minus the headroom) is reached.
    Global,
    /// The client IP address holds its maximum of connections.
    PerIp,
}

impl Refusal {
    /// The complete HTTP/1.1 answer written to a refused connection before it is closed: a problem document
    /// with a stable code and `Retry-After`, no request id (no request was read).
    pub fn answer(self) -> Vec<u8> {
        let (status, title, code, detail) = match self {
            Self::Global => (
                "503 Service Unavailable",
                "Overloaded",
                "overloaded",
                "too many connections",
            ),
            Self::PerIp => (
                "429 Too Many Requests",
                "Too many connections",
                "too_many_connections",
                "too many connections from this address",
            ),
        };
        let body = serde_json::json!({
            "type": format!("urn:bff:problem:{code}"),
            "title": title,
            "status": status[..3].parse::<u16>().unwrap_or(503),
            "code": code,
            "detail": detail,
        })
        .to_string();
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
             cache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts open client connections against the caps; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ConnectionBudget {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_ip: usize,
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct Permit {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

impl ConnectionBudget {
    /// A budget for `limits`, the global cap lowered to the open-file limit minus `fd_headroom` when that
    /// limit is known (Linux: `/proc/self/limits`).
    pub fn new(limits: &ConnectionLimits) -> Self {
        let fd_cap = open_file_limit().map(|n| n.saturating_sub(limits.fd_headroom).max(1));
        let max_total = fd_cap.map_or(limits.max_connections, |cap| {
            cap.min(limits.max_connections)
        });
        if max_total < limits.max_connections {
            tracing::info!(
                max_connections = max_total,
                fd_headroom = limits.fd_headroom,
                "client connections capped by the open-file limit"
            );
        }
        Self {
            counts: Arc::default(),
            max_total,
            max_per_ip: limits.max_connections_per_ip,
        }
    }

    /// The effective global cap.
    pub fn max_total(&self) -> usize {
        self.max_total
    }

    /// Client connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().map_or(0, |c| c.total)
    }

    /// Admits a connection from `ip`, or says why not.
    pub fn admit(&self, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.max_total {
            return Err(Refusal::Global);
        }
        let from_ip = counts.per_ip.entry(ip).or_default();
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(Permit {
            counts: self.counts.clone(),
            ip,
        })
    }
}

/// Answers a refused connection and closes it, without waiting: what the client already sent is drained
/// (so the close is a FIN, not a reset that could discard the answer), the answer is written into the fresh
/// socket's empty send buffer, and the socket is closed.
pub fn refuse(stream: tokio::net::TcpStream, refusal: Refusal) {
    let Ok(mut stream) = stream.into_std() else {
        return;
    };
    let mut sink = [0u8; 4096];
    let _ = std::io::Read::read(&mut stream, &mut sink);
    let _ = std::io::Write::write(&mut stream, &refusal.answer());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// The soft open-file limit of this process, if known.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Exponential backoff of the accept loop after failures (out of file descriptors and the like): the loop
/// sleeps instead of spinning, and is back at full speed after the first success.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    /// First pause after a failure.
    const FIRST: Duration = Duration::from_millis(5);
    /// Longest pause.
    const MAX: Duration = Duration::from_secs(1);

    /// The pause after one more failure: 5 ms doubling to at most 1 s.
    pub fn failed(&mut self) -> Duration {
        let pause = Self::FIRST
            .saturating_mul(1u32 << self.failures.min(10))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    /// A connection was accepted: the next failure starts from the first pause again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The caps hold globally and per address, and a dropped permit gives its place back.
    #[test]
    fn caps_and_release() {
        let limits = ConnectionLimits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..ConnectionLimits::default()
        };
        let budget = ConnectionBudget::new(&limits);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = budget.admit(a).unwrap();
        let _a2 = budget.admit(a).unwrap();
        assert_eq!(budget.admit(a).unwrap_err(), Refusal::PerIp);
        let _b1 = budget.admit(b).unwrap();
        assert_eq!(budget.admit(b).unwrap_err(), Refusal::Global);
        drop(a1);
        assert_eq!(budget.open(), 2);
        assert!(budget.admit(a).is_ok());
    }

    /// The canned answers are well-formed HTTP with the declared length.
    #[test]
    fn refusal_answers_are_well_formed() {
        for refusal in [Refusal::Global, Refusal::PerIp] {
            let answer = refusal.answer();
            let text = std::str::from_utf8(&answer).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let declared: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(declared, body.len(), "{head}");
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(json["code"].is_string());
        }
    }

    /// The backoff grows to its maximum and resets after a success.
    #[test]
    fn backoff_grows_and_resets() {
        let mut backoff = AcceptBackoff::default();
        let first = backoff.failed();
        let second = backoff.failed();
        assert!(second > first);
        for _ in 0..40 {
            assert!(backoff.failed() <= AcceptBackoff::MAX);
        }
        backoff.succeeded();
        assert_eq!(backoff.failed(), first);
    }
}
