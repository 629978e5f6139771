//! Evaluation: whether a statement applies to a request, and what a policy decides. Pure
//! functions of the policy and the request; nothing here can panic on any input.

use std::borrow::Cow;
use std::net::IpAddr;

use super::{
    BaseOperator, Condition, Decision, Effect, Policy, PrincipalId, Principals, RequestContext,
    Scope, SetQualifier, Statement,
};

/// One element of a pattern: a character to match literally, `*` or `?`. A policy variable's
/// value (and `${*}`, `${?}`) becomes literal characters, never wildcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok {
    /// This character.
    Lit(char),
    /// `*`: any run of characters, empty included.
    Any,
    /// `?`: exactly one character.
    One,
}

impl Tok {
    /// The character as written in a string comparison (where `*` and `?` are not wildcards).
    fn as_char(self) -> char {
        match self {
            Tok::Lit(c) => c,
            Tok::Any => '*',
            Tok::One => '?',
        }
    }
}

/// A pattern without policy variables.
fn tokens(pattern: &str) -> Vec<Tok> {
    pattern.chars().map(wildcard_tok).collect()
}

fn wildcard_tok(c: char) -> Tok {
    match c {
        '*' => Tok::Any,
        '?' => Tok::One,
        c => Tok::Lit(c),
    }
}

/// Glob matching with `*` (any run of characters, empty included) and `?` (exactly one
/// character), optionally case-insensitive. Linear-time backtracking on the last `*`.
pub fn matches_wildcard(pattern: &str, value: &str, case_insensitive: bool) -> bool {
    tokens_match(&tokens(pattern), value, case_insensitive)
}

fn tokens_match(p: &[Tok], value: &str, case_insensitive: bool) -> bool {
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    // Position of the last `*` seen and the value position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        match p.get(pi) {
            Some(Tok::Any) => {
                star = Some((pi, vi));
                pi += 1;
                continue;
            }
            Some(Tok::One) => {
                pi += 1;
                vi += 1;
                continue;
            }
            Some(Tok::Lit(c)) if chars_eq(*c, v[vi], case_insensitive) => {
                pi += 1;
                vi += 1;
                continue;
            }
            _ => {}
        }
        if let Some((sp, sv)) = star {
            // Let that `*` swallow one more character and retry.
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&t| t == Tok::Any)
}

/// Character equality, case-folded when asked (Unicode lowercase, not only ASCII).
pub(super) fn chars_eq(a: char, b: char, case_insensitive: bool) -> bool {
    a == b || (case_insensitive && a.to_lowercase().eq(b.to_lowercase()))
}

/// `text` with its policy variables replaced from the request (IAM, "Policy variables"): when
/// "the policy is evaluated, the policy variables are replaced with values that come from the
/// context of the request itself". `${key}` takes the key's value (names case-insensitive),
/// `${key, 'default'}` the default when the key has none; `${*}`, `${?}` and `${$}` are a
/// literal `*`, `?` and `$` ("use where you need an * (asterisk) character"). `None` when a
/// variable has no value: for a key that is "not present", "any attempt to match it fails and
/// causes the statement to be invalid". A key with several values has none to substitute.
/// A `${` without its `}` is kept as written.
pub(super) fn expand(text: &str, req: &RequestContext<'_>) -> Option<Vec<Tok>> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.extend(rest[..at].chars().map(wildcard_tok));
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            rest = &rest[at..];
            break;
        };
        let inner = &after[..end];
        match inner {
            "*" | "?" | "$" => out.extend(inner.chars().map(Tok::Lit)),
            _ => {
                let (key, default) = match inner.split_once(',') {
                    Some((k, d)) => {
                        let d = d.trim().strip_prefix('\'')?.strip_suffix('\'')?;
                        (k.trim(), Some(d))
                    }
                    None => (inner.trim(), None),
                };
                let value = match req.values(key)[..] {
                    [one] => one,
                    _ => default?,
                };
                out.extend(value.chars().map(Tok::Lit));
            }
        }
        rest = &after[end + 1..];
    }
    out.extend(rest.chars().map(wildcard_tok));
    Some(out)
}

/// A pattern from the policy: its variables substituted when `vars` is given (the statement's
/// policy is of Version 2012-10-17), else as written.
fn pattern(text: &str, vars: Option<&RequestContext<'_>>) -> Option<Vec<Tok>> {
    match vars {
        Some(req) if text.contains("${") => expand(text, req),
        _ => Some(tokens(text)),
    }
}

/// A value for a string comparison (no wildcards), its variables substituted as for
/// [`pattern`].
fn literal<'t>(text: &'t str, vars: Option<&RequestContext<'_>>) -> Option<Cow<'t, str>> {
    match vars {
        Some(req) if text.contains("${") => {
            expand(text, req).map(|t| Cow::Owned(t.into_iter().map(Tok::as_char).collect()))
        }
        _ => Some(Cow::Borrowed(text)),
    }
}

