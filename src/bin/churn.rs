//! `churn`: the route-update generator of `scripts/bench-churn` (issue 6, benchmark 4: route
//! churn during TCP bulk), and the in-process visibility measurement of one route update.
//!
//! - `churn ec2 --api ADDR --rate R --secs S --threads T`: EC2 `CreateRoute` / `DeleteRoute`
//!   form posts to the lab's API, alternating an add and a delete of `100.64.x.y/32 -> igw` in
//!   `rtb-0a0a0a0a` (subnet a's own table of the demo lab; `--table`/`--gateway` to change),
//!   SigV4-signed (the crate's own signing helpers) over T keep-alive HTTP/1.1 connections.
//!   Tickets are handed out at R/s from one schedule (`due = n / R`); a thread sleeps until its
//!   ticket is due (it never spins), so a late call is caught up on. Every answer must be 200,
//!   or the tool exits non-zero. The last add of each thread is always deleted again, so the
//!   table ends as it started.
//! - `churn ip --ns NS --rate R --secs S`: the same schedule as `route add|del` lines into one
//!   `ip -n NS -batch -` (the kernel baseline).
//!
//!   Both print `updates N secs S rate R cpu_s C [latency_us p50 A p99 B max M]` (cpu_s: this
//!   process's CPU time plus its children's, i.e. `ip`'s; latency: one API call, request
//!   written to answer read).
//! - `churn visibility --lab FILE --updates N --state-dir DIR [--extra-routes FILE]`: the
//!   lab's control plane in process (no namespaces, no workers): the world loaded from the
//!   lab file as `vpcsim up` does (with the extra routes in subnet c's table, blackholed, as
//!   `vpcsim up --extra-routes` would), then N route changes in subnet c's table (alternating CreateRoute and DeleteRoute
//!   of a 100.64.x.y/32 -> igw, decided by the EC2 handler the API calls, then through
//!   [`Control::change`], the path every API change takes: validate, compile, publish,
//!   persist with fsync, answer) while a reader thread spins on the published snapshot like a worker
//!   does. Visibility of one update: from just before `Control::change` is called to the
//!   reader's first lookup that sees the new route. Prints
//!   `visibility updates N p50_us A p99_us B max_us M apply_p50_us C apply_p99_us D
//!   decided_p50_us E decided_p99_us F`, where apply is the duration of the `change` call
//!   itself and decided is the visibility counted from the moment the EC2 handler has validated
//!   the call and made the new world (the control plane's own part, as the kernel's is counted
//!   from the netlink message, not from `ip` parsing its arguments).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use vpcsim::services::sigv4;

#[path = "shared/rusage.rs"]
mod rusage;
use rusage::cpu_secs;

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const REGION: &str = "us-east-1";
const CTYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

