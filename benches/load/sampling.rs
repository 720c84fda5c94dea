//! What the machine and the server use while a phase runs: the server's resident memory
//! and the CPU time of the machine, the bench and the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub(crate) const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(100);

pub(crate) fn read_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU time counters (clock ticks): the whole machine, and this process plus the server.
#[derive(Clone, Copy)]
struct CpuMark {
    busy: u64,
    total: u64,
    ours: u64,
}

fn cpu_mark(server_pid: u32) -> Option<CpuMark> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    if v.len() < 8 {
        return None;
    }
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    let total = busy + v[3] + v[4];
    let ours = process_cpu("self")? + process_cpu(&server_pid.to_string())?;
    Some(CpuMark { busy, total, ours })
}

/// utime + stime of a process, all its threads included.
fn process_cpu(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// How busy the machine was in a phase, and how much of it was neither the bench nor
/// the server (another build, say): the figures are only as good as this is small.
pub(crate) struct CpuUse {
    pub(crate) phase: &'static str,
    pub(crate) busy: f64,
    pub(crate) others: f64,
}

pub(crate) struct CpuWatch {
    pid: u32,
    phase: &'static str,
    start: Option<CpuMark>,
}

impl CpuWatch {
    pub(crate) fn start(pid: u32, phase: &'static str) -> Self {
        Self {
            pid,
            phase,
            start: cpu_mark(pid),
        }
    }

    pub(crate) fn finish(self, into: &mut Vec<CpuUse>) {
        if let (Some(a), Some(b)) = (self.start, cpu_mark(self.pid)) {
            let total = b.total.saturating_sub(a.total) as f64;
            if total > 0.0 {
                let busy = b.busy.saturating_sub(a.busy) as f64;
                let ours = b.ours.saturating_sub(a.ours) as f64;
                into.push(CpuUse {
                    phase: self.phase,
                    busy: busy / total,
                    others: (busy - ours) / total,
                });
            }
        }
    }
}

/// Samples the server's RSS every 100 ms on its own thread, keeping the peak.
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<()>,
}

impl RssSampler {
    pub(crate) fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(read_rss_kib(pid).unwrap_or(0)));
        let (s, p) = (stop.clone(), peak.clone());
        let handle = std::thread::spawn(move || {
            // 100 ms × 1200 = 2 minutes at most.
            for _ in 0..1200 {
                if let Some(kib) = read_rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                if s.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(RSS_SAMPLE_EVERY);
            }
        });
        Self { stop, peak, handle }
    }

    pub(crate) fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        self.peak.load(Ordering::Relaxed)
    }
}
