//! What the kernel says about a process: resident memory (`/proc/PID/status`) and CPU time
//! (`/proc/PID/stat`), sampled by the streams benchmark.

use std::fs;

use rustix::process::Pid;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// `VmRSS`: resident memory now, KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM`: the most resident memory so far, KiB.
    pub(crate) hwm_kib: u64,
    /// `Threads`.
    pub(crate) threads: u64,
    /// User plus system CPU time, in clock ticks.
    pub(crate) cpu_ticks: u64,
}

/// Reads `pid`'s status and stat; `None` when the process is gone.
pub(crate) fn sample(pid: Pid) -> Option<Sample> {
    let dir = format!("/proc/{}", pid.as_raw_nonzero());
    let status = fs::read_to_string(format!("{dir}/status")).ok()?;
    let stat = fs::read_to_string(format!("{dir}/stat")).ok()?;
    Some(Sample {
        rss_kib: status_kib(&status, "VmRSS:")?,
        hwm_kib: status_kib(&status, "VmHWM:")?,
        threads: status_kib(&status, "Threads:").unwrap_or(0),
        cpu_ticks: stat_cpu_ticks(&stat)?,
    })
}

/// Clock ticks per second, for [`Sample::cpu_ticks`].
pub(crate) fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

/// The number on the `/proc/PID/status` line starting with `field` (`VmRSS:` is in kB).
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2) is
/// in parentheses and may hold spaces, so fields count from the last `)`: field 3 is first.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_utime_plus_stime_counted_after_the_command_name() {
        let stat = "4242 (tokio (rt) 1) S 4000 4241 4000 0 -1 4194560 123 0 0 0 250 40 0 0 20 0 9 0 100";
        assert_eq!(stat_cpu_ticks(stat), Some(290));
        assert_eq!(stat_cpu_ticks("no command name"), None);
        assert_eq!(stat_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_fields_are_read_by_name() {
        let status = "Name:\ttollgate\nVmHWM:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(5120));
        assert_eq!(status_kib(status, "VmHWM:"), Some(9000));
        assert_eq!(status_kib(status, "Threads:"), Some(3));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let me = sample(rustix::process::getpid()).expect("our own /proc entry");
        assert!(me.rss_kib > 0 && me.hwm_kib >= me.rss_kib && me.threads >= 1, "{me:?}");
    }
}