#[derive(Parser)]
#[command(name = "churn", about = "Paced route updates (EC2 API or ip -batch); visibility")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// CreateRoute/DeleteRoute through the lab's EC2 API.
    Ec2 {
        /// The lab's API address (host:port).
        #[arg(long)]
        api: String,
        /// Updates per second over all connections; 0 = as fast as possible.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Keep-alive connections, one thread each.
        #[arg(long, default_value_t = 4)]
        threads: usize,
        #[arg(long, default_value = "rtb-0a0a0a0a")]
        table: String,
        #[arg(long, default_value = "igw-1a2b3c4d")]
        gateway: String,
    },
    /// `route add|del` lines into `ip -n NS -batch -`.
    Ip {
        #[arg(long)]
        ns: String,
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// The next hop of the added routes.
        #[arg(long, default_value = "10.9.2.2")]
        via: Ipv4Addr,
    },
    /// In-process: route changes through the control path, a reader on the snapshot.
    Visibility {
        /// The lab file (netns/demo.toml).
        #[arg(long)]
        lab: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        updates: usize,
        /// The state dir (world.json and the journal; tmpfs for the figure the benchmark reports).
        #[arg(long)]
        state_dir: PathBuf,
        /// The subnet whose route table is changed (by name in the lab file). Its table must
        /// not already send 100.64.0.0/16 to the gateway (in the demo lab, c's does not; a's
        /// default route does, which would make the change invisible to a lookup).
        #[arg(long, default_value = "c")]
        subnet: String,
        #[arg(long, default_value = "igw-1a2b3c4d")]
        gateway: String,
        /// Extra routes for the subnet's table, as `vpcsim up --extra-routes` (blackholed, so
        /// that none of them hides a churned /32 to the gateway): benchmark 4's table.
        #[arg(long)]
        extra_routes: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let r = match Cli::parse().cmd {
        Cmd::Ec2 { api, rate, secs, threads, table, gateway } => {
            ec2(&api, rate, secs, threads, &table, &gateway)
        }
        Cmd::Ip { ns, rate, secs, via } => ip(&ns, rate, secs, via),
        Cmd::Visibility { lab, updates, state_dir, subnet, gateway, extra_routes } => {
            visibility(&lab, updates, &state_dir, &subnet, &gateway, extra_routes.as_deref())
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("churn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The i-th /32 of 100.64.0.0/16.
fn cidr(i: usize) -> String {
    format!("100.64.{}.{}/32", (i >> 8) & 0xff, i & 0xff)
}

/// One schedule for all threads: ticket n is due at n / rate seconds after the start.
struct Pacer {
    start: Instant,
    rate: f64,
    secs: f64,
    next: AtomicU64,
}

impl Pacer {
    /// Waits for the next ticket; `false` once the run is over.
    fn ticket(&self) -> bool {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let due = if self.rate > 0.0 { n as f64 / self.rate } else { 0.0 };
        let now = self.start.elapsed().as_secs_f64();
        if due >= self.secs || now >= self.secs {
            return false;
        }
        if due > now {
            std::thread::sleep(Duration::from_secs_f64(due - now));
        }
        true
    }
}

/// Runs `threads` workers on one schedule. A worker is called with its own sequence number j
/// (0, 1, …) per ticket and with `None` once at the end. Returns the elapsed seconds.
fn paced<W: FnMut(Option<usize>) -> anyhow::Result<()> + Send>(
    rate: f64,
    secs: f64,
    workers: Vec<W>,
) -> anyhow::Result<f64> {
    let pacer = Pacer { start: Instant::now(), rate, secs, next: AtomicU64::new(0) };
    std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|mut w| {
                let pacer = &pacer;
                s.spawn(move || -> anyhow::Result<()> {
                    let mut j = 0;
                    while pacer.ticket() {
                        w(Some(j))?;
                        j += 1;
                    }
                    w(None)
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a churn thread panicked"))??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(pacer.start.elapsed().as_secs_f64())
}

/// `p` in 0..=1 of sorted durations, in µs (nearest rank, as the Python churner did).
fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn report(count: usize, secs: f64, mut lat: Vec<Duration>) {
    let mut line = format!(
        "updates {count} secs {secs:.3} rate {:.0} cpu_s {:.2}",
        count as f64 / secs,
        cpu_secs()
    );
    if !lat.is_empty() {
        lat.sort_unstable();
        line += &format!(
            " latency_us p50 {:.0} p99 {:.0} max {:.0}",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 1.0)
        );
    }
    println!("{line}");
}

/// One keep-alive HTTP/1.1 connection to the EC2 API, signing each call.
struct Ec2Client {
    host: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The signing key of a date (`YYYYMMDD`).
    key: Option<(String, [u8; 32])>,
    line: String,
    body: Vec<u8>,
}

impl Ec2Client {
    fn connect(api: &str) -> anyhow::Result<Ec2Client> {
        let s = TcpStream::connect(api).with_context(|| format!("connecting to {api}"))?;
        s.set_nodelay(true)?;
        Ok(Ec2Client {
            host: api.to_string(),
            reader: BufReader::new(s.try_clone()?),
            writer: s,
            key: None,
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// Posts one signed form; fails unless the answer is 200.
    fn call(&mut self, params: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut body = String::from("Version=2016-11-15");
        for (k, v) in params {
            // CIDRs and ids only: `/` is the one character that needs escaping.
            body += &format!("&{k}={}", v.replace('/', "%2F"));
        }
        let unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let amz = sigv4::format_amz_date(unix);
        let date = &amz[..8];
        if self.key.as_ref().is_none_or(|(d, _)| d != date) {
            self.key =
                Some((date.to_string(), sigv4::signing_key(SECRET_KEY, date, REGION, "ec2")));
        }
        let Some((_, key)) = &self.key else { unreachable!() };
        let signed = "content-type;host;x-amz-date";
        let canonical = format!(
            "POST\n/\n\ncontent-type:{CTYPE}\nhost:{}\nx-amz-date:{amz}\n\n{signed}\n{}",
            self.host,
            sigv4::sha256_hex(body.as_bytes())
        );
        let scope = format!("{date}/{REGION}/ec2/aws4_request");
        let sig = sigv4::sign(key, &sigv4::string_to_sign(&amz, &scope, &canonical));
        let req = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: {CTYPE}\r\nX-Amz-Date: {amz}\r\n\
             Authorization: {} Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed}, \
             Signature={sig}\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            sigv4::ALGORITHM,
            body.len()
        );
        self.writer.write_all(req.as_bytes())?;
        self.read_response()
    }

    fn read_response(&mut self) -> anyhow::Result<()> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            bail!("the API closed the connection");
        }
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {:?}", self.line))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line)? == 0 {
                bail!("the API closed the connection in the headers");
            }
            let h = self.line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    length = Some(v.parse::<usize>()?);
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.eq_ignore_ascii_case("chunked");
                }
            }
        }
        self.body.clear();
        if let Some(n) = length {
            self.body.resize(n, 0);
            self.reader.read_exact(&mut self.body)?;
        } else if chunked {
            loop {
                self.line.clear();
                self.reader.read_line(&mut self.line)?;
                let n = usize::from_str_radix(self.line.trim().split(';').next().unwrap_or(""), 16)
                    .context("bad chunk size")?;
                let at = self.body.len();
                self.body.resize(at + n + 2, 0);
                self.reader.read_exact(&mut self.body[at..])?;
                self.body.truncate(at + n);
                if n == 0 {
                    break;
                }
            }
        } else {
            bail!("an answer without a length (HTTP {status})");
        }
        if status != 200 {
            bail!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            );
        }
        Ok(())
    }
}

