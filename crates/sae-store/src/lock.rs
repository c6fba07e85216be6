//! One writer per output folder: a lock file (`.sae.lock`) naming the process that writes there.
//!
//! The file appears atomically with its content (written to a temporary file, then hard-linked into
//! place, which fails when a lock exists) and holds the pid, the process's start time (field 22 of
//! `/proc/<pid>/stat`, clock ticks since boot), the boot id, the host and the time it was taken. A
//! lock whose process is gone (no `/proc/<pid>`, or a process of that pid that started at another
//! time or in another boot: pid reuse) is stale and is taken over; a live holder is refused with
//! [`LockError::Held`]. A lock from another host, or on a system without `/proc`, cannot be checked
//! and counts as held. The lock is removed when the [`OutputLock`] is dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Name of the lock file inside the output folder.
pub const LOCK_FILE: &str = ".sae.lock";

/// Why an output folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process writes into the folder.
    #[error("{} is in use by {holder} (lock file {}); wait for it to finish or stop it", dir.display(), lock.display())]
    Held {
        /// The output folder.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// Pid of the holder.
        pid: u32,
        /// The holder, in words (pid, command, host, age).
        holder: String,
    },
    /// The lock file exists but does not say who holds it.
    #[error("lock file {} is unreadable ({reason}); remove it if no other process writes into {}", lock.display(), dir.display())]
    Unreadable {
        /// The output folder.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file system operation failed.
    #[error("{}: {err}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        err: std::io::Error,
    },
}

