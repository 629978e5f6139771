//! Building and removing a lab's namespaces and TUN devices, and the run record that lets
//! `vpcsim down` remove them after a crash.
//!
//! Invariants:
//! - nothing is created in the root namespace: every `ip` command runs with `-n <lab ns>`;
//! - the run record (`/run/vpcsim/<lab>.json`) is written *before* the first namespace is
//!   created, so whatever exists can always be found and removed;
//! - teardown is idempotent and tolerates any subset of the lab being present.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::dataplane::{AMAZON_DNS, resolver_of};
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
    /// When the daemon started (`/proc/<pid>/stat` field 22, clock ticks since boot): with
    /// `pid`, which process is the daemon, whatever its binary is called and after the pid is
    /// reused. 0 in records written before it was kept: then a process whose `argv[0]` ends in
    /// `vpcsim` is taken for the daemon.
    #[serde(default)]
    pub started: u64,
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
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).context("reading the run record")?))
            }
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
        if self.started == 0 {
            return pid_is_vpcsim(self.pid);
        }
        start_ticks(self.pid) == Some(self.started)
    }
}

/// When process `pid` started, in clock ticks since boot (`/proc/<pid>/stat` field 22); `None`
/// if there is no such process or it has exited (a zombie that its parent has not reaped yet
/// keeps its entry: `down` must not wait for it).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')': the fields
    // after it follow its last ')'. Field 3, the state, is the first of them, so field 22 is
    // the 20th.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

fn pid_is_vpcsim(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).next().is_some_and(|arg0| arg0.ends_with(b"vpcsim")))
        .unwrap_or(false)
}

/// What one namespace of a lab must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsSpec {
    pub port: PortId,
    /// Addresses on the TUN (instances of a subnet).
    pub tun_addrs: BTreeSet<Ipv4Addr>,
    /// Addresses on lo (internet hosts).
    pub lo_addrs: BTreeSet<Ipv4Addr>,
    /// `local` routes on lo (every region's AWS ranges, in the aws namespace).
    pub local_routes: BTreeSet<Ipv4Net>,
    /// The VPC resolver a subnet's `/etc/netns/<ns>/resolv.conf` names, and the search domain
    /// it gives (the region's instance domain, as AWS's default DHCP options set it).
    pub resolver: Option<(Ipv4Addr, String)>,
    /// Addresses this namespace sends back where they came from (the internet namespace:
    /// the lab's public IPs, so that an instance reaching another's public IP goes out through
    /// the internet gateway and back in, as in AWS). Anything else arriving for an address the
    /// namespace does not hold is dropped silently, as without forwarding.
    pub forward_back: Option<Ipv4Net>,
}

/// The namespaces of a world: `<lab>-aws`, `<lab>-internet`, and `<lab>-<subnet>` per subnet
/// that has a port.
pub fn spec(world: &World, port_of: &dyn Fn(&str) -> Option<PortId>) -> BTreeMap<String, NsSpec> {
    let empty = NsSpec {
        port: 0,
        tun_addrs: BTreeSet::new(),
        lo_addrs: BTreeSet::new(),
        local_routes: BTreeSet::new(),
        resolver: None,
        forward_back: None,
    };
    let mut out = BTreeMap::new();
    let aws = NsSpec {
        port: PORT_AWS,
        local_routes: world.prefix_lists.iter().flat_map(|p| p.cidrs.iter().copied()).collect(),
        // Every VPC's resolver (base + 2) answers here, and the Amazon DNS server's link-local
        // address for all of them.
        lo_addrs: world
            .vpcs
            .iter()
            .map(|v| Ipv4Addr::from(resolver_of(v.cidr)))
            .chain([Ipv4Addr::from(AMAZON_DNS)])
            .collect(),
        ..empty.clone()
    };
    out.insert(format!("{}-aws", world.lab), aws);
    let internet = NsSpec {
        port: PORT_INTERNET,
        lo_addrs: world.internet_hosts.iter().map(|h| h.ip).collect(),
        forward_back: Some(crate::model::PUBLIC_IP_RANGE),
        ..empty.clone()
    };
    out.insert(format!("{}-internet", world.lab), internet);
    for s in &world.subnets {
        let Some(port) = port_of(&s.id) else { continue };
        let tun_addrs =
            world.instances.iter().filter(|i| i.subnet == s.id).map(|i| i.private_ip).collect();
        let domain = crate::services::dns::instance_domain(&world.region);
        let resolver = world.vpc(&s.vpc).map(|v| (Ipv4Addr::from(resolver_of(v.cidr)), domain));
        out.insert(
            format!("{}-{}", world.lab, s.name),
            NsSpec { port, tun_addrs, resolver, ..empty.clone() },
        );
    }
    out
}