fn ec2(
    api: &str,
    rate: f64,
    secs: f64,
    threads: usize,
    table: &str,
    gateway: &str,
) -> anyhow::Result<()> {
    let lat = Mutex::new(Vec::new());
    let count = AtomicU64::new(0);
    let mut workers = Vec::new();
    for t in 0..threads {
        let mut client = Ec2Client::connect(api)?;
        let (lat, count) = (&lat, &count);
        let mut pending: Option<String> = None;
        let mut mine = Vec::new();
        let mut update = move |add: bool, c: &str, mine: &mut Vec<Duration>| {
            let t0 = Instant::now();
            let mut params = vec![
                ("Action", if add { "CreateRoute" } else { "DeleteRoute" }),
                ("RouteTableId", table),
                ("DestinationCidrBlock", c),
            ];
            if add {
                params.push(("GatewayId", gateway));
            }
            client.call(&params)?;
            mine.push(t0.elapsed());
            count.fetch_add(1, Ordering::Relaxed);
            anyhow::Ok(())
        };
        workers.push(move |j: Option<usize>| -> anyhow::Result<()> {
            match j {
                Some(j) => {
                    let add = j % 2 == 0;
                    let c = cidr(t * 4096 + j / 2);
                    update(add, &c, &mut mine)?;
                    pending = add.then_some(c);
                }
                None => {
                    if let Some(c) = pending.take() {
                        update(false, &c, &mut mine)?;
                    }
                    lat.lock().unwrap_or_else(|p| p.into_inner()).append(&mut mine);
                }
            }
            Ok(())
        });
    }
    let secs = paced(rate, secs, workers)?;
    let lat = lat.into_inner().unwrap_or_else(|p| p.into_inner());
    report(count.load(Ordering::Relaxed) as usize, secs, lat);
    Ok(())
}

fn ip(ns: &str, rate: f64, secs: f64, via: Ipv4Addr) -> anyhow::Result<()> {
    let mut child: Child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("running ip")?;
    let stdin: ChildStdin = child.stdin.take().context("ip's stdin")?;
    let stdin = Mutex::new(stdin);
    let count = AtomicU64::new(0);
    let mut pending: Option<String> = None;
    let (stdin_ref, count_ref) = (&stdin, &count);
    let update = move |add: bool, c: &str| -> anyhow::Result<()> {
        let line =
            if add { format!("route add {c} via {via}\n") } else { format!("route del {c}\n") };
        let mut w = stdin_ref.lock().unwrap_or_else(|p| p.into_inner());
        w.write_all(line.as_bytes())?;
        w.flush()?;
        count_ref.fetch_add(1, Ordering::Relaxed);
        Ok(())
    };
    let worker = move |j: Option<usize>| -> anyhow::Result<()> {
        match j {
            Some(j) => {
                let add = j % 2 == 0;
                let c = cidr(j / 2);
                update(add, &c)?;
                pending = add.then_some(c);
            }
            None => {
                if let Some(c) = pending.take() {
                    update(false, &c)?;
                }
            }
        }
        Ok(())
    };
    let secs = paced(rate, secs, vec![worker])?;
    drop(stdin);
    if !child.wait()?.success() {
        bail!("ip -batch failed");
    }
    report(count.load(Ordering::Relaxed) as usize, secs, Vec::new());
    Ok(())
}