/// ARN matching as ArnLike and Resource do: `*` matches anything; otherwise both must have six
/// colon-separated segments (the sixth keeps further colons) and each segment matches with
/// case-sensitive wildcards that cannot cross a colon. Policy variables are substituted when
/// `vars` is given. IAM: "You can use
/// a policy variable in the Resource element, but only in the resource portion of the ARN.
/// This portion of the ARN appears after the fifth colon", so the pattern is split first and
/// a variable (`${aws:username}` has a colon of its own) is expanded within its segment.
/// `None` when a variable has no value.
fn arn_matches_with(pattern: &str, value: &str, vars: Option<&RequestContext<'_>>) -> Option<bool> {
    if pattern == "*" {
        return Some(true);
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let v: Vec<&str> = value.splitn(6, ':').collect();
    if p.len() != 6 || v.len() != 6 {
        return Some(false);
    }
    let mut all = true;
    for (p, v) in p.iter().zip(&v) {
        all &= tokens_match(&self::pattern(p, vars)?, v, false);
    }
    Some(all)
}

pub(super) fn evaluate(policy: &Policy, req: &RequestContext<'_>) -> Decision {
    evaluate_in(policy, policy.service.as_deref(), req)
}

/// What a resource policy grants on its own, as a source of permissions beside the caller's
/// identity policy: as [`evaluate`], except that an Allow statement that names the caller's
/// account and not the caller is no grant. IAM, "AWS account principals": naming an account
/// "delegates authority to the account"; "Policy evaluation logic": "the principal ARN that is
/// specified in the policy determines whether implicit denies in other policy types are
/// applicable to the final decision", and only "If a resource-based policy grants permission
/// directly to the IAM user ... that is making the request, then an implicit deny in an
/// identity-based policy ... does not impact the final decision". Denies are unchanged: a Deny
/// naming the account denies every caller of it.
pub(super) fn evaluate_grant(policy: &Policy, req: &RequestContext<'_>) -> Decision {
    evaluate_with(policy, policy.service.as_deref(), req, true)
}

/// Evaluates as if restricted to `service` (see [`Policy::for_service`]): for actions of that
/// service the restriction changes nothing, other actions are implicitly denied.
pub(super) fn evaluate_in(
    policy: &Policy,
    service: Option<&str>,
    req: &RequestContext<'_>,
) -> Decision {
    evaluate_with(policy, service, req, false)
}

/// [`evaluate_in`]; `direct_grants_only`: see [`evaluate_grant`].
fn evaluate_with(
    policy: &Policy,
    service: Option<&str>,
    req: &RequestContext<'_>,
    direct_grants_only: bool,
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
            Effect::Allow if direct_grants_only && !names_caller(st, req.principal) => {}
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
    let vars = st.variables.then_some(req);
    let principal_ok = match &st.principal {
        None => true,
        Some(Scope::Is(p)) => principal_matches(p, req.principal),
        Some(Scope::Not(p)) => !not_principal_exempts(p, req.principal),
    };
    let action_ok = scope_matches(&st.action, |p| matches_wildcard(p, req.action, true));
    // A Resource whose variable has no value does not match; a NotResource with one makes the
    // statement not apply (IAM: the attempt "causes the statement to be invalid").
    let resource_ok = match &st.resource {
        Scope::Is(list) => {
            list.iter().any(|p| arn_matches_with(p, req.resource, vars) == Some(true))
        }
        Scope::Not(list) => list
            .iter()
            .map(|p| arn_matches_with(p, req.resource, vars))
            .try_fold(true, |none, m| m.map(|m| none && !m))
            .unwrap_or(false),
    };
    principal_ok
        && action_ok
        && resource_ok
        && st.conditions.iter().all(|c| condition_holds(c, req, vars))
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
    ids.iter().any(|id| id_matches(id, caller))
}

fn id_matches(id: &PrincipalId, caller: Option<&str>) -> bool {
    match (id, caller) {
        (PrincipalId::AnyAws, _) => true,
        (_, None) => false,
        (PrincipalId::Account(a), Some(c)) => c.split(':').nth(4) == Some(a.as_str()),
        (PrincipalId::Arn(a), Some(c)) => a == c,
        (PrincipalId::Service(s), Some(c)) => s.eq_ignore_ascii_case(c),
        (PrincipalId::Federated(s) | PrincipalId::CanonicalUser(s), Some(c)) => s == c,
    }
}

/// Whether a NotPrincipal list exempts the caller. IAM, "NotPrincipal": "AWS might validate the
/// account first and then the user", so "you must also specify the account ARN of the
/// not-denied principal. Otherwise, the policy might deny access to the entire account". A
/// caller is the chain of its account and itself: the list exempts it only when it names every
/// link, its account as an account (`arn:aws:iam::ACCOUNT:root` or the bare id) and the caller
/// itself (its ARN). The account alone exempts the account's root, not its users; the user
/// alone leaves its account, which the statement then applies to. An anonymous caller is
/// exempt only from `"*"`; the account's root, or a caller of no account (a service), is one
/// link.
fn not_principal_exempts(p: &Principals, caller: Option<&str>) -> bool {
    let ids = match p {
        Principals::Any => return true,
        Principals::Listed(ids) => ids,
    };
    let itself = ids.iter().any(|id| names_itself(id, caller));
    itself && (!has_account_link(caller) || ids.iter().any(|id| names_account(id, caller)))
}

/// Whether the caller is a principal of an account other than the account itself (an IAM user):
/// AWS validates its account before it.
fn has_account_link(caller: Option<&str>) -> bool {
    caller.is_some_and(|c| {
        !c.ends_with(":root") && c.split(':').nth(4).is_some_and(|a| !a.is_empty())
    })
}

/// Whether `id` names the caller's account as a principal: everyone, or that account.
fn names_account(id: &PrincipalId, caller: Option<&str>) -> bool {
    matches!(id, PrincipalId::AnyAws | PrincipalId::Account(_)) && id_matches(id, caller)
}

/// Whether `id` names the caller itself, not merely through its account: everyone, its own ARN,
/// or the account when the caller is the account itself (`arn:aws:iam::ACCOUNT:root`).
fn names_itself(id: &PrincipalId, caller: Option<&str>) -> bool {
    match id {
        PrincipalId::Account(_) => {
            caller.is_some_and(|c| c.ends_with(":root")) && id_matches(id, caller)
        }
        _ => id_matches(id, caller),
    }
}

/// Whether a statement that applies to the caller grants to the caller itself, not only through
/// its account (see [`evaluate_grant`]). A Principal must name the caller itself
/// ([`names_itself`]): everyone (`"*"`, `{"AWS": "*"}`), its own ARN, or the account when the
/// caller is the account's root. A statement without principal (an identity policy's) grants
/// to its holder.
///
/// A `NotPrincipal` grants to the caller itself unless it names the caller itself. IAM,
/// "NotPrincipal" (the guide's earlier text; it now calls Allow with NotPrincipal "not
/// supported", and S3 still takes such policies): "When you use NotPrincipal in the same policy
/// statement as "Effect": "Allow", the permissions specified in the policy statement will be
/// granted to all principals except for the one(s) specified, including anonymous
/// (unauthenticated) users". So it grants as `"*"` does: a user of the account it does not name
/// needs no identity policy, and neither does anonymous. A user it names, without its account,
/// is left the account link (see [`not_principal_exempts`]): a grant to the account, which
/// delegates to the user's identity policy, as a Principal naming the account does. The
/// account alone exempts only the account's root: its users are granted alone.
fn names_caller(st: &Statement, caller: Option<&str>) -> bool {
    match &st.principal {
        Some(Scope::Is(Principals::Listed(ids))) => ids.iter().any(|id| names_itself(id, caller)),
        Some(Scope::Not(Principals::Listed(ids))) => !ids.iter().any(|id| names_itself(id, caller)),
        _ => true,
    }
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
                | NumericNotEquals
                | DateNotEquals
        )
    }

    /// Whether policy variables may appear in its values. IAM: "You can use a policy variable
    /// for Condition values in any condition that involves the string operators or the ARN
    /// operators ... You can't use a policy variable with other operators".
    fn takes_variables(self) -> bool {
        use BaseOperator::*;
        matches!(
            self,
            StringEquals
                | StringNotEquals
                | StringEqualsIgnoreCase
                | StringNotEqualsIgnoreCase
                | StringLike
                | StringNotLike
                | ArnEquals
                | ArnLike
                | ArnNotEquals
                | ArnNotLike
        )
    }
}

