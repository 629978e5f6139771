//! Evaluation: whether a statement applies to a request, and what a policy decides. Pure
//! functions of the policy and the request; nothing here can panic on any input.

use std::net::IpAddr;

use super::{
    BaseOperator, Condition, Decision, Effect, Policy, PrincipalId, Principals, RequestContext,
    Scope, SetQualifier, Statement,
};

/// Glob matching with `*` (any run of characters, empty included) and `?` (exactly one
/// character), optionally case-insensitive. Linear-time backtracking on the last `*`.
pub fn matches_wildcard(pattern: &str, value: &str, case_insensitive: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    // Position of the last `*` seen and the value position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || chars_eq(p[pi], v[vi], case_insensitive)) {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            // Let that `*` swallow one more character and retry.
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Character equality, case-folded when asked (Unicode lowercase, not only ASCII).
pub(super) fn chars_eq(a: char, b: char, case_insensitive: bool) -> bool {
    a == b || (case_insensitive && a.to_lowercase().eq(b.to_lowercase()))
}

/// ARN matching as ArnLike and Resource do: `*` matches anything; otherwise both must have six
/// colon-separated segments (the sixth keeps further colons) and each segment matches with
/// case-sensitive wildcards that cannot cross a colon.
pub(super) fn arn_matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let v: Vec<&str> = value.splitn(6, ':').collect();
    p.len() == 6 && v.len() == 6 && p.iter().zip(&v).all(|(p, v)| matches_wildcard(p, v, false))
}

pub(super) fn evaluate(policy: &Policy, req: &RequestContext<'_>) -> Decision {
    evaluate_in(policy, policy.service.as_deref(), req)
}

/// Evaluates as if restricted to `service` (see [`Policy::for_service`]): for actions of that
/// service the restriction changes nothing, other actions are implicitly denied.
pub(super) fn evaluate_in(
    policy: &Policy,
    service: Option<&str>,
    req: &RequestContext<'_>,
) -> Decision {
    if let Some(svc) = service
        && !req.action.split_once(':').is_some_and(|(s, _)| s.eq_ignore_ascii_case(svc))
    {
        return Decision::Implicit;
    }
    let mut allow = None;
    for st in policy.statements.iter().filter(|st| statement_matches(st, req)) {
        match st.effect {
            Effect::Deny => return Decision::Deny { sid: st.sid.clone(), index: st.index },
            Effect::Allow => {
                if allow.is_none() {
                    allow = Some(st.sid.clone());
                }
            }
        }
    }
    match allow {
        Some(sid) => Decision::Allow { sid },
        None => Decision::Implicit,
    }
}

pub(super) fn statement_matches(st: &Statement, req: &RequestContext<'_>) -> bool {
    let principal_ok = match &st.principal {
        None => true,
        Some(Scope::Is(p)) => principal_matches(p, req.principal),
        Some(Scope::Not(p)) => !principal_matches(p, req.principal),
    };
    let action_ok = scope_matches(&st.action, |p| matches_wildcard(p, req.action, true));
    let resource_ok = scope_matches(&st.resource, |p| arn_matches(p, req.resource));
    principal_ok
        && action_ok
        && resource_ok
        && st.conditions.iter().all(|c| condition_holds(c, req))
}

fn scope_matches(scope: &Scope<Vec<String>>, matches: impl Fn(&str) -> bool) -> bool {
    match scope {
        Scope::Is(list) => list.iter().any(|p| matches(p)),
        Scope::Not(list) => !list.iter().any(|p| matches(p)),
    }
}

fn principal_matches(p: &Principals, caller: Option<&str>) -> bool {
    let ids = match p {
        Principals::Any => return true,
        Principals::Listed(ids) => ids,
    };
    ids.iter().any(|id| match (id, caller) {
        (PrincipalId::AnyAws, _) => true,
        (_, None) => false,
        (PrincipalId::Account(a), Some(c)) => c.split(':').nth(4) == Some(a.as_str()),
        (PrincipalId::Arn(a), Some(c)) => a == c,
        (PrincipalId::Service(s), Some(c)) => s.eq_ignore_ascii_case(c),
        (PrincipalId::Federated(s) | PrincipalId::CanonicalUser(s), Some(c)) => s == c,
    })
}

