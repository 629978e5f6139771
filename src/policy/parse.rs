//! Parsing and validation: JSON text to a [`Policy`], or the first problem found, naming the
//! statement and the element. Invariant: every `Policy` built here has at least one statement,
//! action patterns that are `*` or `service:action`, resource patterns that are `*` or ARNs,
//! and condition values its operator can use (IP operators carry their parsed networks).

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::eval;
use super::{
    BaseOperator, Condition, Effect, Operator, Policy, PolicyError, PolicyKind, PrincipalId,
    Principals, Scope, SetQualifier, Statement, StatementError,
};

pub(super) const STATEMENT_ELEMENTS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

pub(super) fn parse(json: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))?;
    let Value::Object(doc) = doc else {
        return Err(PolicyError::NotObject);
    };
    if let Some(k) = doc.keys().find(|k| !matches!(k.as_str(), "Version" | "Id" | "Statement")) {
        return Err(PolicyError::UnknownElement(k.clone()));
    }
    let version = match doc.get("Version") {
        None => None,
        Some(Value::String(v)) if v == "2008-10-17" || v == "2012-10-17" => Some(v.clone()),
        Some(_) => return Err(PolicyError::Version),
    };
    let id = match doc.get("Id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(PolicyError::Id),
    };
    let raw: Vec<&Value> = match doc.get("Statement") {
        None => return Err(PolicyError::NoStatement),
        Some(Value::Array(a)) if !a.is_empty() => a.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        Some(_) => return Err(PolicyError::StatementShape),
    };
    let mut statements: Vec<Statement> = Vec::with_capacity(raw.len());
    for (index, v) in raw.into_iter().enumerate() {
        let sid = v.get("Sid").and_then(Value::as_str).map(str::to_owned);
        let fail = |problem| PolicyError::Statement { index, sid: sid.clone(), problem };
        let mut st = statement(index, v, kind).map_err(fail)?;
        st.variables = version.as_deref() == Some("2012-10-17");
        if st.sid.is_some() && statements.iter().any(|s| s.sid == st.sid) {
            return Err(fail(StatementError::DuplicateSid));
        }
        statements.push(st);
    }
    Ok(Policy { text: json.to_string(), kind, version, id, statements, service: None })
}

fn statement(index: usize, v: &Value, kind: PolicyKind) -> Result<Statement, StatementError> {
    let Value::Object(m) = v else {
        return Err(StatementError::NotObject);
    };
    if let Some(k) = m.keys().find(|k| !STATEMENT_ELEMENTS.contains(&k.as_str())) {
        return Err(StatementError::UnknownElement(k.clone()));
    }
    let sid = match m.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(StatementError::Sid),
    };
    let effect = match m.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(StatementError::Effect),
    };
    let principal = match (m.get("Principal"), m.get("NotPrincipal")) {
        (Some(_), Some(_)) => return Err(StatementError::Both("Principal", "NotPrincipal")),
        (None, None) if kind.requires_principal() => {
            return Err(StatementError::PrincipalRequired(kind));
        }
        (None, None) => None,
        (Some(_), None) if !kind.requires_principal() => {
            return Err(StatementError::PrincipalNotAllowed("Principal"));
        }
        (None, Some(_)) if !kind.requires_principal() => {
            return Err(StatementError::PrincipalNotAllowed("NotPrincipal"));
        }
        (Some(p), None) => Some(Scope::Is(principals("Principal", p)?)),
        (None, Some(p)) => Some(Scope::Not(principals("NotPrincipal", p)?)),
    };
    let action = scoped(m, "Action", "NotAction", |field, value| {
        let ok = value == "*"
            || value
                .split_once(':')
                .is_some_and(|(svc, act)| !svc.is_empty() && !act.is_empty() && !act.contains(':'));
        if ok { Ok(()) } else { Err(StatementError::Action { field, value: value.to_string() }) }
    })?;
    let resource = scoped(m, "Resource", "NotResource", |field, value| {
        if value == "*" || (value.starts_with("arn:") && value.splitn(6, ':').count() == 6) {
            Ok(())
        } else {
            Err(StatementError::Resource { field, value: value.to_string() })
        }
    })?;
    let conditions = match m.get("Condition") {
        None => Vec::new(),
        Some(c) => conditions(c)?,
    };
    Ok(Statement { index, sid, effect, principal, action, resource, conditions, variables: false })
}

