//! Building and removing a lab's namespaces and TUN devices, and the run record that lets
//! `vpcsim down` remove them after a crash.
//!
//! Invariants:
//! - nothing is created in the root namespace: every `ip` command runs with `-n <lab ns>`;
//! - the run record (`/run/vpcsim/<lab>.json`) is written *before* the first namespace is
//!   created, so whatever exists can always be found and removed;
//! - teardown is idempotent and tolerates any subset of the lab being present.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::fib::{PORT_AWS, PORT_INTERNET, PortId};
use crate::io::netns;
use crate::io::worker::DEVICE;
use crate::model::World;

/// Where run records live.
pub const RUN_DIR: &str = "/run/vpcsim";

/// What a running (or crashed) lab is made of.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub lab: String,
    pub pid: u32,
    pub api: String,
    pub state_dir: PathBuf,
    /// Every namespace of the lab, with its port.
    pub namespaces: Vec<(String, PortId)>,
}

impl RunRecord {
    pub fn path(lab: &str) -> PathBuf {
        Path::new(RUN_DIR).join(format!("{lab}.json"))
    }

    pub fn load(lab: &str) -> anyhow::Result<Option<RunRecord>> {
        match std::fs::read(Self::path(lab)) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).context("reading the run record")?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("reading the run record"),
        }
    }

    pub fn save(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(RUN_DIR)?;
        let tmp = Self::path(&self.lab).with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, Self::path(&self.lab))?;
        Ok(())
    }

    /// Whether the daemon of this record is still running.
    pub fn alive(&self) -> bool {
        pid_is_vpcsim(self.pid)
    }
}

fn pid_is_vpcsim(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .next()
                .is_some_and(|arg0| arg0.ends_with(b"vpcsim"))
        })
        .unwrap_or(false)
}

/// The namespaces of a world: `<lab>-aws`, `<lab>-internet`, then `<lab>-<subnet>` per subnet.
pub fn namespaces(
    world: &World,
    port_of: &dyn Fn(&str) -> Option<PortId>,
) -> Vec<(String, PortId)> {
    let mut out = vec![
        (format!("{}-aws", world.lab), PORT_AWS),
        (format!("{}-internet", world.lab), PORT_INTERNET),
    ];
    for s in &world.subnets {
        if let Some(p) = port_of(&s.id) {
            out.push((format!("{}-{}", world.lab, s.name), p));
        }
    }
    out
}

/// Creates every namespace and TUN device of the world.
pub fn create(
    world: &World,
    namespaces: &[(String, PortId)],
    port_of: &dyn Fn(&str) -> Option<PortId>,
) -> anyhow::Result<()> {
    for (ns, port) in namespaces {
        if netns::exists(ns) {
            bail!(
                "namespace {ns} already exists; remove it (ip netns del {ns}) or choose another lab name"
            );
        }
        run(Command::new("ip").args(["netns", "add", ns]))?;
        std::fs::create_dir_all(Path::new("/etc/netns").join(ns))
            .with_context(|| format!("creating /etc/netns/{ns}"))?;
        // Before the device exists so that it inherits the defaults too.
        sysctls(ns)?;
        let mut batch = vec![
            "link set lo up".to_string(),
            format!("tuntap add dev {DEVICE} mode tun multi_queue vnet_hdr"),
            format!("link set dev {DEVICE} txqueuelen 10000"),
        ];
        match *port {
            PORT_AWS => {
                // Every region's AWS ranges are local: the S3 stub answers on all of them.
                for pl in &world.prefix_lists {
                    for cidr in &pl.cidrs {
                        batch.push(format!("route add local {cidr} dev lo"));
                    }
                }
            }
            PORT_INTERNET => {
                for h in &world.internet_hosts {
                    batch.push(format!("addr add {}/32 dev lo", h.ip));
                }
            }
            _ => {
                let subnet = world.subnets.iter().find(|s| port_of(&s.id) == Some(*port));
                let addrs: Vec<Ipv4Addr> = world
                    .instances
                    .iter()
                    .filter(|i| subnet.is_some_and(|s| s.id == i.subnet))
                    .map(|i| i.private_ip)
                    .collect();
                for a in &addrs {
                    batch.push(format!("addr add {a}/32 dev {DEVICE}"));
                }
            }
        }
        batch.push(format!("link set dev {DEVICE} up"));
        // Every destination goes to the VPC router (the forwarder), as on EC2.
        batch.push(format!("route add default dev {DEVICE}"));
        ip_batch(ns, &batch)?;
    }
    Ok(())
}

fn sysctls(ns: &str) -> anyhow::Result<()> {
    // rp_filter off: packets arrive from the forwarder with any source. IPv6 off (non-goal).
    let script = "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter; \
                  echo 0 > /proc/sys/net/ipv4/conf/default/rp_filter; \
                  echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; \
                  echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6";
    run(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", script]))
}

fn ip_batch(ns: &str, lines: &[String]) -> anyhow::Result<()> {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ip")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(lines.join("\n").as_bytes())?;
        stdin.write_all(b"\n")?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "ip -n {ns} -batch failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Removes the namespaces, devices and `/etc/netns` entries of a lab. Each step ignores what is
/// already gone.
pub fn remove(namespaces: &[(String, PortId)]) {
    for (ns, _) in namespaces {
        if netns::exists(ns) {
            // Deleting the device first wakes the worker blocked on it and frees the namespace
            // even while the daemon still holds sockets in it.
            let _ = Command::new("ip")
                .args(["-n", ns, "link", "del", DEVICE])
                .stderr(Stdio::null())
                .status();
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let etc = Path::new("/etc/netns").join(ns);
        if etc.exists() {
            let _ = std::fs::remove_dir_all(etc);
        }
    }
}

/// `vpcsim down`: stops the lab's daemon if it runs, then removes whatever is left.
pub fn down(lab: &str) -> anyhow::Result<bool> {
    let Some(rec) = RunRecord::load(lab)? else {
        return Ok(false);
    };
    if rec.alive() && rec.pid != std::process::id() {
        let pid = nix::unistd::Pid::from_raw(rec.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while pid_is_vpcsim(rec.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if pid_is_vpcsim(rec.pid) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            while pid_is_vpcsim(rec.pid) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    remove(&rec.namespaces);
    let _ = std::fs::remove_file(RunRecord::path(lab));
    let _ = std::fs::remove_file(Path::new(RUN_DIR).join(format!("{lab}.log")));
    Ok(true)
}