/// What a lock file records about its holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Process id.
    pub pid: u32,
    /// Start time of the process (clock ticks since boot, `/proc/<pid>/stat` field 22), if known.
    #[serde(default)]
    pub start_ticks: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id` of the boot the process ran in, if known.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// Host name, if known.
    #[serde(default)]
    pub host: Option<String>,
    /// Unix time (seconds) the lock was taken.
    #[serde(default)]
    pub since_unix: Option<u64>,
    /// What took the lock (e.g. `sae train`).
    #[serde(default)]
    pub command: Option<String>,
}

/// Whether the holder of a lock still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// It runs (or cannot be checked: another host, no `/proc`).
    Alive,
    /// It is gone: the lock is stale.
    Dead,
}

/// An exclusive lock on an output folder, released (the lock file removed) on drop.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    me: LockHolder,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LockError + '_ {
    move |err| LockError::Io {
        path: path.to_path_buf(),
        err,
    }
}

fn read_trim(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Start time of process `pid` in clock ticks since boot, when `/proc` tells it.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; fields 3.. follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

fn this_host() -> Option<String> {
    read_trim("/proc/sys/kernel/hostname").or_else(|| read_trim("/etc/hostname"))
}

impl LockHolder {
    /// The current process, taking a lock for `command`.
    pub fn current(command: &str) -> LockHolder {
        let pid = std::process::id();
        LockHolder {
            pid,
            start_ticks: process_start_ticks(pid),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            host: this_host(),
            since_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs()),
            command: Some(command.to_string()),
        }
    }

    /// Whether the process this lock names still runs, checked on `/proc` of this host.
    pub fn liveness(&self) -> Liveness {
        let here = LockHolder::current("");
        if self.host.is_some() && here.host.is_some() && self.host != here.host {
            return Liveness::Alive;
        }
        if !Path::new("/proc/self/stat").exists() {
            return Liveness::Alive;
        }
        if self.boot_id.is_some() && here.boot_id.is_some() && self.boot_id != here.boot_id {
            return Liveness::Dead;
        }
        match (process_start_ticks(self.pid), self.start_ticks) {
            (None, _) => Liveness::Dead,
            (Some(now), Some(then)) if now != then => Liveness::Dead,
            _ => Liveness::Alive,
        }
    }

    /// The holder in words: `pid 123 (sae train on host h, started 42 s ago)`.
    pub fn describe(&self) -> String {
        let mut what = self.command.clone().unwrap_or_default();
        if let Some(h) = &self.host {
            what = format!("{what} on host {h}").trim_start().to_string();
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok();
        if let (Some(t), Some(now)) = (self.since_unix, now) {
            let age = format!("started {} s ago", now.as_secs().saturating_sub(t));
            what = match what.is_empty() {
                true => age,
                false => format!("{what}, {age}"),
            };
        }
        match what.is_empty() {
            true => format!("pid {}", self.pid),
            false => format!("pid {} ({what})", self.pid),
        }
    }
}

/// Reads a lock file; `Ok(None)` when there is none.
fn read_holder(path: &Path) -> Result<Option<Result<LockHolder, String>>, LockError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).map_err(|e| e.to_string()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Creates `path` holding `text`, atomically, failing with `AlreadyExists` when it exists.
fn create_with(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("lock.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            // No hard links here (some network or FAT file systems): create_new, then write.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        }
        r => r,
    }
}

impl OutputLock {
    /// Locks `dir` (created if missing) for `command`, taking over a stale lock.
    pub fn acquire(dir: &Path, command: &str) -> Result<OutputLock, LockError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let me = LockHolder::current(command);
        let text = serde_json::to_string(&me).map_err(|e| LockError::Io {
            path: path.clone(),
            err: std::io::Error::other(e),
        })?;
        let mut unreadable = 0;
        loop {
            match create_with(&path, &text) {
                Ok(()) => return Ok(OutputLock { path, me }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(&path)(e)),
            }
            let holder = match read_holder(&path)? {
                None => continue, // released meanwhile: try again
                Some(Ok(h)) => h,
                Some(Err(reason)) => {
                    // A writer without hard links may be between create_new and write.
                    unreadable += 1;
                    if unreadable > 20 {
                        return Err(LockError::Unreadable {
                            dir: dir.to_path_buf(),
                            lock: path,
                            reason,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            if holder.liveness() == Liveness::Alive {
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    lock: path,
                    pid: holder.pid,
                    holder: holder.describe(),
                });
            }
            take_over_stale(&path, &holder)?;
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the lock file says about this process.
    pub fn holder(&self) -> &LockHolder {
        &self.me
    }
}

/// Removes the stale lock `path` whose holder was `stale`, unless another process replaced it
/// meanwhile: the file is first renamed to a name of our own (atomic), then checked.
fn take_over_stale(path: &Path, stale: &LockHolder) -> Result<(), LockError> {
    let aside = path.with_extension(format!("lock.stale.{}", std::process::id()));
    match std::fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
    }
    let moved = read_holder(&aside)?;
    if matches!(&moved, Some(Ok(h)) if h != stale) {
        // Another process took the stale lock over first and this moved its live lock: put it
        // back (if a third process has locked meanwhile, its lock stays and this one is dropped).
        let _ = std::fs::hard_link(&aside, path);
    }
    std::fs::remove_file(&aside).map_err(io(&aside))
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        if let Ok(Some(Ok(h))) = read_holder(&self.path) {
            if h == self.me {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_live_holder_is_refused_and_the_lock_goes_with_it() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = OutputLock::acquire(tmp.path(), "test").unwrap();
        let text = std::fs::read_to_string(tmp.path().join(LOCK_FILE)).unwrap();
        let h: LockHolder = serde_json::from_str(&text).unwrap();
        assert_eq!(h.pid, std::process::id());
        assert!(h.start_ticks.is_some(), "no start time from /proc");
        match OutputLock::acquire(tmp.path(), "second") {
            Err(LockError::Held { pid, holder, .. }) => {
                assert_eq!(pid, std::process::id());
                assert!(holder.starts_with(&format!("pid {pid} (test ")), "{holder}");
            }
            other => panic!("a second lock on a held folder: {other:?}"),
        }
        drop(lock);
        assert!(!tmp.path().join(LOCK_FILE).exists());
        let again = OutputLock::acquire(tmp.path(), "third").unwrap();
        assert_eq!(again.holder().command.as_deref(), Some("third"));
    }

    #[test]
    fn a_dead_holder_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let pid = dead_pid();
        let stale = LockHolder {
            pid,
            ..LockHolder::current("killed")
        };
        assert_eq!(stale.liveness(), Liveness::Dead);
        let path = tmp.path().join(LOCK_FILE);
        std::fs::write(&path, serde_json::to_string(&stale).unwrap()).unwrap();
        let lock = OutputLock::acquire(tmp.path(), "new").unwrap();
        let now: LockHolder =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(now.pid, std::process::id());
        drop(lock);
        // Only the lock file was left behind: no temporary or set-aside files.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_reused_pid_with_another_start_time_is_stale() {
        let me = LockHolder::current("x");
        let reused = LockHolder {
            start_ticks: me.start_ticks.map(|t| t + 1),
            ..me.clone()
        };
        assert_eq!(me.liveness(), Liveness::Alive);
        assert_eq!(reused.liveness(), Liveness::Dead);
        // A lock of another host cannot be checked here and counts as held.
        let remote = LockHolder {
            host: Some("some-other-host.invalid".into()),
            pid: dead_pid(),
            ..me
        };
        assert_eq!(remote.liveness(), Liveness::Alive);
    }

    #[test]
    fn a_damaged_lock_file_is_reported_not_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(LOCK_FILE), "not json").unwrap();
        match OutputLock::acquire(tmp.path(), "x") {
            Err(LockError::Unreadable { .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(LOCK_FILE)).unwrap(),
            "not json"
        );
    }

    #[test]
    fn process_start_ticks_reads_the_field_after_the_command_name() {
        assert!(process_start_ticks(std::process::id()).is_some());
        assert_eq!(process_start_ticks(dead_pid()), None);
    }
}
