//! The locks that make one `vpcsim up` the owner of a lab and of a state dir.
//!
//! Two exclusive `flock`s, taken before `up` checks or changes anything and held for the
//! daemon's life: `/run/vpcsim/<lab>.lock` (one daemon per lab: of two `up`s of a lab at once,
//! the second is refused and changes nothing) and `<state-dir>/vpcsim.lock` (one daemon per
//! state dir: another lab, or `--fresh`, cannot move or write a running lab's state). The
//! kernel drops a lock when its holder dies, `kill -9` included, so a lock never outlives its
//! daemon. `up --detach` takes them in the command and hands them to the daemon it starts (the
//! descriptors are inherited across `exec`: a `flock` belongs to the open file, which they
//! share), so no other `up` can slip in between.
//!
//! A lock file may be removed (by `down`, or by the daemon as it exits) only by the holder of
//! its lock; whoever takes a lock checks afterwards that the file it locked is still the one at
//! the path, and starts over if not.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::setup::RUN_DIR;
use crate::io::fd;

/// One lock file, locked.
#[derive(Debug)]
pub struct Held {
    path: PathBuf,
    file: Flock<File>,
}

/// The lab's lock file.
pub fn lab_path(lab: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{lab}.lock"))
}

/// The state dir's lock file.
pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join("vpcsim.lock")
}

impl Held {
    /// Locks `path` (created if missing) without waiting; `Ok(None)` if another process holds
    /// it. `owner` is written into the file (what a refused `up` reports).
    pub fn take(path: &Path, owner: &str) -> anyhow::Result<Option<Held>> {
        loop {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            let file = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            };
            // Removed (and perhaps made anew) between our open and our lock: not the lock.
            if !same_file(&file, path) {
                continue;
            }
            let mut held = Held { path: path.to_path_buf(), file };
            held.write_owner(owner)?;
            return Ok(Some(held));
        }
    }

    /// The lock our parent (`vpcsim up --detach`) took on `path` and left us as descriptor
    /// `fd`.
    pub fn adopt(raw: RawFd, path: &Path) -> anyhow::Result<Held> {
        let owned: OwnedFd = fd::adopt(raw)?;
        let file = File::from(owned);
        // Locking again through the same open file succeeds: it is this file's lock already.
        let file = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| e)
            .with_context(|| format!("descriptor {raw} does not hold {}", path.display()))?;
        if !same_file(&file, path) {
            bail!("descriptor {raw} is not {}", path.display());
        }
        Ok(Held { path: path.to_path_buf(), file })
    }

    /// Who holds the lock at `path`, as written by its holder ("" if unknown).
    pub fn owner(path: &Path) -> String {
        std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
    }

    fn write_owner(&mut self, owner: &str) -> anyhow::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(format!("{owner}\n").as_bytes())?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lets the lock's descriptor survive `exec`; returns its number for the child.
    pub fn inheritable(&self) -> anyhow::Result<RawFd> {
        fd::inheritable(&*self.file)?;
        Ok(self.file.as_raw_fd())
    }

    /// Leaves the lock to the daemon that inherited it. Dropping it would unlock the file for
    /// the daemon too (an unlock acts on the open file, which they share); the descriptor is
    /// closed when this process exits.
    pub fn hand_over(self) {
        std::mem::forget(self);
    }

    /// Removes the lock file, then unlocks it.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The two locks of a running lab.
pub struct Locks {
    pub lab: Held,
    pub state: Held,
    /// Whether taking the state dir's lock made the state dir: an `up` that fails before
    /// anything else is in it removes it again ([`remove_bare_state_dir`]). `false` for
    /// adopted locks (the `up --detach` that took them knows).
    pub made_state_dir: bool,
}

impl Locks {
    /// Takes the lab's lock, then the state dir's (made if missing). Refuses, changing nothing,
    /// if another `up` holds either.
    pub fn take(lab: &str, state_dir: &Path) -> anyhow::Result<Locks> {
        std::fs::create_dir_all(RUN_DIR).with_context(|| format!("creating {RUN_DIR}"))?;
        let path = lab_path(lab);
        let Some(lab_lock) = Held::take(&path, lab)? else {
            bail!(
                "lab {lab} is already up, or another `vpcsim up` of it is starting ({} is locked); \
                 run `vpcsim down {lab}` first",
                path.display()
            );
        };
        let made_state_dir = !state_dir.exists();
        match take_state(lab, state_dir) {
            Ok(state) => Ok(Locks { lab: lab_lock, state, made_state_dir }),
            Err(e) => {
                lab_lock.remove();
                Err(e)
            }
        }
    }

    /// The locks `vpcsim up --detach` handed down as descriptors `fds` ("<lab>,<state>").
    pub fn adopt(fds: &str, lab: &str, state_dir: &Path) -> anyhow::Result<Locks> {
        let parse = |s: Option<&str>| s.and_then(|s| s.parse::<RawFd>().ok());
        let mut it = fds.split(',');
        let (Some(l), Some(s), None) = (parse(it.next()), parse(it.next()), it.next()) else {
            bail!("--lock-fds {fds}: two descriptors, like 3,4");
        };
        Ok(Locks {
            lab: Held::adopt(l, &lab_path(lab))?,
            state: Held::adopt(s, &state_path(state_dir))?,
            made_state_dir: false,
        })
    }

