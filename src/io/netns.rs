//! Running code inside a named network namespace (`ip netns` conventions).

use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use nix::sched::{CloneFlags, setns};

/// Where `ip netns add` mounts a namespace.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/var/run/netns").join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Runs `f` on a new thread that has entered namespace `ns`, and returns its result. Sockets and
/// TUN devices opened by `f` stay in that namespace after the thread ends.
pub fn run_in<T, F>(ns: &str, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    let file = File::open(path(ns)).with_context(|| format!("opening namespace {ns}"))?;
    let name = ns.to_string();
    std::thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || -> anyhow::Result<T> {
            setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("entering {name}"))?;
            f().with_context(|| format!("in namespace {name}"))
        })
        .context("spawning a namespace thread")?
        .join()
        .map_err(|_| anyhow!("namespace thread for {ns} panicked"))?
}

/// Spawns a long-lived thread inside namespace `ns` (a data-plane worker).
pub fn spawn_in<F>(
    ns: &str,
    thread_name: String,
    f: F,
) -> anyhow::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let file = File::open(path(ns)).with_context(|| format!("opening namespace {ns}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new().name(thread_name).spawn(move || {
        if let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET) {
            let _ = tx.send(Err(e));
            return;
        }
        let _ = tx.send(Ok(()));
        f()
    })?;
    rx.recv()
        .map_err(|_| anyhow!("worker thread for {ns} died"))?
        .with_context(|| format!("entering {ns}"))?;
    Ok(handle)
}
