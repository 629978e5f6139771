//! The `vpcsim` command line.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use vpcsim::fib::extra;
use vpcsim::lab::daemon::{self, UpOptions};
use vpcsim::lab::file;
use vpcsim::lab::setup::{self, RUN_DIR, RunRecord};
use vpcsim::model::{Target, World};
use vpcsim::services::api::Status;

#[derive(Parser)]
#[command(
    name = "vpcsim",
    version,
    about = "A packet-level simulator of the AWS VPC data plane around gateway endpoints to S3"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a lab (the embedded default, or LAB_FILE) and run it until SIGINT/SIGTERM.
    Up {
        /// A lab file (TOML); without it, the embedded default lab `demo`.
        lab_file: Option<PathBuf>,
        /// Where the control API listens (a loopback address; any other is refused).
        #[arg(long, default_value = "127.0.0.1:4599")]
        api_listen: SocketAddr,
        /// Where buckets and objects are kept [default: /var/lib/vpcsim/<lab>].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Return once the lab is ready, leaving a daemon (log: /run/vpcsim/<lab>.log).
        #[arg(long)]
        detach: bool,
        /// Start over from the lab file even if the state dir holds a saved world (the old
        /// state dir is moved aside, not deleted).
        #[arg(long)]
        fresh: bool,
        /// Benchmarks: a file of IPv4 prefixes (one per line; a raw BGP dump works) added to
        /// one route table's forwarding table in the data plane only (not listed, not saved).
        #[arg(long, requires = "extra_routes_table")]
        extra_routes: Option<PathBuf>,
        /// The route table (`rtb-…`) that gets the extra routes.
        #[arg(long, requires = "extra_routes")]
        extra_routes_table: Option<String>,
        /// Where the extra routes go: `blackhole` or an internet gateway (`igw-…`).
        #[arg(long, default_value = "blackhole", requires = "extra_routes")]
        extra_routes_target: String,
        /// Internal: the lab's and the state dir's locks, taken by `up --detach` and handed to
        /// the daemon it starts as inherited descriptors ("<lab>,<state>").
        #[arg(long, hide = true)]
        lock_fds: Option<String>,
    },
    /// Stop a lab's daemon and remove its namespaces, devices and what it wrote in /etc/netns.
    Down {
        #[arg(default_value = "demo", value_parser = lab_name)]
        lab: String,
    },
    /// Show a running lab's counters: forwarded packets, flows, drops by reason.
    Status {
        #[arg(default_value = "demo", value_parser = lab_name)]
        lab: String,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change an AWS-managed prefix list's CIDRs in a running lab (an AWS-side event: the
    /// guide warns that a service's ranges "may change from time to time"); flows whose path
    /// changes are reset.
    PrefixList {
        /// The prefix list, e.g. pl-1a2b3c4d.
        id: String,
        /// The new CIDRs.
        #[arg(required = true)]
        cidrs: Vec<String>,
        #[arg(long, default_value = "demo", value_parser = lab_name)]
        lab: String,
    },
    /// Validate a lab file and print what it builds, without building it.
    Check { lab_file: Option<PathBuf> },
}

