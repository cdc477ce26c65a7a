//! Process metrics read at scrape time: resident memory, CPU seconds, open file descriptors from `/proc/self`
//! (Linux; nothing elsewhere), with the standard `process_*` names; and the process's parked idle
//! connections ([`crate::conn::park`]).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads `/proc/self` on every scrape.
#[derive(Debug)]
pub(super) struct ProcessCollector;

/// Clock ticks per second of `/proc/self/stat` times (`USER_HZ`, 100 on every Linux architecture in use).
const TICKS_PER_S: f64 = 100.0;
/// Page size for `statm` (4 KiB on the architectures we build for).
const PAGE_BYTES: u64 = 4096;

/// (user + system CPU seconds, resident bytes, open fds), each when readable.
fn sample() -> (Option<f64>, Option<u64>, Option<u64>) {
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the `(comm)`, which may contain spaces: state is field 3, utime 14, stime 15.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / TICKS_PER_S)
        });
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * PAGE_BYTES);
    let fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count() as u64);
    (cpu, rss, fds)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (cpu, rss, fds) = sample();
        if let Some(cpu) = cpu {
            let metric = ConstCounter::new(cpu);
            let e = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent, in seconds",
                None,
                metric.metric_type(),
            )?;
            metric.encode(e)?;
        }
        if let Some(rss) = rss {
            let metric = ConstGauge::new(rss as i64);
            let e = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                None,
                metric.metric_type(),
            )?;
            metric.encode(e)?;
        }
        let parked = ConstGauge::new(crate::conn::park::parked_now());
        let e = encoder.encode_descriptor(
            "bff_connections_parked",
            "Idle HTTP/1 keep-alive client connections parked outside hyper now",
            None,
            parked.metric_type(),
        )?;
        parked.encode(e)?;
        let parks = ConstCounter::new(crate::conn::park::parks_total());
        let e = encoder.encode_descriptor(
            "bff_connections_parks",
            "Idle HTTP/1 keep-alive client connections parked outside hyper so far",
            None,
            parks.metric_type(),
        )?;
        parks.encode(e)?;
        if let Some(fds) = fds {
            let metric = ConstGauge::new(fds as i64);
            let e = encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                metric.metric_type(),
            )?;
            metric.encode(e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// On Linux every sample is readable and plausible.
    #[test]
    #[cfg(target_os = "linux")]
    fn samples_proc() {
        let (cpu, rss, fds) = super::sample();
        assert!(cpu.is_some_and(|c| c >= 0.0));
        assert!(rss.is_some_and(|r| r > 1024 * 1024));
        assert!(fds.is_some_and(|f| f >= 3));
    }
}
