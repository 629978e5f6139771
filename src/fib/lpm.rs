//! PLACEHOLDER (linear scan) until the compiled trie lands.
use ipnet::Ipv4Net;
#[derive(Clone, Debug)]
pub struct Lpm<T> { routes: Vec<(Ipv4Net, T)> }
impl<T: Clone> Default for Lpm<T> { fn default() -> Self { Lpm { routes: vec![] } } }
impl<T: Clone> Lpm<T> {
    pub fn new() -> Self { Self::default() }
    pub fn from_routes<I: IntoIterator<Item = (Ipv4Net, T)>>(routes: I) -> Self {
        let mut l = Self::new();
        for (n, v) in routes { l.routes.retain(|(m, _)| *m != n.trunc()); l.routes.push((n.trunc(), v)); }
        l
    }
    pub fn lookup(&self, addr: u32) -> Option<&T> {
        self.routes.iter().filter(|(n, _)| n.contains(&std::net::Ipv4Addr::from(addr))).max_by_key(|(n, _)| n.prefix_len()).map(|(_, v)| v)
    }
}
