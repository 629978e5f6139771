//! `vpcsim up`: build (or resume) the lab, attach the forwarder, start the services, print
//! `ready:`, and remove everything again on SIGINT or SIGTERM.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::control::{self, Control, Saved};
use super::lock::Locks;
use super::setup::{self, RunRecord};
use crate::fib::{self, PortId};
use crate::io::netns;
use crate::model::World;
use crate::services::http::Timeouts;
use crate::services::{api, dns, echo, s3, store::Store, tls};

pub struct UpOptions {
    pub api_listen: SocketAddr,
    pub state_dir: Option<PathBuf>,
    /// Start from the lab file even if the state dir holds a saved world (the old state dir is
    /// kept aside, not deleted).
    pub fresh: bool,
    /// The descriptors of the locks `up --detach` took and handed down ("<lab>,<state>");
    /// `None`: `up` takes them itself.
    pub lock_fds: Option<String>,
}

/// Everything a running lab shares between the data plane and the services.
pub struct Lab {
    pub control: Arc<Control>,
    pub store: Arc<Store>,
    pub started: Instant,
}

/// A lab's state dir: `--state-dir`, else `/var/lib/vpcsim/<lab>`.
pub fn state_dir_of(lab: &str, given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/var/lib/vpcsim").join(lab))
}

/// What `up` takes and refuses before it touches anything (the state dir, the log, a
/// namespace): a control API address off the loopback (a lab adds nothing to the root
/// namespace but that listener, and its default keys are AWS's published examples); then the
/// lab's and the state dir's locks ([`Locks`]: adopted from `lock_fds` when the command that
/// took them handed them down), so that a lab that is up or starting, or another lab using
/// the state dir, is refused; and a lab whose daemon runs without locks (an older vpcsim).
pub fn precheck(
    lab: &str,
    api: SocketAddr,
    state_dir: &Path,
    lock_fds: Option<&str>,
) -> anyhow::Result<Locks> {
    if !api.ip().is_loopback() {
        bail!(
            "--api-listen {api}: the control API listens on a loopback address only (127.0.0.0/8 or ::1)"
        );
    }
    let locks = match lock_fds {
        Some(fds) => Locks::adopt(fds, lab, state_dir)?,
        None => Locks::take(lab, state_dir)?,
    };
    match RunRecord::load(lab) {
        Ok(Some(rec)) if rec.alive() && rec.pid != std::process::id() => {
            locks.lab.remove();
            bail!("lab {lab} is already up (pid {}); run `vpcsim down {lab}` first", rec.pid);
        }
        Ok(_) => Ok(locks),
        Err(e) => {
            locks.lab.remove();
            Err(e)
        }
    }
}

/// Where `up --fresh` moves a state dir: `<dir>.old-<unix time>` beside it (appended, so a
/// dir whose name has a dot, e.g. `lab.v2`, keeps its whole name).
fn aside_path(state_dir: &std::path::Path, now: u64) -> PathBuf {
    let mut name = state_dir.as_os_str().to_os_string();
    name.push(format!(".old-{now}"));
    PathBuf::from(name)
}

/// What a state dir did not hold before this `up`: what a first `up` that fails takes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Made {
    s3: bool,
    tls: bool,
}

impl Made {
    fn before(state_dir: &Path) -> Made {
        Made { s3: !state_dir.join("s3").exists(), tls: !state_dir.join("tls").exists() }
    }
}

/// A first `up` (no saved world) that failed before `ready:` leaves no saved world, so that the
/// next `up` starts from the lab file again instead of resuming a world that never ran; what it
/// made is removed too (the object store with the buckets it seeded, the lab CA). Nothing that
/// was there before is touched; the state dir and its lock file stay.
fn discard_unready(state_dir: &Path, made: Made) {
    let _ = std::fs::remove_file(Saved::path(state_dir));
    let _ = super::journal::remove(state_dir);
    if made.s3 {
        let _ = std::fs::remove_dir_all(state_dir.join("s3"));
    }
    if made.tls {
        let _ = std::fs::remove_dir_all(state_dir.join("tls"));
    }
}

