//! Extra routes: a large prefix table (a full BGP table, say) added to one route table's
//! compiled FIB, in the data plane only. Issue 6's benchmark 1 runs "the full pipeline (...,
//! the 901,899-prefix table loaded into the subnet's route table as extra routes)"; this is how
//! (`vpcsim up --extra-routes FILE --extra-routes-table rtb-… [--extra-routes-target igw-…]`).
//!
//! Decisions (the issue is silent):
//! - Extra routes are not part of the model: DescribeRouteTables does not list them, they are
//!   not persisted, and they last as long as the daemon process. They are a load, not state.
//! - Longest prefix match runs over the table's own routes and the extra routes together; for
//!   an identical prefix the table's own route wins.
//! - Their target is `blackhole` (default) or an internet gateway; a gateway that is not
//!   attached to the table's VPC makes them blackholes, like any route to it.
//! - They are compiled into the table's [`Fib`](super::table::Fib) with its own routes once;
//!   every later snapshot updates that table by the difference in its own routes (see
//!   [`super::Snapshot::compile_after`]), so a control-plane change costs the same with or
//!   without 900k extra routes.
//!
//! Invariant: installed at most once per process, before the first snapshot is compiled.

use std::sync::OnceLock;

use anyhow::{Context, bail};
use ipnet::Ipv4Net;

use super::Hop;
use crate::model::{Target, World};

/// What `--extra-routes` asked for.
#[derive(Clone, Debug)]
pub struct ExtraRoutes {
    /// `rtb-…`.
    pub table: String,
    /// `Target::Blackhole` or `Target::Igw(id)`.
    pub target: Target,
    pub prefixes: Vec<Ipv4Net>,
}

static EXTRA: OnceLock<ExtraRoutes> = OnceLock::new();

/// Installs the extra routes for this process; a second call is refused. The prefixes are
/// kept sorted and unique (for `Extra::get`).
pub fn install(mut spec: ExtraRoutes) -> anyhow::Result<()> {
    spec.prefixes.sort_unstable_by_key(|n| (u32::from(n.network()), n.prefix_len()));
    spec.prefixes.dedup();
    EXTRA.set(spec).map_err(|_| anyhow::anyhow!("extra routes are already installed"))
}

/// The extra routes of one route table in the world's current state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Extra {
    /// Sorted, unique.
    pub prefixes: &'static [Ipv4Net],
    /// Where all of them point now.
    pub hop: Hop,
}

impl Extra {
    /// The hop of an extra route of exactly this prefix.
    pub fn get(&self, net: Ipv4Net) -> Option<Hop> {
        let key = |n: &Ipv4Net| (u32::from(n.network()), n.prefix_len());
        self.prefixes.binary_search_by_key(&key(&net.trunc()), key).ok().map(|_| self.hop)
    }

    /// The longest extra route covering `net` (`net` itself included): its length and hop.
    ///
    /// The prefixes are sorted by (network, length), so every cover of `net` comes before
    /// `net`'s place, the longest last. If the prefix just before that place, `p`, is no
    /// cover, every cover lies before `p` and so contains `p`'s network too: it is a cover of
    /// `net` cut to the bits `p` and `net` share, which is shorter. So a few binary searches
    /// (at most one per length, usually two or three) instead of one per length.
    pub fn longest_cover(&self, net: Ipv4Net) -> Option<(u8, Hop)> {
        let (mut at, mut len) = (u32::from(net.network()), net.prefix_len());
        loop {
            let i = self.prefixes.partition_point(|p| {
                (u32::from(p.network()), p.prefix_len()) <= (at & super::table::mask(len), len)
            });
            let p = self.prefixes[..i].last()?;
            let (pa, pl) = (u32::from(p.network()), p.prefix_len());
            if pl <= len && (at ^ pa) & super::table::mask(pl) == 0 {
                return Some((pl, self.hop));
            }
            // `p` comes before `net` cut to `len` and is no cover: they differ within `len`
            // bits, so this is shorter than `len`.
            len = len.min((at ^ pa).leading_zeros() as u8);
            at &= super::table::mask(len);
        }
    }
}