/// The `ip` commands that turn `old` (None: nothing) into `new` inside one namespace.
/// Which half of the difference between two specs: what `new` adds, or what it removes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Add,
    Remove,
}

/// The `ip` commands for one half of the difference between `old` (none: an empty namespace)
/// and `new`.
fn commands(old: Option<&NsSpec>, new: &NsSpec, half: Half) -> Vec<String> {
    let none = BTreeSet::new();
    let nets = BTreeSet::new();
    let (old_tun, old_lo, old_routes) = match old {
        Some(o) => (&o.tun_addrs, &o.lo_addrs, &o.local_routes),
        None => (&none, &none, &nets),
    };
    let mut cmds = Vec::new();
    if half == Half::Remove {
        for a in old_tun.difference(&new.tun_addrs) {
            cmds.push(format!("addr del {a}/32 dev {DEVICE}"));
        }
        for a in old_lo.difference(&new.lo_addrs) {
            cmds.push(format!("addr del {a}/32 dev lo"));
        }
        for r in old_routes.difference(&new.local_routes) {
            cmds.push(format!("route del local {r} dev lo"));
        }
    } else {
        for a in new.tun_addrs.difference(old_tun) {
            cmds.push(format!("addr add {a}/32 dev {DEVICE}"));
        }
        for a in new.lo_addrs.difference(old_lo) {
            cmds.push(format!("addr add {a}/32 dev lo"));
        }
        for r in new.local_routes.difference(old_routes) {
            cmds.push(format!("route add local {r} dev lo"));
        }
    }
    cmds
}

/// Creates a namespace with its TUN device and everything `spec` says.
pub fn create_ns(ns: &str, spec: &NsSpec) -> anyhow::Result<()> {
    if netns::exists(ns) {
        bail!(
            "namespace {ns} already exists and is not this lab's; remove it (ip netns del {ns}) or rename the lab"
        );
    }
    run(Command::new("ip").args(["netns", "add", ns]))?;
    etc_netns(ns, spec)?;
    // Before the device exists so that it inherits the defaults too.
    sysctls(ns, spec)?;
    ip_batch(ns, &build_commands(spec), false)
}

/// Everything a namespace holds, from nothing: lo, the TUN, `spec`'s addresses and routes, and
/// the default route: every destination goes to the VPC router (the forwarder), as on EC2.
fn build_commands(spec: &NsSpec) -> Vec<String> {
    let mut batch = vec![
        "link set lo up".to_string(),
        format!("tuntap add dev {DEVICE} mode tun multi_queue vnet_hdr"),
        format!("link set dev {DEVICE} txqueuelen 10000"),
    ];
    batch.extend(commands(None, spec, Half::Add));
    batch.push(format!("link set dev {DEVICE} up"));
    batch.push(format!("route replace default dev {DEVICE}"));
    if let Some(net) = spec.forward_back {
        // Forwarded packets (those from the TUN: rule 100; the local table comes first, so
        // what the namespace holds is still delivered) go back only to `net`.
        batch.push(format!("route replace {net} dev {DEVICE} table {FORWARD_TABLE}"));
        batch.push(format!("route replace blackhole default table {FORWARD_TABLE}"));
        batch.push(format!("rule add pref 100 iif {DEVICE} lookup {FORWARD_TABLE}"));
    }
    batch
}