/// Runs a lab in the foreground until SIGINT/SIGTERM. `file_world` is the validated lab file;
/// a world saved in the state dir takes precedence unless `fresh`.
pub fn up(file_world: World, opts: UpOptions) -> anyhow::Result<()> {
    let lab_name = file_world.lab.clone();
    let state_dir = state_dir_of(&lab_name, opts.state_dir.as_deref());
    let mut locks = precheck(&lab_name, opts.api_listen, &state_dir, opts.lock_fds.as_deref())?;
    let result = up_locked(file_world, &opts, &mut locks, &state_dir);
    // The lab's lock file goes with the lab (removed while it is held), the state dir's stays,
    // unless this `up` made the state dir and failed before storing anything in it.
    if result.is_err() && locks.made_state_dir {
        super::lock::remove_bare_state_dir(&state_dir);
    }
    locks.lab.remove();
    result
}

fn up_locked(
    file_world: World,
    opts: &UpOptions,
    locks: &mut Locks,
    state_dir: &Path,
) -> anyhow::Result<()> {
    let lab_name = file_world.lab.clone();
    // What can fail cheaply fails before anything is moved or built. The API address is the
    // only thing a lab adds to the root namespace: bound first, so that a busy port leaves the
    // state dir where it is (`--fresh` included).
    let api_listener = bind_api(opts.api_listen)?;
    api_listener.set_nonblocking(true)?;
    let from_file = |world: World| {
        let ports = fib::ports_by_index(&world).into_iter().collect();
        Saved { world, ports, seq: 0 }
    };
    let (saved, resumed) = match opts.fresh {
        true => (from_file(file_world), false),
        false => match Saved::load(state_dir)? {
            Some(saved) => {
                if saved.world.lab != file_world.lab {
                    bail!(
                        "{} holds lab '{}', not '{}'; use another --state-dir or --fresh",
                        state_dir.display(),
                        saved.world.lab,
                        file_world.lab
                    );
                }
                (saved, true)
            }
            None => (from_file(file_world), false),
        },
    };
    // `precheck` refused a lab that is up, so a record here is a crashed earlier run's: its
    // namespaces are taken over, and only those. Any other namespace of this run's that exists
    // is not this lab's, even after a crash: names of two labs can meet (subnet `z-a` of lab
    // `rk` and subnet `a` of lab `rk-z` are both `rk-z-a`), and taking it over would rewrite
    // the other lab's namespace and make `down` delete it.
    let previous = RunRecord::load(&lab_name)?;
    let reattach = previous.is_some();
    let adopt: HashSet<String> =
        previous.iter().flat_map(|rec| rec.namespaces.iter().map(|(n, _)| n.clone())).collect();
    let spec = saved.spec();
    for ns in spec.keys() {
        if !adopt.contains(ns) && netns::exists(ns) {
            bail!(
                "namespace {ns} already exists and is not this lab's; remove it or rename the lab"
            );
        }
    }
    let made = if opts.fresh && Saved::path(state_dir).exists() {
        let aside = aside_path(state_dir, unix_now());
        std::fs::rename(state_dir, &aside)
            .with_context(|| format!("moving {} aside", state_dir.display()))?;
        println!("fresh: the previous state is kept in {}", aside.display());
        locks.relock_state(&lab_name, state_dir)?;
        Made { s3: true, tls: true }
    } else {
        Made::before(state_dir)
    };
    // The crashed run's namespaces that the world no longer has: dropped once this run is
    // ready, not before (a resume that fails leaves the crashed lab as it found it).
    let gone: Vec<_> = previous
        .iter()
        .flat_map(|rec| rec.namespaces.iter())
        .filter(|(n, _)| !spec.contains_key(n))
        .cloned()
        .collect();
    let record = RunRecord {
        lab: lab_name.clone(),
        pid: std::process::id(),
        started: setup::start_ticks(std::process::id()).unwrap_or(0),
        api: opts.api_listen.to_string(),
        state_dir: state_dir.to_path_buf(),
        namespaces: spec.iter().map(|(n, s)| (n.clone(), s.port)).collect(),
    };
    record.save()?;

    let ready = AtomicBool::new(false);
    let result = run(
        saved,
        Start { resumed, reattach, adopt, gone },
        record,
        api_listener,
        state_dir.to_path_buf(),
        &ready,
    );
    if result.is_err() && !ready.load(Ordering::SeqCst) {
        if !resumed {
            discard_unready(state_dir, made);
        }
        // A resume of a crashed lab that fails before `ready:` leaves that lab as it was: its
        // namespaces (and the shells in them) stay, under the crashed run's record, so that
        // the next `up` reattaches again and `vpcsim down` still finds them. Only what this
        // run made is removed.
        if let Some(prev) = &previous {
            let ours = RunRecord::load(&lab_name).ok().flatten();
            if let Some(ours) = ours.filter(|r| r.pid == std::process::id()) {
                let new_ns: Vec<_> = ours
                    .namespaces
                    .into_iter()
                    .filter(|(n, _)| !prev.namespaces.iter().any(|(p, _)| p == n))
                    .collect();
                setup::remove(&new_ns);
                if let Err(e) = prev.save() {
                    tracing::warn!(error = %e, "restoring the crashed run's record");
                }
            }
            return result;
        }
    }
    // Whatever the control plane added since is in the saved record. Only our own record: one
    // written by another daemon names namespaces that are not ours to delete.
    if let Some(last) = RunRecord::load(&lab_name).ok().flatten()
        && last.pid == std::process::id()
    {
        setup::remove(&last.namespaces);
        let _ = std::fs::remove_file(RunRecord::path(&lab_name));
    }
    result
}

