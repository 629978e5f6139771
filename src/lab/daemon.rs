//! `vpcsim up`: build the lab, attach the forwarder, start the services, print `ready:`, and
//! remove everything again on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::setup::{self, RunRecord};
use crate::dataplane::Pipeline;
use crate::fib::{self, PORT_INTERNET, PortId, Snapshot};
use crate::io::{netns, worker};
use crate::model::World;
use crate::services::{api, echo, s3, store::Store};

pub struct UpOptions {
    pub api_listen: SocketAddr,
    pub state_dir: Option<PathBuf>,
}

/// Everything a running lab shares between the data plane and the services.
pub struct Lab {
    pub world: World,
    pub pipeline: Arc<Pipeline>,
    pub io: Arc<worker::IoCounters>,
    pub record: RunRecord,
    pub started: Instant,
}

/// Runs a lab in the foreground until SIGINT/SIGTERM. `world` is fully validated.
pub fn up(world: World, opts: UpOptions) -> anyhow::Result<()> {
    let lab_name = world.lab.clone();
    if let Some(rec) = RunRecord::load(&lab_name)? {
        if rec.alive() {
            bail!(
                "lab {lab_name} is already up (pid {}); run `vpcsim down {lab_name}` first",
                rec.pid
            );
        }
        // A crashed earlier run: clear what it left.
        setup::down(&lab_name)?;
    }
    let ports = fib::ports_by_index(&world);
    let port_of = |id: &str| ports.get(id).copied();
    let namespaces = setup::namespaces(&world, &port_of);
    for (ns, _) in &namespaces {
        if netns::exists(ns) {
            bail!(
                "namespace {ns} already exists and is not this lab's; remove it or rename the lab"
            );
        }
    }
    let state_dir = opts
        .state_dir
        .unwrap_or_else(|| PathBuf::from("/var/lib/vpcsim").join(&lab_name));
    let record = RunRecord {
        lab: lab_name.clone(),
        pid: std::process::id(),
        api: opts.api_listen.to_string(),
        state_dir: state_dir.clone(),
        namespaces: namespaces.clone(),
    };
    // The API address is the only thing this lab adds to the root namespace: check it first so
    // a busy port fails before anything is built.
    let api_listener = std::net::TcpListener::bind(opts.api_listen)
        .with_context(|| format!("binding the control API on {}", opts.api_listen))?;
    api_listener.set_nonblocking(true)?;
    record.save()?;

    let result = run(world, record.clone(), port_of, api_listener, state_dir);
    setup::remove(&record.namespaces);
    let _ = std::fs::remove_file(RunRecord::path(&lab_name));
    result
}

fn run(
    world: World,
    record: RunRecord,
    port_of: impl Fn(&str) -> Option<PortId>,
    api_listener: std::net::TcpListener,
    state_dir: PathBuf,
) -> anyhow::Result<()> {
    setup::create(&world, &record.namespaces, &port_of)?;
    let store = Arc::new(Store::open(&state_dir.join("s3")).context("opening the object store")?);
    seed_buckets(&world, &store)?;

    let pipeline = Arc::new(Pipeline::new(Snapshot::compile(&world, 1, &port_of)));
    let io = Arc::new(worker::IoCounters::default());
    let max_port = record
        .namespaces
        .iter()
        .map(|(_, p)| *p)
        .max()
        .unwrap_or(PORT_INTERNET);
    let mut devices = vec![None; usize::from(max_port) + 1];
    for (ns, port) in &record.namespaces {
        devices[usize::from(*port)] = Some(worker::attach(ns)?);
    }
    let ports = Arc::new(worker::PortTable::from_pointee(devices.clone()));
    for (ns, port) in &record.namespaces {
        if let Some(dev) = &devices[usize::from(*port)] {
            worker::spawn(
                ns,
                *port,
                dev.clone(),
                pipeline.clone(),
                ports.clone(),
                io.clone(),
            )?;
        }
    }
    drop(devices);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the services runtime")?;
    let aws_ns = format!("{}-aws", world.lab);
    let internet_ns = format!("{}-internet", world.lab);
    let s3_listener = netns::run_in(&aws_ns, || {
        let l = std::net::TcpListener::bind("0.0.0.0:80")?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .context("binding the S3 stub on port 80 in the aws namespace")?;
    let mut echo_listeners = Vec::new();
    for h in &world.internet_hosts {
        let addr = SocketAddr::from((h.ip, 80));
        echo_listeners.push(netns::run_in(&internet_ns, move || {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?);
    }

    let lab = Arc::new(Lab {
        world,
        pipeline: pipeline.clone(),
        io,
        record: record.clone(),
        started: Instant::now(),
    });
    let origin_pipeline = pipeline.clone();
    let s3_state = Arc::new(s3::S3State {
        store,
        region: lab.world.region.clone(),
        origin: Arc::new(move |peer: SocketAddr, local: SocketAddr| {
            let (SocketAddr::V4(peer), SocketAddr::V4(local)) = (peer, local) else {
                return None;
            };
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
    });

    rt.block_on(async move {
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
        let api_listener = tokio::net::TcpListener::from_std(api_listener)?;
        let api_lab = lab.clone();
        tokio::spawn(async move {
            if let Err(e) = api::serve(api_listener, api_lab).await {
                tracing::error!(error = %e, "control API stopped");
            }
        });
        // Flow expiry: the pipeline takes time as an argument; this is its clock.
        let timer_pipeline = pipeline.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                timer_pipeline.handle_timeout(Instant::now());
            }
        });

        let names: Vec<&str> = lab
            .record
            .namespaces
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        println!(
            "ready: lab {} ({}) namespaces {} api http://{} state {}",
            lab.world.lab,
            lab.world.region,
            names.join(" "),
            lab.record.api,
            lab.record.state_dir.display()
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
    rt.shutdown_timeout(Duration::from_secs(2));
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