/// The routing table of [`NsSpec::forward_back`].
const FORWARD_TABLE: u32 = 100;

/// Brings an existing namespace of a crashed run back to `spec` (reattach): what is missing is
/// added, and the addresses and `local` routes the crashed run had that `spec` lacks (an
/// instance added or terminated through the API since the world last started, a prefix
/// list's old range) are removed; the rest stays (a shell in the namespace keeps working).
pub fn ensure_ns(ns: &str, spec: &NsSpec) -> anyhow::Result<()> {
    etc_netns(ns, spec)?;
    sysctls(ns, spec)?;
    // "File exists" for what is already there is expected: keep going.
    ip_batch(ns, &build_commands(spec), true)?;
    let addrs = ip_json(ns, &["-4", "addr", "show"])?;
    // Ours only: `ip route add local` makes them with protocol boot, the kernel's own (for
    // each address) have protocol kernel.
    let routes = ip_json(
        ns,
        &["route", "show", "table", "local", "type", "local", "dev", "lo", "proto", "boot"],
    )?;
    let stale = stale_commands(spec, &addrs, &routes);
    if !stale.is_empty() {
        ip_batch(ns, &stale, false).with_context(|| format!("removing what {ns} no longer has"))?;
    }
    run(Command::new("ip").args(["-n", ns, "link", "show", DEVICE]))
}

/// `ip -n <ns> -j <args>`, parsed.
fn ip_json(ns: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!("ip -n {ns} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading ip -n {ns} {}", args.join(" ")))
}

/// The commands that remove what a namespace holds beyond `spec`: IPv4 addresses on the TUN and
/// on lo (but lo's loopback addresses), from `ip -j -4 addr show`; `local` routes on lo, from
/// `ip -j route show table local type local dev lo proto boot`.
fn stale_commands(
    spec: &NsSpec,
    addrs: &serde_json::Value,
    routes: &serde_json::Value,
) -> Vec<String> {
    let mut cmds = Vec::new();
    for link in addrs.as_array().into_iter().flatten() {
        let dev = link["ifname"].as_str().unwrap_or_default();
        let want = match dev {
            DEVICE => &spec.tun_addrs,
            "lo" => &spec.lo_addrs,
            _ => continue,
        };
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let ip = a["local"].as_str().and_then(|s| s.parse::<Ipv4Addr>().ok());
            let (Some(ip), Some(len)) = (ip, a["prefixlen"].as_u64()) else { continue };
            if a["family"] != "inet" || (dev == "lo" && ip.is_loopback()) {
                continue;
            }
            if len != 32 || !want.contains(&ip) {
                cmds.push(format!("addr del {ip}/{len} dev {dev}"));
            }
        }
    }
    for r in routes.as_array().into_iter().flatten() {
        let Some(dst) = r["dst"].as_str() else { continue };
        // A host route is shown without its /32.
        let net = match dst.parse::<Ipv4Net>() {
            Ok(n) => n,
            Err(_) => match dst.parse::<Ipv4Addr>() {
                Ok(a) => Ipv4Net::from(a),
                Err(_) => continue,
            },
        };
        if !spec.local_routes.contains(&net) {
            cmds.push(format!("route del local {net} dev lo"));
        }
    }
    cmds
}

/// Where `ip netns exec` finds a namespace's own files, which it mounts over `/etc`'s.
const ETC_NETNS: &str = "/etc/netns";

/// The first line of every `resolv.conf` vpcsim writes: what tells its own file from the user's.
const RESOLV_MARK: &str = "# the VPC resolver (vpcsim)";

/// `/etc/netns/<ns>/`, which `ip netns exec` mounts over `/etc`: a subnet gets a `resolv.conf`
/// naming its VPC's resolver and, as on an instance with AWS's default DHCP options set
/// (`domain-name` `ec2.internal` in us-east-1, `<region>.compute.internal` elsewhere), the
/// search domain, so that `ip-10-0-1-10` alone resolves.
///
/// The directory is the user's too (README: "an `/etc/netns/<ns>/` for your own files"): only
/// `resolv.conf` is written, and only where there is none or it is one vpcsim wrote ([`ours`]);
/// a `resolv.conf` of the user's is kept, with a warning (the namespace then resolves as it
/// says, not through the VPC resolver).
fn etc_netns(ns: &str, spec: &NsSpec) -> anyhow::Result<()> {
    etc_netns_in(Path::new(ETC_NETNS), ns, spec)
}