/// A lab name as `up` takes it (a lab file's `name`), for the commands that name a lab.
fn lab_name(s: &str) -> Result<String, String> {
    vpcsim::model::check_lab_name(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vpcsim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_world(lab_file: Option<&PathBuf>) -> anyhow::Result<World> {
    let world = match lab_file {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            file::parse_bytes(&path.display().to_string(), &bytes)?
        }
        None => file::parse("netns/demo.toml (embedded)", file::DEFAULT_LAB)?,
    };
    Ok(world)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Up {
            lab_file,
            api_listen,
            state_dir,
            detach,
            fresh,
            extra_routes,
            extra_routes_table,
            extra_routes_target,
            lock_fds,
        } => {
            let world = load_world(lab_file.as_ref())?;
            let extra = match (&extra_routes, &extra_routes_table) {
                (Some(path), Some(table)) => {
                    let target = match extra_routes_target.as_str() {
                        "blackhole" => Target::Blackhole,
                        id => Target::Igw(id.to_string()),
                    };
                    Some((extra::load(&world, table, target, path)?, path))
                }
                _ => None,
            };
            if detach {
                let extra_args = extra.as_ref().map(|(e, path)| {
                    [
                        "--extra-routes".into(),
                        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).into(),
                        "--extra-routes-table".into(),
                        e.table.clone().into(),
                        "--extra-routes-target".into(),
                        extra_routes_target.clone().into(),
                    ]
                });
                return detach_up(&world, lab_file, api_listen, state_dir, fresh, extra_args);
            }
            if let Some((e, _)) = extra {
                println!(
                    "extra routes: {} prefixes -> {} in {} (data plane only)",
                    e.prefixes.len(),
                    extra_routes_target,
                    e.table
                );
                extra::install(e)?;
            }
            daemon::up(world, UpOptions { api_listen, state_dir, fresh, lock_fds })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down { lab } => {
            match setup::down(&lab)? {
                setup::Down::Removed => println!("down: lab {lab} removed"),
                setup::Down::NotUp { logs } if !logs.is_empty() => {
                    let logs: Vec<_> = logs.iter().map(|l| l.display().to_string()).collect();
                    println!(
                        "down: lab {lab} is not up; removed the log of its failed up: {}",
                        logs.join(", ")
                    );
                }
                setup::Down::NotUp { .. } => {
                    println!("down: lab {lab} is not up; nothing to remove")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { lab, json } => status(&lab, json),
        Cmd::PrefixList { id, cidrs, lab } => {
            let Some(rec) = RunRecord::load(&lab)?.filter(|r| r.alive()) else {
                bail!("lab {lab} is not up");
            };
            let answer = http_request(
                &rec.api,
                "PUT",
                &format!("/_vpcsim/prefix-lists/{id}"),
                &cidrs.join(" "),
            )?;
            println!("{}", answer.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check { lab_file } => {
            let w = load_world(lab_file.as_ref())?;
            println!(
                "ok: lab {} in {}: {} VPCs, {} subnets, {} route tables, {} endpoints, {} instances, {} buckets",
                w.lab,
                w.region,
                w.vpcs.len(),
                w.subnets.len(),
                w.route_tables.len(),
                w.endpoints.len(),
                w.instances.len(),
                w.buckets.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Starts `vpcsim up` as a daemon in its own process group with its output in a log file, and
/// returns once it printed `ready:` (or failed). The lab's and the state dir's locks are taken
/// here, before the log is touched, and handed to the daemon.
fn detach_up(
    world: &World,
    lab_file: Option<PathBuf>,
    api: SocketAddr,
    state_dir: Option<PathBuf>,
    fresh: bool,
    extra_args: Option<[std::ffi::OsString; 6]>,
) -> anyhow::Result<ExitCode> {
    let dir = daemon::state_dir_of(&world.lab, state_dir.as_deref());
    // Before the log is touched: a lab already up keeps its log.
    let locks = daemon::precheck(&world.lab, api, &dir, None)?;
    let started = (|| -> anyhow::Result<_> {
        std::fs::create_dir_all(RUN_DIR)?;
        let log_path = PathBuf::from(RUN_DIR).join(format!("{}.log", world.lab));
        // The previous run's log (a crashed daemon's, say) is kept beside the new one.
        let rotated = log_path.exists();
        if rotated {
            let old = log_path.with_extension("log.1");
            std::fs::rename(&log_path, &old)
                .with_context(|| format!("keeping the previous log as {}", old.display()))?;
        }
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("up");
        if let Some(f) = &lab_file {
            cmd.arg(std::fs::canonicalize(f)?);
        }
        cmd.arg("--api-listen").arg(api.to_string());
        if let Some(d) = &state_dir {
            cmd.arg("--state-dir").arg(d);
        }
        if fresh {
            cmd.arg("--fresh");
        }
        cmd.args(extra_args.into_iter().flatten());
        cmd.arg("--lock-fds").arg(locks.inheritable()?);
        use std::os::unix::process::CommandExt;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the lab daemon")?;
        Ok((child, log_path, rotated))
    })();
    let (mut child, log_path, rotated) = match started {
        Ok(x) => x,
        Err(e) => {
            locks.lab.remove();
            return Err(e);
        }
    };
    // From here the daemon holds the locks too. If it exits, it has removed the lab's lock
    // file and unlocked both (for this process as well: they share the open files), so they
    // are only dropped here, never removed.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with("ready:")) {
            locks.hand_over();
            println!("{line} pid {} log {}", child.id(), log_path.display());
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            eprint!("{text}");
            // An `up` that failed changes nothing: the previous run's log (a crashed daemon's,
            // which the next `up` or the user still needs) goes back to its place, and this
            // one's output, printed above, is kept as `<lab>.log.failed` (`down` removes it).
            if rotated {
                let failed = log_path.with_extension("log.failed");
                let _ = std::fs::rename(&log_path, &failed);
                let _ = std::fs::rename(log_path.with_extension("log.1"), &log_path);
                eprintln!("(this up's output is kept in {})", failed.display());
            }
            // The daemon adopted the locks and cannot know this `up` made the state dir.
            if locks.made_state_dir {
                vpcsim::lab::lock::remove_bare_state_dir(&dir);
            }
            bail!("the lab daemon exited ({status}) before it was ready");
        }
        if Instant::now() > deadline {
            locks.hand_over();
            eprint!("{text}");
            bail!("the lab daemon was not ready within 120 s; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(lab: &str, json: bool) -> anyhow::Result<ExitCode> {
    let Some(rec) = RunRecord::load(lab)? else {
        println!("lab {lab} is not up");
        return Ok(ExitCode::FAILURE);
    };
    if !rec.alive() {
        println!(
            "lab {lab} is not running (pid {} is gone); `vpcsim down {lab}` removes what it left",
            rec.pid
        );
        return Ok(ExitCode::FAILURE);
    }
    let body = http_request(&rec.api, "GET", "/_vpcsim/status", "")?;
    if json {
        print!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let s: Status = serde_json::from_str(&body).context("reading the status")?;
    println!(
        "lab {} ({}), pid {}, up {} s, snapshot {}",
        s.lab, s.region, s.pid, s.uptime_secs, s.snapshot_generation
    );
    println!("namespaces: {}", s.namespaces.join(" "));
    println!(
        "forwarded: {} packets, {} bytes; tracked flows: {} (reset scans: {})",
        s.forwarded_packets, s.forwarded_bytes, s.flows, s.reset_scans
    );
    println!("tun errors: rx {}, tx {}", s.rx_errors, s.tx_errors);
    println!("drops:");
    for (reason, n) in &s.drops {
        println!("  {reason:<20} {n}");
    }
    if !s.filter_drops.is_empty() {
        println!("dropped by security group or network ACL rule:");
        for (rule, n) in &s.filter_drops {
            println!("  {n:>8}  {rule}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A minimal HTTP/1.0 request to the loopback API.
fn http_request(addr: &str, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
    let mut s =
        std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let len = body.len();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {len}\r\n\r\n{body}")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("{} {path}: {} {}", method, head.lines().next().unwrap_or(""), body.trim());
    }
    Ok(body.to_string())
}