/// Binds the control API. A predecessor killed a moment ago may still hold the port while it
/// exits, so "address in use" is retried for a few seconds.
fn bind_api(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).with_context(|| format!("binding the control API on {addr}")),
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How a run starts: from a saved world (`resumed`), over a crashed run (`reattach`) whose
/// namespaces it takes over (`adopt`), and the crashed run's namespaces the world no longer has
/// (`gone`, removed once the run is ready).
struct Start {
    resumed: bool,
    reattach: bool,
    adopt: HashSet<String>,
    gone: Vec<(String, PortId)>,
}

fn run(
    saved: Saved,
    start: Start,
    record: RunRecord,
    api_listener: std::net::TcpListener,
    state_dir: PathBuf,
    ready: &AtomicBool,
) -> anyhow::Result<()> {
    // A new lab's buckets before its world is saved: a build that fails while making them
    // leaves no saved world, so the next `up` starts over (and makes what is missing) instead
    // of resuming a world whose buckets were never made. A first build that fails later (the
    // namespaces, the services) takes its saved world away again (`discard_unready`).
    let store = Arc::new(Store::open(&state_dir.join("s3")).context("opening the object store")?);
    let Start { resumed, reattach, adopt, gone } = start;
    if !resumed {
        seed_buckets(&saved.world, &store)?;
    }
    saved.store(&state_dir).context("saving the world")?;
    control::build_namespaces(&saved, &adopt)?;
    seed_aws_buckets(&saved.world, &store)?;
    let world = saved.world.clone();
    let tls_dir = state_dir.join("tls");
    let control = Control::start(saved, record.clone(), state_dir)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the services runtime")?;
    // The control API has a runtime of its own, with one worker: a request then wakes the one
    // thread that waits for it, where on the services' two workers the one that took the
    // event also woke the other to look for work (a futex wake and two context switches per
    // request, at 1,000 route changes/s about a tenth of the API's CPU). Route changes run
    // inline on that worker, other changes move off it with `block_in_place`
    // (`api::blocking`), so the API keeps answering; S3 in the namespaces keeps both workers.
    let api_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("vpcsim-api")
        .enable_all()
        .build()
        .context("starting the control API's runtime")?;
    let api_handle = api_rt.handle().clone();
    let aws_ns = format!("{}-aws", world.lab);
    let internet_ns = format!("{}-internet", world.lab);
    let s3_listener = netns::run_in(&aws_ns, || {
        let l = std::net::TcpListener::bind("0.0.0.0:80")?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .context("binding the S3 stub on port 80 in the aws namespace")?;
    // HTTPS on 443 with a certificate for every S3 name, from the lab's own CA
    // (`<state-dir>/tls/ca.pem`: give it to curl --cacert or AWS_CA_BUNDLE).
    let s3_tls_listener = netns::run_in(&aws_ns, || {
        let l = std::net::TcpListener::bind("0.0.0.0:443")?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .context("binding the S3 stub on port 443 in the aws namespace")?;
    let lab_ca = tls::lab_ca(&tls_dir).context("creating the lab CA")?;
    let regions: Vec<String> = world.prefix_lists.iter().map(|p| p.region.clone()).collect();
    let s3_acceptor =
        tokio_rustls::TlsAcceptor::from(lab_ca.server_config(&tls::s3_names(&regions)));
    let s3_ranges: Vec<(ipnet::Ipv4Net, String)> = world
        .prefix_lists
        .iter()
        .flat_map(|p| p.cidrs.iter().map(move |c| (*c, p.region.clone())))
        .collect();
    let mut echo_listeners = Vec::new();
    for h in &world.internet_hosts {
        let addr = SocketAddr::from((h.ip, 80));
        echo_listeners.push(netns::run_in(&internet_ns, move || {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?);
    }

    let lab =
        Arc::new(Lab { control: control.clone(), store: store.clone(), started: Instant::now() });
    let origin_pipeline = control.pipeline.clone();
    let dns_store = store.clone();
    let s3_state = Arc::new(s3::S3State {
        store,
        region: world.region.clone(),
        origin: Arc::new(move |peer: SocketAddr, local: SocketAddr| {
            let (SocketAddr::V4(peer), SocketAddr::V4(local)) = (peer, local) else { return None };
            origin_pipeline
                .origin(
                    (u32::from(*peer.ip()), peer.port()),
                    (u32::from(*local.ip()), local.port()),
                )
                .map(|e| s3::EndpointOrigin {
                    vpce_id: e.vpce_id.clone(),
                    vpc_id: e.vpc_id.clone(),
                })
        }),
        access: Some(control.access.clone()),
        region_of: Arc::new(move |ip: std::net::IpAddr| {
            let std::net::IpAddr::V4(v4) = ip.to_canonical() else { return None };
            s3_ranges.iter().find(|(net, _)| net.contains(&v4)).map(|(_, r)| r.clone())
        }),
        timeouts: Timeouts::DEFAULT,
    });

    rt.block_on(async move {
        let s3_tls_listener = tokio::net::TcpListener::from_std(s3_tls_listener)?;
        let tls_state = s3_state.clone();
        tokio::spawn(async move {
            if let Err(e) = s3::serve_tls(s3_tls_listener, s3_acceptor, tls_state).await {
                tracing::error!(error = %e, "s3 TLS stub stopped");
            }
        });
        let s3_listener = tokio::net::TcpListener::from_std(s3_listener)?;
        tokio::spawn(async move {
            if let Err(e) = s3::serve(s3_listener, s3_state).await {
                tracing::error!(error = %e, "s3 stub stopped");
            }
        });
        for l in echo_listeners {
            let l = tokio::net::TcpListener::from_std(l)?;
            tokio::spawn(async move {
                if let Err(e) = echo::serve_echo(l).await {
                    tracing::error!(error = %e, "echo host stopped");
                }
            });
        }
        start_dns(&control, dns_store, &aws_ns).await?;
        let api_lab = lab.clone();
        api_handle.spawn(async move {
            let served = match tokio::net::TcpListener::from_std(api_listener) {
                Ok(l) => api::serve(l, api_lab, Timeouts::DEFAULT).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "control API stopped");
            }
        });
        // Flow expiry: the pipeline takes time as an argument; this is its clock.
        let timer_pipeline = control.pipeline.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                timer_pipeline.handle_timeout(Instant::now());
            }
        });

        let names: Vec<String> = record.namespaces.iter().map(|(n, _)| n.clone()).collect();
        let how = match (resumed, reattach) {
            (true, true) => " (resumed, reattached)",
            (true, false) => " (resumed)",
            _ => "",
        };
        ready.store(true, Ordering::SeqCst);
        setup::remove(&gone);
        println!(
            "ready: lab {} ({}){how} namespaces {} api http://{} state {}",
            world.lab,
            world.region,
            names.join(" "),
            record.api,
            record.state_dir.display()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();

        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        anyhow::Ok(())
    })?;
    api_rt.shutdown_timeout(Duration::from_secs(2));
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

/// What the resolver answers, from the world and the buckets of the object store.
fn dns_view(world: &World, store: &Store) -> dns::DnsView {
    dns::DnsView {
        s3_regions: world
            .prefix_lists
            .iter()
            .filter_map(|p| Some((p.region.clone(), *p.cidrs.first()?)))
            .collect(),
        hosts: world.internet_hosts.iter().map(|h| (h.name.clone(), h.ip)).collect(),
        instance_domain: dns::instance_domain(&world.region),
        instances: world
            .instances
            .iter()
            .filter_map(|i| Some((world.subnet(&i.subnet)?.vpc.clone(), i.private_ip)))
            .collect(),
        bucket_regions: store.buckets().into_iter().map(|b| (b.name, b.region)).collect(),
    }
}

/// The VPC resolvers, in the aws namespace: one TCP listener for all, one UDP socket per
/// resolver address and one on 169.254.169.253 for every VPC (so replies leave from the address
/// queried; the flow says which VPC asked), kept in step with the world
/// (new VPCs and instances, changed prefix lists, created and deleted buckets) once a second.
async fn start_dns(control: &Arc<Control>, store: Arc<Store>, aws_ns: &str) -> anyhow::Result<()> {
    let view = Arc::new(arc_swap::ArcSwap::from_pointee(dns_view(&control.world(), &store)));
    let (pipeline, access) = (control.pipeline.clone(), control.access.clone());
    let vpc_of = Arc::new(move |client: SocketAddr, local: SocketAddr| {
        let (SocketAddr::V4(c), SocketAddr::V4(l)) = (client, local) else { return None };
        let (c, l) = ((u32::from(*c.ip()), c.port()), (u32::from(*l.ip()), l.port()));
        // The flow says which VPC asked; the VPC says whether DNS is on.
        let vpc =
            pipeline.resolver_origin(17, c, l).or_else(|| pipeline.resolver_origin(6, c, l))?;
        access.load().dns_enabled(&vpc).then(|| vpc.to_string())
    });
    let state = Arc::new(dns::DnsState { view: view.clone(), vpc_of });
    let tcp = netns::run_in(aws_ns, || {
        let l = std::net::TcpListener::bind("0.0.0.0:53")?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .context("binding the VPC resolver (TCP 53) in the aws namespace")?;
    let tcp = tokio::net::TcpListener::from_std(tcp)?;
    let tcp_state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = dns::serve_tcp(tcp, tcp_state).await {
            tracing::error!(error = %e, "resolver (tcp) stopped");
        }
    });
    let control = control.clone();
    let aws_ns = aws_ns.to_string();
    let mut udp: std::collections::HashMap<std::net::Ipv4Addr, tokio::task::JoinHandle<()>> =
        std::collections::HashMap::new();
    let mut sync = move || -> anyhow::Result<()> {
        let world = control.world();
        view.store(Arc::new(dns_view(&world, &store)));
        let want: std::collections::HashSet<std::net::Ipv4Addr> = world
            .vpcs
            .iter()
            .map(|v| std::net::Ipv4Addr::from(crate::dataplane::resolver_of(v.cidr)))
            .chain([std::net::Ipv4Addr::from(crate::dataplane::AMAZON_DNS)])
            .collect();
        udp.retain(|addr, task| {
            let keep = want.contains(addr);
            if !keep {
                task.abort();
            }
            keep
        });
        for addr in want {
            if udp.contains_key(&addr) {
                continue;
            }
            let sock = netns::run_in(&aws_ns, move || {
                let s = std::net::UdpSocket::bind((addr, 53))?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .with_context(|| format!("binding the resolver {addr}:53"))?;
            let sock = tokio::net::UdpSocket::from_std(sock)?;
            let st = state.clone();
            udp.insert(
                addr,
                tokio::spawn(async move {
                    if let Err(e) = dns::serve_udp(sock, st).await {
                        tracing::error!(error = %e, "resolver (udp) stopped");
                    }
                }),
            );
        }
        Ok(())
    };
    sync()?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = sync() {
                tracing::warn!(error = %format!("{e:#}"), "resolver sync");
            }
        }
    });
    Ok(())
}

/// The buckets AWS itself owns in every region that the guide names: the Amazon Linux AMI
/// repositories ([`crate::model::aws_repository_buckets`]), in AWS's account, not the lab's,
/// and readable by anyone, so that the guide's "Enabling Access to the Amazon Linux AMI
/// Repositories" endpoint policy can be tried. Created when missing; never changed once there,
/// but for one made by an older vpcsim in the lab's account (whose users could delete it, or
/// make it again without its policy): that one is handed to AWS's account with its policy, its
/// objects kept, and gets its `repodata/repomd.xml` back if it lost it.
fn seed_aws_buckets(world: &World, store: &Store) -> anyhow::Result<()> {
    use crate::model::{AWS_ACCOUNT_ID, aws_repository_buckets};
    for region in world.prefix_lists.iter().map(|p| p.region.as_str()) {
        for name in aws_repository_buckets(region) {
            let policy = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"AmazonLinuxRepository","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{name}/*"}}]}}"#
            );
            match store.bucket(&name) {
                Some(b) if b.owner == AWS_ACCOUNT_ID => continue,
                Some(_) => {
                    store
                        .set_bucket_owner(&name, AWS_ACCOUNT_ID)
                        .and_then(|()| store.set_bucket_policy(&name, Some(policy)))
                        .with_context(|| format!("handing {name} to AWS's account"))?;
                }
                None => store
                    .create_bucket_owned(&name, region, Some(policy), AWS_ACCOUNT_ID)
                    .with_context(|| format!("creating {name}"))?,
            }
            const INDEX: &str = "repodata/repomd.xml";
            if store.head_object(&name, INDEX).is_ok() {
                continue;
            }
            let kind = name.split('.').next().unwrap_or_default();
            let body = format!(
                "<repomd><!-- the Amazon Linux {kind} repository of {region} (vpcsim) --></repomd>\n"
            );
            store
                .put_object(&name, INDEX, body.as_bytes(), Some("text/xml"))
                .with_context(|| format!("creating s3://{name}/{INDEX}"))?;
        }
    }
    Ok(())
}