fn etc_netns_in(base: &Path, ns: &str, spec: &NsSpec) -> anyhow::Result<()> {
    let dir = base.join(ns);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some((r, domain)) = &spec.resolver {
        let path = dir.join("resolv.conf");
        match resolv_conf_state(&path).with_context(|| format!("reading {}", path.display()))? {
            ResolvConf::Absent | ResolvConf::Ours => {
                std::fs::write(&path, format!("{RESOLV_MARK}\nnameserver {r}\nsearch {domain}\n"))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            ResolvConf::Theirs => tracing::warn!(
                file = %path.display(),
                "keeping your own resolv.conf: the namespace resolves as it says, not through the \
                 VPC resolver {r}; remove it for the lab's"
            ),
        }
    }
    Ok(())
}

/// What a namespace's `resolv.conf` is.
#[derive(Debug, PartialEq, Eq)]
enum ResolvConf {
    Absent,
    /// A regular file holding exactly what vpcsim writes ([`ours`]).
    Ours,
    /// Anything else: the user's (edited, a symlink, another content).
    Theirs,
}

fn resolv_conf_state(path: &Path) -> std::io::Result<ResolvConf> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ResolvConf::Absent),
        Err(e) => return Err(e),
        Ok(m) if !m.is_file() => return Ok(ResolvConf::Theirs),
        Ok(_) => {}
    }
    let bytes = std::fs::read(path)?;
    let mine = std::str::from_utf8(&bytes).is_ok_and(ours);
    Ok(if mine { ResolvConf::Ours } else { ResolvConf::Theirs })
}

/// Whether `text` is a `resolv.conf` as vpcsim writes it, unchanged: the mark, a `nameserver`
/// line and a `search` line (versions before the search domain wrote none).
fn ours(text: &str) -> bool {
    let Some(body) = text.strip_suffix('\n') else { return false };
    let mut lines = body.split('\n');
    let nameserver = lines.next() == Some(RESOLV_MARK)
        && lines
            .next()
            .and_then(|l| l.strip_prefix("nameserver "))
            .is_some_and(|a| a.parse::<Ipv4Addr>().is_ok());
    let search = match lines.next() {
        None => true,
        Some(l) => l.strip_prefix("search ").is_some_and(|d| {
            !d.is_empty() && d.bytes().all(|c| c.is_ascii_alphanumeric() || b".-".contains(&c))
        }),
    };
    nameserver && search && lines.next().is_none()
}

/// Removes what [`etc_netns`] made in `/etc/netns/<ns>/`: its `resolv.conf` if it is still
/// vpcsim's, then the directory if nothing else is left in it. The user's files stay, and so
/// does the directory that holds them.
fn remove_etc_netns(base: &Path, ns: &str) {
    let dir = base.join(ns);
    let path = dir.join("resolv.conf");
    if matches!(resolv_conf_state(&path), Ok(ResolvConf::Ours)) {
        let _ = std::fs::remove_file(&path);
    }
    // `remove_dir` removes an empty directory only.
    let _ = std::fs::remove_dir(&dir);
}

/// Applies one half of the difference between two specs of one namespace. A change adds
/// before the data plane routes to what it adds, and removes after the flows it moved were
/// reset: the RST to a remote side (an S3 address a prefix list no longer holds) must still
/// find its address.
pub fn update_ns(ns: &str, old: &NsSpec, new: &NsSpec, half: Half) -> anyhow::Result<()> {
    let cmds = commands(Some(old), new, half);
    if cmds.is_empty() { Ok(()) } else { ip_batch(ns, &cmds, false) }
}