    /// Lets both descriptors survive `exec`: "<lab>,<state>" for the child's `--lock-fds`.
    pub fn inheritable(&self) -> anyhow::Result<String> {
        Ok(format!("{},{}", self.lab.inheritable()?, self.state.inheritable()?))
    }

    pub fn hand_over(self) {
        self.lab.hand_over();
        self.state.hand_over();
    }

    /// After `up --fresh` moved the state dir aside: the lock of the new one (the old lock, on
    /// the file that moved with the old dir, is released).
    pub fn relock_state(&mut self, lab: &str, state_dir: &Path) -> anyhow::Result<()> {
        self.state = take_state(lab, state_dir)?;
        Ok(())
    }
}

fn take_state(lab: &str, state_dir: &Path) -> anyhow::Result<Held> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating the state dir {}", state_dir.display()))?;
    let path = state_path(state_dir);
    match Held::take(&path, lab)? {
        Some(h) => Ok(h),
        None => {
            let owner = Held::owner(&path);
            bail!(
                "the state dir {} is in use by {} ({} is locked): use another --state-dir",
                state_dir.display(),
                if owner.is_empty() { "another lab".to_string() } else { format!("lab {owner}") },
                path.display()
            )
        }
    }
}

/// After an `up` that made `state_dir` failed: removes the state dir if it holds nothing but
/// its lock file (the failure came before anything was stored in it, e.g. on a namespace that
/// exists already), so the failed `up` leaves nothing behind. Anything else in it stays.
pub fn remove_bare_state_dir(state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(state_dir) else { return };
    let names: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
    if names.iter().all(|n| *n == *state_path(state_dir).file_name().unwrap_or_default()) {
        let _ = std::fs::remove_file(state_path(state_dir));
        // Only if empty (nothing came in meanwhile).
        let _ = std::fs::remove_dir(state_dir);
    }
}

/// `vpcsim down`: unless an `up` of the lab holds its lock (one starting), runs `then` under
/// the lock and removes the lock file.
pub fn unless_locked(lab: &str, then: impl FnOnce()) {
    if let Ok(Some(h)) = Held::take(&lab_path(lab), lab) {
        then();
        h.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vpcsim-lock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_state_dir_with_only_its_lock_is_removed_one_with_more_is_kept() {
        let d = dir("bare");
        let state = d.join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state_path(&state), "lab").unwrap();
        remove_bare_state_dir(&state);
        assert!(!state.exists(), "only the lock: removed");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state_path(&state), "lab").unwrap();
        std::fs::write(state.join("world.json"), "{}").unwrap();
        remove_bare_state_dir(&state);
        assert!(state.join("world.json").exists() && state_path(&state).exists(), "kept");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A held lock refuses a second taker, in the same process too (each open is its own
    /// file description), until it is dropped; a removed lock file is never locked "twice".
    #[test]
    fn one_holder_at_a_time() {
        let d = dir("one");
        let path = d.join("x.lock");
        let a = Held::take(&path, "lab-a").unwrap().expect("free");
        assert!(Held::take(&path, "lab-b").unwrap().is_none());
        assert_eq!(Held::owner(&path), "lab-a");
        drop(a);
        let b = Held::take(&path, "lab-b").unwrap().expect("free again");
        assert_eq!(Held::owner(&path), "lab-b");
        b.remove();
        assert!(!path.exists());
        let c = Held::take(&path, "lab-c").unwrap().expect("made anew");
        assert!(Held::take(&path, "lab-d").unwrap().is_none());
        drop(c);
        let _ = std::fs::remove_dir_all(d);
    }

    /// The state dir's lock names the lab that holds it; `--fresh` takes the new dir's.
    #[test]
    fn a_state_dir_in_use_is_refused_with_its_lab() {
        let d = dir("state");
        let state = d.join("state");
        let held = take_state("lab-a", &state).unwrap();
        let e = format!("{:#}", take_state("lab-b", &state).unwrap_err());
        assert!(e.contains("in use by lab lab-a"), "{e}");
        assert!(e.contains("vpcsim.lock"), "{e}");
        drop(held);
        take_state("lab-b", &state).unwrap();
        let _ = std::fs::remove_dir_all(d);
    }

    /// What a detached daemon does with the descriptors its parent left it: the same lock.
    #[test]
    fn an_inherited_descriptor_is_adopted_with_its_lock() {
        let d = dir("adopt");
        let path = d.join("x.lock");
        let held = Held::take(&path, "lab-a").unwrap().unwrap();
        // A second descriptor of the same open file, as `exec` leaves it to the child.
        let dup = held.file.try_clone().unwrap();
        let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
        let adopted = Held::adopt(raw, &path).unwrap();
        held.hand_over();
        assert!(Held::take(&path, "lab-b").unwrap().is_none(), "the child holds it");
        drop(adopted);
        assert!(Held::take(&path, "lab-b").unwrap().is_some());
        // Not a lock file of ours: refused.
        let other = File::open(&d).unwrap();
        let raw = std::os::fd::IntoRawFd::into_raw_fd(other);
        assert!(Held::adopt(raw, &path).is_err());
        assert!(Held::adopt(0, &path).is_err());
        let _ = std::fs::remove_dir_all(d);
    }
}