/// A number as the Numeric operators read it (integers and decimals).
pub(super) fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A date as the Date operators read it, in milliseconds since the epoch: epoch seconds, or
/// ISO 8601 (`2024-01-31`, `2024-01-31T12:00:00Z`, with optional fractional seconds and a `Z`
/// or `±hh:mm` offset; no offset is UTC). IAM: "You must use one of the W3C implementations
/// of the ISO 8601 date formats ... or epoch (UNIX) time".
pub(super) fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok()?.checked_mul(1000);
    }
    let num = |t: &str, len: usize| -> Option<i64> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut ymd = date.split('-');
    let (y, m, d) = (num(ymd.next()?, 4)?, num(ymd.next()?, 2)?, num(ymd.next()?, 2)?);
    if ymd.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut millis = 0;
    let mut offset = 0;
    if let Some(t) = time {
        let (clock, off) = if let Some(c) = t.strip_suffix('Z') {
            (c, 0)
        } else if let Some(at) = t.rfind(['+', '-']) {
            let (hh, mm) = t[at + 1..].split_once(':')?;
            let sign = if t.as_bytes()[at] == b'-' { -1 } else { 1 };
            (&t[..at], sign * (num(hh, 2)? * 60 + num(mm, 2)?) * 60_000)
        } else {
            (t, 0)
        };
        offset = off;
        let (clock, frac) = match clock.split_once('.') {
            Some((c, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                (c, format!("{f:0<3}")[..3].parse::<i64>().ok()?)
            }
            Some(_) => return None,
            None => (clock, 0),
        };
        let mut hms = clock.split(':');
        let hh = num(hms.next()?, 2)?;
        let mm = num(hms.next()?, 2)?;
        let ss = hms.next().map_or(Some(0), |x| num(x, 2))?;
        if hms.next().is_some() || hh > 23 || mm > 59 || ss > 60 {
            return None;
        }
        millis = ((hh * 60 + mm) * 60 + ss) * 1000 + frac;
    }
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86_400_000 + millis - offset)
}