/// `Action`/`NotAction` or `Resource`/`NotResource`: exactly one of the two, each entry checked.
fn scoped(
    m: &Map<String, Value>,
    is: &'static str,
    not: &'static str,
    check: impl Fn(&'static str, &str) -> Result<(), StatementError>,
) -> Result<Scope<Vec<String>>, StatementError> {
    let (field, v, negated) = match (m.get(is), m.get(not)) {
        (Some(_), Some(_)) => return Err(StatementError::Both(is, not)),
        (None, None) => return Err(StatementError::Missing(is, not)),
        (Some(v), None) => (is, v, false),
        (None, Some(v)) => (not, v, true),
    };
    let list = strings(field, field, v)?;
    for s in &list {
        check(field, s)?;
    }
    Ok(if negated { Scope::Not(list) } else { Scope::Is(list) })
}

/// A string or a non-empty list of strings. `name` is used in messages (`Action[1] ...`).
fn strings(field: &'static str, name: &str, v: &Value) -> Result<Vec<String>, StatementError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .enumerate()
            .map(|(at, e)| match e {
                Value::String(s) => Ok(s.clone()),
                other => Err(StatementError::NotString {
                    field: name.to_string(),
                    at,
                    found: json_type(other),
                }),
            })
            .collect(),
        _ => Err(StatementError::NotStrings(field)),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn principals(field: &'static str, v: &Value) -> Result<Principals, StatementError> {
    let m = match v {
        Value::String(s) if s == "*" => return Ok(Principals::Any),
        Value::Object(m) if !m.is_empty() => m,
        _ => return Err(StatementError::PrincipalShape(field)),
    };
    let mut ids = Vec::new();
    for (ty, vals) in m {
        let name = format!("{field}.{ty}");
        let vals = strings(field, &name, vals).map_err(|e| match e {
            StatementError::NotStrings(_) => StatementError::PrincipalShape(field),
            e => e,
        })?;
        for s in vals {
            ids.push(match ty.as_str() {
                "AWS" => aws_principal(field, s)?,
                "Service" => PrincipalId::Service(s),
                "Federated" => PrincipalId::Federated(s),
                "CanonicalUser" => PrincipalId::CanonicalUser(s),
                _ => return Err(StatementError::PrincipalShape(field)),
            });
        }
    }
    Ok(Principals::Listed(ids))
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn aws_principal(field: &'static str, s: String) -> Result<PrincipalId, StatementError> {
    if s == "*" {
        return Ok(PrincipalId::AnyAws);
    }
    if is_account_id(&s) {
        return Ok(PrincipalId::Account(s));
    }
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" && !parts[5].is_empty() {
        if parts[2] == "iam" && parts[5] == "root" && is_account_id(parts[4]) {
            return Ok(PrincipalId::Account(parts[4].to_string()));
        }
        return Ok(PrincipalId::Arn(s));
    }
    Err(StatementError::AwsPrincipal { field, value: s })
}

impl Operator {
    /// Parses an operator name such as `ForAnyValue:StringNotLikeIfExists`; `None` when unknown.
    /// `Null` takes neither a set prefix nor `IfExists`.
    pub fn parse(name: &str) -> Option<Operator> {
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), r)
        } else {
            (None, name)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        use BaseOperator::*;
        let base = match base {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            "ArnEquals" => ArnEquals,
            "ArnLike" => ArnLike,
            "ArnNotEquals" => ArnNotEquals,
            "ArnNotLike" => ArnNotLike,
            "IpAddress" => IpAddress,
            "NotIpAddress" => NotIpAddress,
            "NumericEquals" => NumericEquals,
            "NumericNotEquals" => NumericNotEquals,
            "NumericLessThan" => NumericLessThan,
            "NumericLessThanEquals" => NumericLessThanEquals,
            "NumericGreaterThan" => NumericGreaterThan,
            "NumericGreaterThanEquals" => NumericGreaterThanEquals,
            "DateEquals" => DateEquals,
            "DateNotEquals" => DateNotEquals,
            "DateLessThan" => DateLessThan,
            "DateLessThanEquals" => DateLessThanEquals,
            "DateGreaterThan" => DateGreaterThan,
            "DateGreaterThanEquals" => DateGreaterThanEquals,
            "Bool" => Bool,
            "BinaryEquals" => BinaryEquals,
            "Null" if !if_exists && set.is_none() => Null,
            _ => return None,
        };
        Some(Operator { set, base, if_exists })
    }
}

