//! What a stretch of the run used: CPU time of this process and of the
//! broker, context switches and peak memory, read from /proc.

use std::time::Duration;

/// CPU time used so far by this process and by the broker, to measure a
/// stretch of the run.
pub(super) struct CpuMark {
    own: Option<Duration>,
    broker: Option<Duration>,
    switches: Option<u64>,
}

/// What a stretch of the run used: CPU time of this process and of the
/// broker, and this process's peak resident memory.
#[derive(Default)]
pub(super) struct Spent {
    pub(super) cpu: Option<Duration>,
    pub(super) broker_cpu: Option<Duration>,
    pub(super) rss_peak_mib: Option<f64>,
    pub(super) switches: Option<u64>,
}

impl CpuMark {
    /// Marks the start of a stretch (and restarts the peak-memory count).
    pub(super) fn now() -> CpuMark {
        // Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        CpuMark {
            own: cpu_used(),
            broker: broker_cpu_used(),
            switches: switches_so_far(),
        }
    }

    pub(super) fn spent(&self) -> Spent {
        let since =
            |a: Option<Duration>, b: Option<Duration>| a.zip(b).map(|(a, b)| b.saturating_sub(a));
        Spent {
            cpu: since(self.own, cpu_used()),
            broker_cpu: since(self.broker, broker_cpu_used()),
            rss_peak_mib: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| rss_peak_mib(&s)),
            switches: self
                .switches
                .zip(switches_so_far())
                .map(|(a, b)| b.saturating_sub(a)),
        }
    }
}

/// Context switches (voluntary and not) of this process's live threads so
/// far; `None` where there is no /proc.
fn switches_so_far() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
            total += switches(&status);
        }
    }
    Some(total)
}

/// Voluntary plus involuntary context switches from a /proc status file.
fn switches(status: &str) -> u64 {
    status
        .lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches:")
                || l.starts_with("nonvoluntary_ctxt_switches:")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// The peak resident set (VmHWM) from /proc/self/status, in MiB.
pub(super) fn rss_peak_mib(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user and system) this process has used so far; `None` where
/// there is no /proc.
fn cpu_used() -> Option<Duration> {
    proc_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// CPU time used so far by the RabbitMQ nodes (`beam.smp`) on this
/// machine; `None` when none is visible.
fn broker_cpu_used() -> Option<Duration> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let path = entry.path();
        let is_beam =
            std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim_end() == "beam.smp");
        if let Some(t) = is_beam
            .then(|| std::fs::read_to_string(path.join("stat")).ok())
            .flatten()
            .and_then(|s| proc_cpu(&s))
        {
            total = Some(total.unwrap_or_default() + t);
        }
    }
    total
}

/// User plus system time from a /proc/<pid>/stat line.
fn proc_cpu(stat: &str) -> Option<Duration> {
    // The command name is in parentheses and may hold spaces: count the
    // fields after it (the state is field 3, utime 14, stime 15).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // /proc counts in USER_HZ, 100 per second on Linux whatever the kernel's HZ.
    Some(Duration::from_millis(ticks * 10))
}

#[cfg(test)]
mod tests {
    use super::{proc_cpu, rss_peak_mib, switches};

    #[test]
    fn peak_memory_is_read_from_vmhwm() {
        let status =
            "Name:\tdeskbridge\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(rss_peak_mib(status), Some(50.0));
        assert_eq!(rss_peak_mib("Name:\tx\n"), None);
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(switches(status), 127);
    }
    use std::time::Duration;

    #[test]
    fn cpu_time_is_read_past_a_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let line = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 9 0";
        assert_eq!(proc_cpu(line), Some(Duration::from_millis(1750)));
        assert_eq!(proc_cpu("4242 (cut short) S 1 2"), None);
    }
}