/// Whether one request value matches one policy value under the positive form of the operator
/// (for the ordered operators: stands in that order to it). `vars`: substitute the policy
/// value's variables; `None` when one has no value (the statement does not apply).
fn value_matches(
    c: &Condition,
    at: usize,
    policy: &str,
    req: &str,
    vars: Option<&RequestContext<'_>>,
) -> Option<bool> {
    use BaseOperator::*;
    use std::cmp::Ordering;
    let vars = vars.filter(|_| c.operator.base.takes_variables());
    let ordered = |ord: Option<Ordering>| {
        Some(ord.is_some_and(|o| match c.operator.base {
            NumericLessThan | DateLessThan => o.is_lt(),
            NumericLessThanEquals | DateLessThanEquals => o.is_le(),
            NumericGreaterThan | DateGreaterThan => o.is_gt(),
            NumericGreaterThanEquals | DateGreaterThanEquals => o.is_ge(),
            _ => o.is_eq(),
        }))
    };
    match c.operator.base {
        StringEquals | StringNotEquals => Some(*literal(policy, vars)? == *req),
        StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
            Some(literal(policy, vars)?.to_lowercase() == req.to_lowercase())
        }
        StringLike | StringNotLike => Some(tokens_match(&pattern(policy, vars)?, req, false)),
        ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => arn_matches_with(policy, req, vars),
        IpAddress | NotIpAddress => Some(match (c.nets.get(at), req.parse::<IpAddr>()) {
            (Some(net), Ok(ip)) => net.contains(&ip),
            _ => false,
        }),
        NumericEquals
        | NumericNotEquals
        | NumericLessThan
        | NumericLessThanEquals
        | NumericGreaterThan
        | NumericGreaterThanEquals => ordered(
            parse_number(req).zip(parse_number(policy)).and_then(|(r, p)| r.partial_cmp(&p)),
        ),
        DateEquals
        | DateNotEquals
        | DateLessThan
        | DateLessThanEquals
        | DateGreaterThan
        | DateGreaterThanEquals => {
            ordered(parse_date(req).zip(parse_date(policy)).map(|(r, p)| r.cmp(&p)))
        }
        Bool => Some(policy.eq_ignore_ascii_case(req)),
        BinaryEquals => Some(policy == req),
        // Null is decided on presence alone, in condition_holds.
        Null => Some(false),
    }
}

/// Whether any policy value matches one request value; `None` when a variable has no value.
fn any_value_matches(c: &Condition, req: &str, vars: Option<&RequestContext<'_>>) -> Option<bool> {
    let mut any = false;
    for (at, v) in c.values.iter().enumerate() {
        any |= value_matches(c, at, v, req, vars)?;
    }
    Some(any)
}

/// Whether one request value satisfies the operator: matches any policy value, or for a
/// negated operator none of them.
fn single_holds(c: &Condition, req: &str, vars: Option<&RequestContext<'_>>) -> bool {
    any_value_matches(c, req, vars).is_some_and(|any| any != c.operator.base.is_negated())
}

fn condition_holds(
    c: &Condition,
    req: &RequestContext<'_>,
    vars: Option<&RequestContext<'_>>,
) -> bool {
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
            let mut any = false;
            for r in &vals {
                match any_value_matches(c, r, vars) {
                    Some(m) => any |= m,
                    None => return false,
                }
            }
            any != op.base.is_negated()
        }
        Some(SetQualifier::ForAnyValue) => {
            if present {
                vals.iter().any(|r| single_holds(c, r, vars))
            } else {
                op.if_exists
            }
        }
        Some(SetQualifier::ForAllValues) => vals.iter().all(|r| single_holds(c, r, vars)),
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
