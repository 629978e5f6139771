//! Pages of the Describe actions that take `MaxResults` (every one of [`MAX_RESULTS`]; botocore
//! has a paginator for each: `NextToken` in, `nextToken` out, `MaxResults` the page size).
//!
//! A request pages when it gives `MaxResults` or `NextToken`. Its items (those its ids and
//! filters choose: filters apply before paging) are then listed in the order of a key of each
//! item (its id; see each handler) and cut after `MaxResults` of them; `nextToken` is answered
//! only when items remain after the page. Without `MaxResults` a page holds every item left
//! (EC2: "If this parameter is not specified, then all items are returned"), and a request that
//! gives neither is answered as before paging existed: every item, in the world's order.
//!
//! The token is a position, not a snapshot: it names the action and the key of the last item
//! returned, and the next page starts at the first item whose key is greater. So it stays valid
//! whatever changes between pages (EC2's tokens do too): an item deleted meanwhile (the last
//! one returned included) is simply not listed, one created meanwhile is listed if its key
//! comes later, and no item is listed twice. On the wire it is base64 of a 6-byte tag (the
//! start of a SHA-256 over the text) and the text `<action>\n<key>`: opaque to clients, and a
//! token that was cut, altered or given to another action is refused. A refused token is EC2's
//! answer to one, `InvalidParameterValue` "Value ( x ) for parameter NextToken is invalid. The
//! token is invalid." (as boto3 issue #2673 quotes DescribeVpcs). An empty token is refused
//! likewise, except by DescribeInstances and DescribeSecurityGroups, which EC2 lets start from
//! the beginning (boto3 issues #2134 and #2673).
//!
//! [`MAX_RESULTS`]: super::known_params::MAX_RESULTS

use sha2::{Digest, Sha256};

use super::params::Params;
use super::{Ec2Error, known_params};
use crate::services::s3::{base64_decode, base64_encode};

/// At most this many items per page, where the model sets no maximum (DescribeVpcEndpoints: "If
/// the value is greater than 1,000, we return only 1,000 items").
const MOST: usize = 1000;

/// The length of a token's tag.
const TAG: usize = 6;

/// Actions that take an empty `NextToken` as no token.
const EMPTY_TOKEN_STARTS: &[&str] = &["DescribeInstances", "DescribeSecurityGroups"];

/// How one request pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paging {
    action: &'static str,
    /// `MaxResults` or `NextToken` given: items in key order, a page at a time.
    paged: bool,
    /// Items per page.
    max: usize,
    /// The key of the last item returned before, from `NextToken`.
    after: Option<String>,
}

/// One page of items, and the token for the next when items remain.
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl Paging {
    /// Reads `MaxResults` (already checked against the action's range) and `NextToken`. An
    /// action without `MaxResults` never pages (its known parameters refuse both).
    pub fn of(action: &'static str, p: &Params) -> Result<Paging, Ec2Error> {
        let unpaged = Paging { action, paged: false, max: usize::MAX, after: None };
        if !known_params::MAX_RESULTS.iter().any(|(a, _, _)| *a == action) {
            return Ok(unpaged);
        }
        let max = p.int("MaxResults")?;
        let token =
            p.get("NextToken").filter(|t| !(t.is_empty() && EMPTY_TOKEN_STARTS.contains(&action)));
        let after = match token {
            Some(t) => Some(decode(action, t).ok_or_else(|| {
                Ec2Error::invalid(format!(
                    "Value ( {t} ) for parameter NextToken is invalid. The token is invalid."
                ))
            })?),
            None => None,
        };
        let max = match max {
            // check_max_results refused anything below the action's minimum (at least 1).
            Some(n) => usize::try_from(n).unwrap_or(MOST).clamp(1, MOST),
            None => usize::MAX,
        };
        Ok(Paging { paged: max != usize::MAX || after.is_some(), max, after, ..unpaged })
    }

    /// The page of `items` (already chosen by the request's ids and filters) this request
    /// asks for; `key` orders them and must tell them apart.
    pub fn page<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> Page<T> {
        if !self.paged {
            return Page { items, next: None };
        }
        items.sort_by_cached_key(|t| key(t));
        if let Some(after) = &self.after {
            let start = items.partition_point(|t| key(t).as_str() <= after.as_str());
            items.drain(..start);
        }
        let next = if items.len() > self.max {
            items.truncate(self.max);
            items.last().map(|t| encode(self.action, &key(t)))
        } else {
            None
        };
        Page { items, next }
    }
}

fn tag(text: &[u8]) -> [u8; TAG] {
    let digest = Sha256::new().chain_update(b"vpcsim NextToken\0").chain_update(text).finalize();
    let mut out = [0; TAG];
    out.copy_from_slice(&digest[..TAG]);
    out
}

/// The token after the item `key` of `action`.
fn encode(action: &str, key: &str) -> String {
    let text = format!("{action}\n{key}");
    let mut raw = tag(text.as_bytes()).to_vec();
    raw.extend_from_slice(text.as_bytes());
    base64_encode(&raw)
}

/// The key a token of `action` carries; `None` for anything [`encode`] did not make for it.
fn decode(action: &str, token: &str) -> Option<String> {
    let raw = base64_decode(token)?;
    let (t, text) = raw.split_at_checked(TAG)?;
    if t != tag(text) {
        return None;
    }
    let (a, key) = std::str::from_utf8(text).ok()?.split_once('\n')?;
    (a == action).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_carries_its_action_and_key() {
        let t = encode("DescribeTags", "i-0a0a0a0a\0Name");
        assert_eq!(decode("DescribeTags", &t).as_deref(), Some("i-0a0a0a0a\0Name"));
        assert_eq!(decode("DescribeVpcs", &t), None);
        assert_eq!(decode("DescribeTags", &t[..t.len() - 4]), None);
        assert_eq!(decode("DescribeTags", ""), None);
        assert_eq!(decode("DescribeTags", "AAAA"), None);
    }

    #[test]
    fn pages_follow_the_key_order() {
        let list = |max: &str, token: Option<&str>| {
            let mut v = vec![("MaxResults".to_string(), max.to_string())];
            v.extend(token.map(|t| ("NextToken".to_string(), t.to_string())));
            v
        };
        let items = vec!["c", "a", "e", "b", "d"];
        let p = list("2", None);
        let first = Paging::of("DescribeVpcEndpoints", &Params::new(&p)).unwrap();
        let page = first.page(items.clone(), |s| s.to_string());
        assert_eq!(page.items, ["a", "b"]);
        let p = list("2", page.next.as_deref());
        let page = Paging::of("DescribeVpcEndpoints", &Params::new(&p))
            .unwrap()
            .page(items.clone(), |s| s.to_string());
        assert_eq!(page.items, ["c", "d"]);
        let p = list("2", page.next.as_deref());
        let page = Paging::of("DescribeVpcEndpoints", &Params::new(&p))
            .unwrap()
            .page(items, |s| s.to_string());
        assert_eq!((page.items, page.next), (vec!["e"], None));
    }
}