fn visibility(
    lab: &std::path::Path,
    updates: usize,
    state_dir: &std::path::Path,
    subnet: &str,
    gateway: &str,
    extra_routes: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use vpcsim::fib::extra;
    use vpcsim::services::ec2::{self, Ec2Outcome, Ec2Request};

    let text =
        std::fs::read_to_string(lab).with_context(|| format!("reading {}", lab.display()))?;
    let world = vpcsim::lab::file::parse(&lab.display().to_string(), &text)?;
    let (id, table) = world
        .subnets
        .iter()
        .find(|s| s.name == subnet)
        .map(|s| (s.id.clone(), s.route_table.clone()))
        .with_context(|| format!("no subnet named {subnet}"))?;
    if let Some(path) = extra_routes {
        extra::install(extra::load(&world, &table, vpcsim::model::Target::Blackhole, path)?)?;
    }
    let control = vpcsim::lab::control::Control::in_process(world, state_dir.to_path_buf())?;
    let port = control.port_of(&id).context("the subnet has no port")?;
    let pipeline = control.pipeline.clone();

    // The reader: spins on the published snapshot as a worker does (one load per lookup) and
    // reports the first time the route of the current probe address is what the writer wants.
    // 0 = idle; otherwise the probe is (address << 1 | present).
    let probe = Arc::new(AtomicU64::new(0));
    let seen_at = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let base = Instant::now();
    let reader = {
        let (probe, seen_at, stop, pipeline) =
            (probe.clone(), seen_at.clone(), stop.clone(), pipeline.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let p = probe.load(Ordering::Acquire);
                if p == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                let (addr, want) = ((p >> 1) as u32, p & 1 == 1);
                let present = pipeline
                    .snapshot()
                    .route(port, Ipv4Addr::from(addr))
                    .is_some_and(|h| h == vpcsim::fib::Hop::Igw);
                if present == want {
                    seen_at.store(base.elapsed().as_nanos() as u64, Ordering::Release);
                    probe.store(0, Ordering::Release);
                }
            }
        })
    };

    let mut vis = Vec::with_capacity(updates);
    let mut apply = Vec::with_capacity(updates);
    let mut from_decided = Vec::with_capacity(updates);
    for j in 0..updates {
        let add = j % 2 == 0;
        let c = cidr(j / 2);
        let net: ipnet::Ipv4Net = c.parse()?;
        let mut params: Vec<(String, String)> = vec![
            ("Action".into(), if add { "CreateRoute" } else { "DeleteRoute" }.into()),
            ("Version".into(), "2016-11-15".into()),
            ("RouteTableId".into(), table.clone()),
            ("DestinationCidrBlock".into(), c.clone()),
        ];
        if add {
            params.push(("GatewayId".into(), gateway.to_string()));
        }
        probe.store(u64::from(u32::from(net.addr())) << 1 | u64::from(add), Ordering::Release);
        let t0 = base.elapsed().as_nanos() as u64;
        let mut decided = t0;
        // What the API does for a signed, allowed EC2 call (sigv4 and HTTP excepted).
        let r = control.change(|w| {
            let req = Ec2Request { params: &params, region: "us-east-1", request_id: "bench" };
            let r = match ec2::handle(w, &req)? {
                Ec2Outcome::Read { xml } => (None, xml),
                Ec2Outcome::Changed { world, xml } => (Some(world), xml),
            };
            // The EC2 handler has validated the call and made the new world.
            decided = base.elapsed().as_nanos() as u64;
            Ok(r)
        })?;
        r.map_err(|e: ec2::Ec2Error| anyhow::anyhow!("{c}: {e}"))?;
        let t1 = base.elapsed().as_nanos() as u64;
        let waited = Instant::now();
        while probe.load(Ordering::Acquire) != 0 {
            if waited.elapsed() > Duration::from_secs(2) {
                bail!("the reader never saw update {j} ({c}); does the table already route it?");
            }
            std::hint::spin_loop();
        }
        let seen = seen_at.load(Ordering::Acquire);
        vis.push(Duration::from_nanos(seen.saturating_sub(t0)));
        from_decided.push(Duration::from_nanos(seen.saturating_sub(decided)));
        apply.push(Duration::from_nanos(t1 - t0));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().map_err(|_| anyhow::anyhow!("the reader panicked"))?;
    vis.sort_unstable();
    apply.sort_unstable();
    from_decided.sort_unstable();
    println!(
        "visibility updates {updates} p50_us {:.1} p99_us {:.1} max_us {:.1} apply_p50_us {:.1} \
         apply_p99_us {:.1} decided_p50_us {:.1} decided_p99_us {:.1}",
        pct(&vis, 0.5),
        pct(&vis, 0.99),
        pct(&vis, 1.0),
        pct(&apply, 0.5),
        pct(&apply, 0.99),
        pct(&from_decided, 0.5),
        pct(&from_decided, 0.99)
    );
    Ok(())
}