/// Reads a prefix file: one IPv4 CIDR per line; blank lines, `#` comments and IPv6 prefixes
/// (lines with a `:`) are skipped, so a raw BGP dump works as is. Host bits are cleared.
pub fn parse(name: &str, text: &str) -> anyhow::Result<Vec<Ipv4Net>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.contains(':') {
            continue;
        }
        let net: Ipv4Net = line
            .parse()
            .with_context(|| format!("{name} line {}: not an IPv4 CIDR: {line:?}", i + 1))?;
        out.push(net.trunc());
    }
    if out.is_empty() {
        bail!("{name}: no IPv4 prefix");
    }
    Ok(out)
}

/// The extra routes of `path` for `table`, checked against `world` (`vpcsim up
/// --extra-routes`), ready to [`install`].
pub fn load(
    world: &World,
    table: &str,
    target: Target,
    path: &std::path::Path,
) -> anyhow::Result<ExtraRoutes> {
    validate(world, table, &target)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let prefixes = parse(&path.display().to_string(), &text)?;
    Ok(ExtraRoutes { table: table.to_string(), target, prefixes })
}

/// Checks the request against the lab: the table exists and the target is one the table
/// could route to.
pub fn validate(world: &World, table: &str, target: &Target) -> anyhow::Result<()> {
    let Some(rt) = world.route_table(table) else {
        bail!("--extra-routes-table: no route table {table} in lab {}", world.lab);
    };
    match target {
        Target::Blackhole => Ok(()),
        Target::Igw(id) if world.igw(id).is_some() => Ok(()),
        Target::Igw(id) => {
            bail!("--extra-routes-target: no internet gateway {id} (vpc {})", rt.vpc)
        }
        _ => bail!("--extra-routes-target: blackhole or an igw-… id"),
    }
}

/// The extra routes of `table` for the world's current state, if any.
pub(crate) fn base(world: &World, table: &str) -> Option<Extra> {
    let extra = EXTRA.get().filter(|e| e.table == table)?;
    let vpc = world.route_table(table)?.vpc.as_str();
    let hop = match &extra.target {
        t @ Target::Igw(_) if world.target_alive(t, vpc) => Hop::Igw,
        _ => Hop::Blackhole,
    };
    Some(Extra { prefixes: &extra.prefixes, hop })
}

/// The route table that tests give extra routes to (no lab file uses it).
#[cfg(test)]
pub(crate) const TEST_TABLE: &str = "rtb-e0e0e0e0";

