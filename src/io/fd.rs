//! File descriptors a process inherits from its parent: `vpcsim up --detach` hands the locks it
//! took (see `lab::lock`) to the daemon it starts, which must hold them for its life.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use anyhow::bail;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};

/// Takes ownership of `fd`, left open across `exec` by the parent, and marks it close-on-exec
/// again (the commands the daemon runs must not inherit it).
pub fn adopt(fd: RawFd) -> anyhow::Result<OwnedFd> {
    // Not stdin, stdout or stderr (std owns them), and open: `/proc/self/fd/<fd>` exists.
    if fd <= 2 || std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
        bail!("file descriptor {fd} is not an inherited lock");
    }
    // SAFETY: `fd` is open (checked above) and nothing in this process owns it: it is above
    // the standard streams, and std and our code open every other descriptor close-on-exec, so
    // an open one that is not ours came through `exec`, from the parent that named it. Adopted
    // once, at start-up, before any other descriptor is opened by another thread.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(owned)
}

/// Lets `fd` survive `exec`, so that a child started next inherits it.
pub fn inheritable(fd: &impl std::os::fd::AsFd) -> anyhow::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok(())
}