/// Creates the lab's buckets and initial objects, unless the store already has the bucket:
/// nothing a user stored is replaced.
fn seed_buckets(world: &World, store: &Store) -> anyhow::Result<()> {
    for b in &world.buckets {
        if store.bucket(&b.name).is_some() {
            continue;
        }
        store
            .create_bucket(&b.name, &b.region, b.policy.clone())
            .with_context(|| format!("creating bucket {}", b.name))?;
        for (key, body) in &b.objects {
            store
                .put_object(&b.name, key, body.as_bytes(), Some("text/plain"))
                .with_context(|| format!("creating s3://{}/{key}", b.name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{aside_path, seed_aws_buckets};
    use crate::model::{ACCOUNT_ID, AWS_ACCOUNT_ID, World};
    use crate::services::store::Store;
    use std::path::{Path, PathBuf};

    /// The guide: "The Amazon Linux AMI repositories are Amazon S3 buckets in each region",
    /// AWS's, not the lab's. A store of an older vpcsim, where one was the lab's (and a user
    /// deleted it and made it again without its policy), gets it handed back to AWS's account.
    #[test]
    fn the_amazon_linux_repositories_are_aws_buckets() {
        let dir = std::env::temp_dir().join(format!("vpcsim-seed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let world = World::new("t", "us-east-1").unwrap();
        let store = Store::open(&dir).unwrap();
        store.create_bucket("repo.us-east-1.amazonaws.com", "us-east-1", None).unwrap();
        seed_aws_buckets(&world, &store).unwrap();
        for region in world.prefix_lists.iter().map(|p| p.region.as_str()) {
            for name in crate::model::aws_repository_buckets(region) {
                let b = store.bucket(&name).expect("seeded");
                assert_eq!((b.owner.as_str(), b.region.as_str()), (AWS_ACCOUNT_ID, region));
                assert!(b.policy.is_some_and(|p| p.contains("AmazonLinuxRepository")), "{name}");
                assert!(store.head_object(&name, "repodata/repomd.xml").is_ok(), "{name}");
            }
        }
        assert_ne!(AWS_ACCOUNT_ID, ACCOUNT_ID);
        // Once there, never changed.
        store.put_object("repo.us-east-1.amazonaws.com", "x", b"x", None).unwrap();
        seed_aws_buckets(&world, &store).unwrap();
        assert!(store.head_object("repo.us-east-1.amazonaws.com", "x").is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fresh_moves_the_state_dir_beside_itself_whole_name_kept() {
        assert_eq!(aside_path(Path::new("/srv/lab"), 7), PathBuf::from("/srv/lab.old-7"));
        assert_eq!(aside_path(Path::new("/srv/lab.v2"), 7), PathBuf::from("/srv/lab.v2.old-7"));
    }
}