impl BaseOperator {
    /// Whether this is the negated form of another operator (StringNotEquals, NotIpAddress …).
    pub fn is_negated(self) -> bool {
        use BaseOperator::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | ArnNotEquals
                | ArnNotLike
                | NotIpAddress
        )
    }
}

/// Whether one request value matches one policy value under the positive form of the operator.
fn value_matches(c: &Condition, at: usize, policy: &str, req: &str) -> bool {
    use BaseOperator::*;
    match c.operator.base {
        StringEquals | StringNotEquals => policy == req,
        StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
            policy.to_lowercase() == req.to_lowercase()
        }
        StringLike | StringNotLike => matches_wildcard(policy, req, false),
        ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => arn_matches(policy, req),
        IpAddress | NotIpAddress => match (c.nets.get(at), req.parse::<IpAddr>()) {
            (Some(net), Ok(ip)) => net.contains(&ip),
            _ => false,
        },
        Bool => policy.eq_ignore_ascii_case(req),
        // Null is decided on presence alone, in condition_holds.
        Null => false,
    }
}

/// Whether one request value satisfies the operator: matches any policy value, or for a
/// negated operator none of them.
fn single_holds(c: &Condition, req: &str) -> bool {
    let any = c.values.iter().enumerate().any(|(at, v)| value_matches(c, at, v, req));
    any != c.operator.base.is_negated()
}

fn condition_holds(c: &Condition, req: &RequestContext<'_>) -> bool {
    let vals = req.values(&c.key);
    let present = !vals.is_empty();
    let op = c.operator;
    if op.base == BaseOperator::Null {
        // "true": the key must be absent; "false": present. Several values are OR-ed.
        return c.values.iter().any(|v| v.eq_ignore_ascii_case("true") != present);
    }
    match op.set {
        None if !present => op.if_exists || op.base.is_negated(),
        None => {
            let any = vals
                .iter()
                .any(|r| c.values.iter().enumerate().any(|(at, v)| value_matches(c, at, v, r)));
            any != op.base.is_negated()
        }
        Some(SetQualifier::ForAnyValue) => {
            if present {
                vals.iter().any(|r| single_holds(c, r))
            } else {
                op.if_exists
            }
        }
        Some(SetQualifier::ForAllValues) => vals.iter().all(|r| single_holds(c, r)),
    }
}

/// Whether an action pattern can name some action of `service`.
fn pattern_in_service(pattern: &str, service: &str) -> bool {
    match pattern.split_once(':') {
        Some((svc, _)) => matches_wildcard(svc, service, true),
        None => pattern == "*" || matches_wildcard(pattern, &format!("{service}:x"), true),
    }
}

/// Whether an action pattern names every action of `service` (`s3:*`, `*`, `s?:*` …). A pattern
/// ending in `*` that matches `service:` also matches `service:` followed by anything.
fn pattern_covers_service(pattern: &str, service: &str) -> bool {
    pattern.ends_with('*') && matches_wildcard(pattern, &format!("{service}:"), true)
}

pub(super) fn for_service(policy: &Policy, service: &str) -> Policy {
    let statements = policy
        .statements
        .iter()
        .filter_map(|st| {
            let action = match &st.action {
                Scope::Is(list) => {
                    let kept: Vec<String> =
                        list.iter().filter(|p| pattern_in_service(p, service)).cloned().collect();
                    if kept.is_empty() {
                        return None;
                    }
                    Scope::Is(kept)
                }
                Scope::Not(list) => {
                    if list.iter().any(|p| pattern_covers_service(p, service)) {
                        return None;
                    }
                    Scope::Not(list.clone())
                }
            };
            Some(Statement { action, ..st.clone() })
        })
        .collect();
    Policy { statements, service: Some(service.to_string()), ..policy.clone() }
}