/// Undoes [`update_ns`]'s `Half::Add` from `old` to `new` (all of it or the part that was
/// done before a command failed): what `new` adds is removed again, ignoring what is absent.
pub fn undo_add(ns: &str, old: &NsSpec, new: &NsSpec) {
    let cmds = commands(Some(new), old, Half::Remove);
    if !cmds.is_empty() {
        let _ = ip_batch(ns, &cmds, true);
    }
}

fn sysctls(ns: &str, spec: &NsSpec) -> anyhow::Result<()> {
    // rp_filter off: packets arrive from the forwarder with any source. IPv6 off (non-goal).
    let mut script = "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter; \
                      echo 0 > /proc/sys/net/ipv4/conf/default/rp_filter; \
                      echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; \
                      echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"
        .to_string();
    if spec.forward_back.is_some() {
        // A packet forwarded back out of the device it came in on would make the kernel send
        // the source an ICMP redirect: none.
        script.push_str(
            "; echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects; \
             echo 0 > /proc/sys/net/ipv4/conf/default/send_redirects; \
             echo 1 > /proc/sys/net/ipv4/ip_forward",
        );
    }
    run(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", &script]))
}

fn ip_batch(ns: &str, lines: &[String], force: bool) -> anyhow::Result<()> {
    let mut args = vec!["-n", ns];
    if force {
        args.push("-force");
    }
    args.extend(["-batch", "-"]);
    let mut child = Command::new("ip")
        .args(&args)
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
    if !out.status.success() && !force {
        bail!("ip -n {ns} -batch failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Removes the namespaces, devices and `/etc/netns` entries of a lab (only what vpcsim wrote
/// there: see [`remove_etc_netns`]). Each step ignores what is already gone.
pub fn remove(namespaces: &[(String, PortId)]) {
    for (ns, _) in namespaces {
        if netns::exists(ns) {
            // Deleting the device first wakes the worker blocked on it and frees the namespace
            // even while the daemon still holds sockets in it.
            let _ = Command::new("ip")
                .args(["-n", ns, "link", "del", DEVICE])
                .stderr(Stdio::null())
                .status();
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
        remove_etc_netns(Path::new(ETC_NETNS), ns);
    }
}

/// What `vpcsim down` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Down {
    /// The lab was up (or crashed): its daemon stopped, everything removed.
    Removed,
    /// No run record: the lab was not up. `logs`: the logs a failed `up --detach` left, removed.
    NotUp { logs: Vec<PathBuf> },
}

/// `vpcsim down`: stops the lab's daemon if it runs, then removes whatever is left: its
/// namespaces, its run record, its logs (the last run's and the one before) and its lock file.
pub fn down(lab: &str) -> anyhow::Result<Down> {
    let Some(rec) = RunRecord::load(lab)? else {
        // A failed `up --detach` leaves a log and no record.
        let mut logs = Vec::new();
        super::lock::unless_locked(lab, || logs = remove_logs(lab));
        return Ok(Down::NotUp { logs });
    };
    if rec.alive() && rec.pid != std::process::id() {
        let pid = nix::unistd::Pid::from_raw(rec.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while rec.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if rec.alive() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            while rec.alive() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    remove(&rec.namespaces);
    let _ = std::fs::remove_file(RunRecord::path(lab));
    // Unless another `up` of the lab has started meanwhile: the logs are its own then.
    super::lock::unless_locked(lab, || {
        remove_logs(lab);
    });
    Ok(Down::Removed)
}

/// Removes the lab's logs; the ones that were there.
fn remove_logs(lab: &str) -> Vec<PathBuf> {
    [format!("{lab}.log"), format!("{lab}.log.1"), format!("{lab}.log.failed")]
        .into_iter()
        .map(|log| Path::new(RUN_DIR).join(log))
        .filter(|path| std::fs::remove_file(path).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory standing in for `/etc/netns`.
    fn scratch_etc(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vpcsim-etc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn subnet_spec() -> NsSpec {
        NsSpec {
            port: 3,
            tun_addrs: BTreeSet::new(),
            lo_addrs: BTreeSet::new(),
            local_routes: BTreeSet::new(),
            resolver: Some((Ipv4Addr::new(10, 0, 0, 2), "ec2.internal".into())),
            forward_back: None,
        }
    }

    #[test]
    fn the_users_files_in_etc_netns_survive_down() {
        let base = scratch_etc("keep");
        etc_netns_in(&base, "lab-a", &subnet_spec()).unwrap();
        let conf = base.join("lab-a/resolv.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(ours(&text), "{text}");
        assert!(text.contains("nameserver 10.0.0.2\nsearch ec2.internal\n"), "{text}");
        std::fs::write(base.join("lab-a/hosts"), "10.0.1.10 mine\n").unwrap();
        remove_etc_netns(&base, "lab-a");
        assert!(!conf.exists(), "vpcsim's resolv.conf is removed");
        assert_eq!(std::fs::read_to_string(base.join("lab-a/hosts")).unwrap(), "10.0.1.10 mine\n");
        // Up again: resolv.conf is written anew next to the user's file.
        etc_netns_in(&base, "lab-a", &subnet_spec()).unwrap();
        assert!(ours(&std::fs::read_to_string(&conf).unwrap()));
        assert!(base.join("lab-a/hosts").exists());
        // Without files of the user's, nothing is left.
        etc_netns_in(&base, "lab-aws", &NsSpec { resolver: None, ..subnet_spec() }).unwrap();
        etc_netns_in(&base, "lab-b", &subnet_spec()).unwrap();
        remove_etc_netns(&base, "lab-aws");
        remove_etc_netns(&base, "lab-b");
        assert!(!base.join("lab-aws").exists() && !base.join("lab-b").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_resolv_conf_of_the_users_is_neither_overwritten_nor_removed() {
        let base = scratch_etc("theirs");
        std::fs::create_dir_all(base.join("lab-a")).unwrap();
        let conf = base.join("lab-a/resolv.conf");
        let mine = "nameserver 10.0.0.2\noptions timeout:1\n";
        std::fs::write(&conf, mine).unwrap();
        etc_netns_in(&base, "lab-a", &subnet_spec()).unwrap();
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), mine, "up keeps it");
        remove_etc_netns(&base, "lab-a");
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), mine, "down keeps it");
        // vpcsim's file edited by the user is the user's now.
        let edited =
            format!("{RESOLV_MARK}\nnameserver 10.0.0.2\nsearch ec2.internal\noptions ndots:2\n");
        std::fs::write(&conf, &edited).unwrap();
        remove_etc_netns(&base, "lab-a");
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited);
        // One an earlier vpcsim wrote (no search line) is vpcsim's.
        std::fs::write(&conf, format!("{RESOLV_MARK}\nnameserver 10.0.0.2\n")).unwrap();
        etc_netns_in(&base, "lab-a", &subnet_spec()).unwrap();
        assert!(std::fs::read_to_string(&conf).unwrap().contains("search ec2.internal"));
        // A symlink is the user's, even a dangling one (writing through it would create its
        // target).
        std::fs::remove_file(&conf).unwrap();
        std::os::unix::fs::symlink(base.join("nowhere"), &conf).unwrap();
        etc_netns_in(&base, "lab-a", &subnet_spec()).unwrap();
        remove_etc_netns(&base, "lab-a");
        assert!(std::fs::symlink_metadata(&conf).is_ok() && !base.join("nowhere").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn ours_is_exactly_what_vpcsim_writes() {
        assert!(ours(&format!("{RESOLV_MARK}\nnameserver 10.0.0.2\nsearch ec2.internal\n")));
        assert!(ours(&format!("{RESOLV_MARK}\nnameserver 10.0.0.2\n")));
        for t in [
            "",
            "nameserver 10.0.0.2\n",
            &format!("{RESOLV_MARK}\nnameserver 10.0.0.2"),
            &format!("{RESOLV_MARK}\nnameserver 10.0.0.2\nsearch ec2.internal\n\n"),
            &format!("{RESOLV_MARK}\nnameserver 1.1.1.1 \n"),
            &format!("{RESOLV_MARK}\nnameserver 10.0.0.2\nsearch a b\n"),
        ] {
            assert!(!ours(t), "{t:?}");
        }
    }

    fn record(pid: u32, started: u64) -> RunRecord {
        RunRecord {
            lab: "t".into(),
            pid,
            started,
            api: String::new(),
            state_dir: PathBuf::new(),
            namespaces: Vec::new(),
        }
    }

    /// Reattaching to a crashed run's namespace removes what the world no longer has: an
    /// instance added through the API before the crash (its address on the TUN), an internet
    /// host's address, an old range of a prefix list (a `local` route on lo); lo's loopback
    /// addresses and what the spec has stay.
    #[test]
    fn reattach_removes_what_the_spec_lacks() {
        let spec = NsSpec {
            port: 2,
            tun_addrs: ["10.0.1.10".parse().unwrap()].into(),
            lo_addrs: ["198.51.100.10".parse().unwrap()].into(),
            local_routes: ["54.123.160.0/19".parse().unwrap()].into(),
            resolver: None,
            forward_back: None,
        };
        let addrs: serde_json::Value = serde_json::from_str(
            r#"[{"ifindex":1,"ifname":"lo","addr_info":[
                  {"family":"inet","local":"127.0.0.1","prefixlen":8},
                  {"family":"inet","local":"198.51.100.10","prefixlen":32},
                  {"family":"inet","local":"198.51.100.20","prefixlen":32}]},
                {"ifindex":2,"ifname":"vpcsim0","addr_info":[
                  {"family":"inet","local":"10.0.1.10","prefixlen":32},
                  {"family":"inet","local":"10.0.1.50","prefixlen":32},
                  {"family":"inet","local":"10.0.1.10","prefixlen":24}]},
                {"ifindex":3,"ifname":"other0","addr_info":[
                  {"family":"inet","local":"192.0.2.1","prefixlen":32}]}]"#,
        )
        .unwrap();
        let routes: serde_json::Value = serde_json::from_str(
            r#"[{"type":"local","dst":"54.123.160.0/19","scope":"host","flags":[]},
                {"type":"local","dst":"54.200.0.0/16","scope":"host","flags":[]},
                {"type":"local","dst":"100.64.0.1","scope":"host","flags":[]}]"#,
        )
        .unwrap();
        assert_eq!(
            stale_commands(&spec, &addrs, &routes),
            [
                "addr del 198.51.100.20/32 dev lo",
                "addr del 10.0.1.50/32 dev vpcsim0",
                "addr del 10.0.1.10/24 dev vpcsim0",
                "route del local 54.200.0.0/16 dev lo",
                "route del local 100.64.0.1/32 dev lo",
            ]
        );
        let empty = serde_json::Value::Array(Vec::new());
        assert!(stale_commands(&spec, &empty, &empty).is_empty());
    }

    /// The daemon is known by its pid and start time, not by its binary's name: this test
    /// binary is not called `vpcsim`, and a copy of vpcsim under another name must be stopped
    /// by `down` too, not left running while its namespaces are removed.
    #[test]
    fn alive_is_the_pid_and_its_start_time() {
        let me = std::process::id();
        let started = start_ticks(me).expect("our own start time");
        assert!(started > 0);
        assert!(record(me, started).alive());
        // The same pid with another start time: the pid was reused.
        assert!(!record(me, started + 1).alive());
        // An old record (no start time) falls back to the binary's name.
        assert!(!record(me, 0).alive());
        assert!(!record(u32::MAX, started).alive());
        // A child that has exited but is not reaped yet is a zombie: gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let child_started = start_ticks(pid);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        {
            assert!(std::time::Instant::now() < deadline, "child {pid} did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(start_ticks(pid), None);
        if let Some(t) = child_started {
            assert!(!record(pid, t).alive());
        }
        child.wait().unwrap();
        // Records written before the field was kept still load.
        let old = r#"{"lab":"t","pid":1,"api":"","state_dir":"","namespaces":[]}"#;
        assert_eq!(serde_json::from_str::<RunRecord>(old).unwrap().started, 0);
    }
}
