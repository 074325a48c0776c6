//! What the kernel tells of a process and of the machine: resident memory, CPU time, open files,
//! and the listen-queue counters of `/proc/net/netstat`.

use anyhow::{Context as _, Result, anyhow};
use std::time::Duration;

/// The kernel's unit for CPU times in `/proc/PID/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// A memory figure of `/proc/PID/status` (`VmRSS`, `VmHWM`…), in bytes.
fn status_bytes(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("while reading the status of process {pid}"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow!("process {pid} reports no {field}"))?;
    Ok(kib * 1024)
}

/// Resident memory of a process, in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// The peak resident memory of a process since it started or since [`reset_peak`], in bytes
/// (`VmHWM`).
pub fn peak_rss_bytes(pid: u32) -> Result<u64> {
    status_bytes(pid, "VmHWM")
}

/// Starts a process's peak resident memory afresh from its present size (`5` written to
/// `/proc/PID/clear_refs`: the process's own or root's to do).
pub fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("while resetting the peak memory of process {pid}"))
}

/// CPU time a process has used so far, user and system, all threads.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("while reading the CPU time of process {pid}"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are
    // fixed: utime and stime are the 12th and 13th of them.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("process {pid} has an unreadable stat line"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("process {pid} has no CPU field {i}"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / TICKS_PER_SECOND))
}

/// CPU time a process's live threads have used so far, in nanoseconds (the scheduler's own
/// accounting in `/proc/PID/task/*/schedstat`: precise where `/proc/PID/stat` counts 10 ms ticks,
/// for measuring one fan-out).
pub fn cpu_ns(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("while listing the threads of process {pid}"))?
    {
        let path = task?.path().join("schedstat");
        // A thread may end between the listing and the read.
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

/// Files a process holds open.
pub fn open_files(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("while listing the files of process {pid}"))?
        .count())
}

/// The machine's listen-queue overflow counters so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenCounters {
    /// `TcpExt: ListenOverflows`: connections that found a full accept queue.
    pub overflows: u64,
    /// `TcpExt: ListenDrops`: SYNs dropped for any reason at a listening socket.
    pub drops: u64,
}

/// Reads [`ListenCounters`] from `/proc/net/netstat`.
pub fn listen_counters() -> Result<ListenCounters> {
    let text =
        std::fs::read_to_string("/proc/net/netstat").context("while reading /proc/net/netstat")?;
    parse_listen_counters(&text)
}

fn parse_listen_counters(text: &str) -> Result<ListenCounters> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = lines
        .next()
        .zip(lines.next())
        .ok_or_else(|| anyhow!("/proc/net/netstat has no TcpExt lines"))?;
    let value = |name: &str| -> Result<u64> {
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| anyhow!("/proc/net/netstat has no {name}"))
    };
    Ok(ListenCounters {
        overflows: value("ListenOverflows")?,
        drops: value("ListenDrops")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_counters_are_read_by_name() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 0 12 15\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(
            parse_listen_counters(text).unwrap(),
            ListenCounters {
                overflows: 12,
                drops: 15
            }
        );
    }

    #[test]
    fn this_process_has_memory_cpu_time_and_files() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        assert!(cpu_time(me).is_ok());
        assert!(cpu_ns(me).unwrap() > 0);
        assert!(open_files(me).unwrap() >= 3);
        assert!(listen_counters().is_ok());
    }
}
