//! `Filter.N` matching: a resource matches when, for every filter, one of its values for that
//! filter name matches one of the filter's values (`*` and `?` are wildcards, as in AWS).

use std::collections::BTreeMap;

use super::Ec2Error;
use super::params::Filter;

/// The values a resource has for a filter name; `None` when the name is not a filter of this
/// resource type.
pub type Values = Option<Vec<String>>;

/// Whether a resource passes every filter. `get` answers the resource's values for a filter
/// name (tag filters are answered from `tags`).
pub fn matches(
    filters: &[Filter],
    tags: Option<&BTreeMap<String, String>>,
    get: impl Fn(&str) -> Values,
) -> Result<bool, Ec2Error> {
    for f in filters {
        if f.unmodelled {
            return Ok(false);
        }
        let values = match tag_values(&f.name, tags) {
            Some(v) => v,
            None => get(&f.name)
                .ok_or_else(|| Ec2Error::invalid(format!("The filter '{}' is invalid", f.name)))?,
        };
        if !values.iter().any(|v| f.values.iter().any(|p| glob(p, v))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `name` is a filter of an action whose own filters are `names`: one of them, or a
/// tag filter (`tag:<key>`, `tag-key`, `tag-value`).
pub fn known(name: &str, names: &[&str]) -> bool {
    names.contains(&name) || name.starts_with("tag:") || name == "tag-key" || name == "tag-value"
}

fn tag_values(name: &str, tags: Option<&BTreeMap<String, String>>) -> Values {
    let empty = BTreeMap::new();
    let tags = tags.unwrap_or(&empty);
    if let Some(key) = name.strip_prefix("tag:") {
        return Some(tags.get(key).cloned().into_iter().collect());
    }
    match name {
        "tag-key" => Some(tags.keys().cloned().collect()),
        "tag-value" => Some(tags.values().cloned().collect()),
        _ => None,
    }
}

/// AWS filter wildcards: `*` any run, `?` one character.
pub fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// One value.
pub fn one(s: impl Into<String>) -> Values {
    Some(vec![s.into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("vpc-*", "vpc-111bbb22"));
        assert!(glob("10.0.?.0/24", "10.0.1.0/24"));
        assert!(!glob("vpc-1", "vpc-111bbb22"));
        assert!(glob("*", ""));
    }
}
