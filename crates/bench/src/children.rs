//! Child processes that cannot outlive the benchmark.
//!
//! Each child is started in a process group of its own, so that the terminal's Ctrl-C reaches
//! only the benchmark (which then stops them in order) and so that whatever a child forks
//! (LiteLLM's server, nginx's workers) is stopped with it: the whole group gets SIGTERM, a grace
//! period, then SIGKILL, and the child is reaped. [`Child`] does this when dropped, so an error
//! path, a panic or an interrupt that drops the run cannot leave a server behind.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};

/// How long a child has between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// A running child process (and its process group), stopped and reaped on drop.
#[derive(Debug)]
pub(crate) struct Child {
    name: String,
    child: Option<std::process::Child>,
}

impl Child {
    /// Starts `command` in a new process group; `name` appears in errors.
    pub(crate) fn spawn(name: &str, mut command: Command) -> anyhow::Result<Self> {
        command.process_group(0);
        let child = command.spawn().with_context(|| format!("cannot start {name}"))?;
        Ok(Self { name: name.to_owned(), child: Some(child) })
    }

    /// The child's process id, which is also its process group's id.
    pub(crate) fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(Pid::from_child)
    }

    /// Whether the child has exited (without reaping it, so its group id stays reserved).
    pub(crate) fn has_exited(&self) -> bool {
        self.pid().is_none_or(exited)
    }

    /// Takes the child's stdout pipe, when it was started with `Stdio::piped()`.
    pub(crate) fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut().and_then(|child| child.stdout.take())
    }

    /// Waits up to `timeout` for the child to exit by itself and returns its status; on timeout,
    /// or if it was already stopped, stops it and returns `None`.
    pub(crate) async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while !self.has_exited() {
            if Instant::now() >= deadline {
                self.stop();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.reap()
    }

    /// Stops the child's group (SIGTERM, then SIGKILL after a grace period) and reaps the child.
    /// Does nothing the second time.
    pub(crate) fn stop(&mut self) {
        let Some(pid) = self.pid() else { return };
        // The group may be gone already: nothing to report then.
        let _ = kill_process_group(pid, Signal::TERM);
        let deadline = Instant::now() + GRACE;
        while !exited(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.reap();
    }

    /// Kills what is left of the group (the child has exited, or had its grace period) and reaps
    /// the child. The child is reaped last: until then its pid cannot name another group.
    fn reap(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = kill_process_group(Pid::from_child(&child), Signal::KILL);
        match child.wait() {
            Ok(status) => Some(status),
            Err(error) => {
                crate::progress(&format!("{}: cannot reap the process: {error}", self.name));
                None
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the child `pid` has exited; it stays a zombie until reaped.
fn exited(pid: Pid) -> bool {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    // An error means there is no such child to wait for: gone.
    match waitid(WaitId::Pid(pid), options) {
        Ok(status) => status.is_some(),
        Err(_) => true,
    }
}

/// The resident memory of the processes in group `pgid`, in KiB, and how many there are.
pub(crate) fn group_rss_kib(pgid: Pid) -> (u64, usize) {
    let Ok(entries) = fs::read_dir("/proc") else { return (0, 0) };
    let mut total = (0, 0);
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(stat) = fs::read_to_string(path.join("stat")) else { continue };
        // A zombie has exited: it holds no memory, only a process-table entry.
        match stat_state_pgrp(&stat) {
            Some((state, pgrp)) if state != 'Z' && pgrp == pgid.as_raw_nonzero().get() => {}
            _ => continue,
        }
        if let Ok(status) = fs::read_to_string(path.join("status")) {
            total.0 += status_rss_kib(&status).unwrap_or(0);
            total.1 += 1;
        }
    }
    total
}

/// The state (field 3) and process group (field 5) of a `/proc/PID/stat` line. The command name
/// (field 2) is in parentheses and may itself hold spaces and parentheses, so fields count from
/// the last `)`.
fn stat_state_pgrp(stat: &str) -> Option<(char, i32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// `VmRSS` of a `/proc/PID/status` text, in KiB.
fn status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_after_the_command_name() {
        let stat = "4242 (tokio (rt) 1) S 4000 4241 4000 0 -1 4194560 123 0 0 0";
        assert_eq!(stat_state_pgrp(stat), Some(('S', 4241)));
        assert_eq!(stat_state_pgrp("4243 (sh) Z 1 4243 4000 0"), Some(('Z', 4243)));
        assert_eq!(stat_state_pgrp("no command name"), None);
    }

    #[test]
    fn status_rss_reads_the_vmrss_line() {
        let status = "Name:\tnginx\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t1\n";
        assert_eq!(status_rss_kib(status), Some(5120));
        assert_eq!(status_rss_kib("Name:\tkthreadd\n"), None);
    }

    #[tokio::test]
    async fn a_dropped_child_and_what_it_forked_are_stopped() -> anyhow::Result<()> {
        // A shell that forks a sleeper and waits: both must be gone once the guard is dropped.
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 600 & wait"]);
        let child = Child::spawn("sh", command)?;
        let pgid = child.pid().context("a pid")?;
        let mut members = 0;
        for _ in 0..500 {
            members = group_rss_kib(pgid).1;
            if members == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(members, 2, "the shell and its sleeper run in the child's group");
        drop(child);
        assert_eq!(group_rss_kib(pgid).1, 0, "nothing of the group is left");
        Ok(())
    }

    #[tokio::test]
    async fn wait_returns_the_exit_status() -> anyhow::Result<()> {
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let mut child = Child::spawn("sh", command)?;
        let status = child.wait(Duration::from_secs(60)).await.context("exited")?;
        assert_eq!(status.code(), Some(3));
        Ok(())
    }
}