/// Installs the tests' extra routes once per test process, whichever test comes first:
/// 0.0.0.0/0, 8.8.8.0/24, 10.0.0.0/8 and 54.123.170.0/24 to a blackhole in [`TEST_TABLE`].
#[cfg(test)]
pub(crate) fn install_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prefixes = parse("t", "0.0.0.0/0\n8.8.8.0/24\n10.0.0.0/8\n54.123.170.0/24\n").unwrap();
        install(ExtraRoutes { table: TEST_TABLE.into(), target: Target::Blackhole, prefixes })
            .unwrap();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The longest cover equals the one found by looking up every length, shortest first.
        #[test]
        fn longest_cover_is_the_longest_of_every_length(
            routes in proptest::collection::vec((0u32..64, 0u8..=8), 0..40),
            probes in proptest::collection::vec((0u32..64, 0u8..=8), 1..20),
        ) {
            // Small address space (the top 6 bits, the rest fixed) so that covers are common.
            let net = |(a, l): (u32, u8)| {
                Ipv4Net::new(std::net::Ipv4Addr::from(a << 26 | 0x5a5a5a), l * 4).unwrap().trunc()
            };
            let mut prefixes: Vec<Ipv4Net> = routes.into_iter().map(net).collect();
            prefixes.sort_unstable_by_key(|n| (u32::from(n.network()), n.prefix_len()));
            prefixes.dedup();
            let extra = Extra { prefixes: Box::leak(prefixes.into_boxed_slice()), hop: Hop::Igw };
            for probe in probes.into_iter().map(net) {
                let each = (0..=probe.prefix_len()).rev().find_map(|len| {
                    let sup = Ipv4Net::new(probe.network(), len).unwrap().trunc();
                    extra.get(sup).map(|h| (len, h))
                });
                proptest::prop_assert_eq!(extra.longest_cover(probe), each, "{}", probe);
            }
        }
    }

    #[test]
    fn parse_names_the_line() {
        let ok =
            parse("f", "# bgp\n10.0.0.0/8\n\n2001:db8::/32\n192.168.1.7/24 # host bits\n").unwrap();
        assert_eq!(
            ok,
            ["10.0.0.0/8".parse::<Ipv4Net>().unwrap(), "192.168.1.0/24".parse().unwrap()]
        );
        let e = parse("f", "10.0.0.0/8\n10.0.0.0/33\n").unwrap_err().to_string();
        assert!(e.contains("f line 2") && e.contains("10.0.0.0/33"), "{e}");
        assert!(parse("f", "# nothing\n").is_err());
    }

    /// The only test that installs extra routes (once per process): on a table id no other
    /// test uses, so the other tests' snapshots are unaffected.
    #[test]
    fn extra_routes_join_the_table_by_longest_prefix() {
        use super::super::{Snapshot, ports_by_index};
        use std::net::Ipv4Addr;
        let text = crate::lab::file::DEFAULT_LAB.replace("rtb-0a0a0a0a", "rtb-e0e0e0e0");
        let world = crate::lab::file::parse("demo", &text).unwrap();
        let bad = validate(&world, "rtb-e0e0e0e0", &Target::Igw("igw-00000000".into()));
        assert!(bad.unwrap_err().to_string().contains("no internet gateway igw-00000000"));
        assert!(validate(&world, "rtb-00000000", &Target::Blackhole).is_err());
        validate(&world, "rtb-e0e0e0e0", &Target::Blackhole).unwrap();
        install_for_tests();
        assert!(
            install(ExtraRoutes { table: "x".into(), target: Target::Blackhole, prefixes: vec![] })
                .is_err()
        );
        let ports = ports_by_index(&world);
        let snap = Snapshot::compile(&world, 1, &|id| ports.get(id).copied());
        let a = world.subnets.iter().find(|s| s.route_table == "rtb-e0e0e0e0").unwrap();
        let b = world.subnets.iter().find(|s| s.route_table != "rtb-e0e0e0e0").unwrap();
        let route = |s: &crate::model::Subnet, ip: &str| {
            snap.route(ports[&s.id], ip.parse::<Ipv4Addr>().unwrap())
        };
        // An extra route more specific than everything else wins, also over the prefix list.
        assert_eq!(route(a, "8.8.8.8"), Some(Hop::Blackhole));
        assert_eq!(route(a, "54.123.170.5"), Some(Hop::Blackhole));
        assert!(matches!(route(a, "54.123.171.5"), Some(Hop::Vpce(_))));
        // The table's own more specific route (local /16) beats the extra /8; for the same
        // prefix (0.0.0.0/0) the table's own route wins.
        assert_eq!(route(a, "10.0.2.10"), Some(Hop::Local));
        assert_eq!(route(a, "1.1.1.1"), Some(Hop::Igw));
        // Other tables are untouched.
        assert_eq!(route(b, "8.8.8.8"), Some(Hop::Igw));
        assert_eq!(
            snap.subnet(ports[&a.id]).unwrap().fib.len(),
            4 + world.compiled_routes("rtb-e0e0e0e0").len() - 1
        );
    }
}