impl BaseOperator {
    /// NumericEquals … NumericGreaterThanEquals.
    pub fn is_numeric(self) -> bool {
        use BaseOperator::*;
        matches!(
            self,
            NumericEquals
                | NumericNotEquals
                | NumericLessThan
                | NumericLessThanEquals
                | NumericGreaterThan
                | NumericGreaterThanEquals
        )
    }

    /// DateEquals … DateGreaterThanEquals.
    pub fn is_date(self) -> bool {
        use BaseOperator::*;
        matches!(
            self,
            DateEquals
                | DateNotEquals
                | DateLessThan
                | DateLessThanEquals
                | DateGreaterThan
                | DateGreaterThanEquals
        )
    }
}

fn conditions(v: &Value) -> Result<Vec<Condition>, StatementError> {
    let Value::Object(ops) = v else {
        return Err(StatementError::ConditionShape);
    };
    let mut out = Vec::new();
    for (op_name, block) in ops {
        let operator = Operator::parse(op_name)
            .ok_or_else(|| StatementError::UnknownOperator(op_name.clone()))?;
        let block = match block {
            Value::Object(b) if !b.is_empty() => b,
            _ => return Err(StatementError::OperatorBlock(op_name.clone())),
        };
        for (key, vals) in block {
            let key_ok =
                key.split_once(':').is_some_and(|(svc, name)| !svc.is_empty() && !name.is_empty());
            if !key_ok {
                return Err(StatementError::ConditionKey { op: op_name.clone(), key: key.clone() });
            }
            let bad = || StatementError::ConditionValues { op: op_name.clone(), key: key.clone() };
            let scalar = |v: &Value| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(bad()),
            };
            let values: Vec<String> = match vals {
                Value::Array(a) if !a.is_empty() => {
                    a.iter().map(scalar).collect::<Result<_, _>>()?
                }
                Value::Array(_) => return Err(bad()),
                v => vec![scalar(v)?],
            };
            let invalid = |value: &str, expected| StatementError::ConditionValue {
                op: op_name.clone(),
                key: key.clone(),
                value: value.to_string(),
                expected,
            };
            let mut nets = Vec::new();
            match operator.base {
                BaseOperator::IpAddress | BaseOperator::NotIpAddress => {
                    for s in &values {
                        nets.push(parse_net(s).ok_or_else(|| invalid(s, "an IP address or CIDR"))?);
                    }
                }
                base if base.is_numeric() => {
                    if let Some(s) = values.iter().find(|s| eval::parse_number(s).is_none()) {
                        return Err(invalid(s, "a number"));
                    }
                }
                base if base.is_date() => {
                    if let Some(s) = values.iter().find(|s| eval::parse_date(s).is_none()) {
                        return Err(invalid(s, "an ISO 8601 date or epoch seconds"));
                    }
                }
                BaseOperator::Bool | BaseOperator::Null => {
                    if let Some(s) = values.iter().find(|s| {
                        !s.eq_ignore_ascii_case("true") && !s.eq_ignore_ascii_case("false")
                    }) {
                        return Err(invalid(s, "\"true\" or \"false\""));
                    }
                }
                _ => {}
            }
            out.push(Condition {
                operator_name: op_name.clone(),
                operator,
                key: key.clone(),
                values,
                nets,
            });
        }
    }
    Ok(out)
}

/// An address (as a host network) or a CIDR.
pub(super) fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}
