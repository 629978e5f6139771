//! IAM policy documents: parsing, validation and evaluation of identity (IAM user) policies, S3
//! bucket policies and VPC endpoint policies, and the combination of several policies into one
//! verdict for a request.
//!
//! # Documents
//! A policy is a JSON object with an optional `Version` (`"2008-10-17"` or `"2012-10-17"`), an
//! optional `Id` and a `Statement` that is one object or a non-empty list. A statement has an
//! optional `Sid` (unique within the policy), an `Effect` (`"Allow"` or `"Deny"`), exactly one of
//! `Action`/`NotAction`, exactly one of `Resource`/`NotResource`, an optional `Condition`, and
//! `Principal`/`NotPrincipal` according to the [`PolicyKind`]: identity policies have none,
//! resource policies (bucket and endpoint policies) need one in every statement (the guide:
//! "Your policy must contain a Principal element"). Element and operator names are
//! case-sensitive; unknown elements and operators are rejected. Every validation error names the
//! statement (counted from 0, as in [`Policy::statements`] and [`Decision::Deny`]) and its Sid:
//! `statement 2 (Sid "X"): Effect must be "Allow" or "Deny"`.
//!
//! # Matching one statement
//! A statement applies to a request when its principal, action, resource and every condition
//! match:
//! - Actions: `*` and `?` wildcards, case-insensitive (`s3:get*` matches `s3:GetObject`).
//! - Resources: `*` matches everything (also the resource `"*"` of EC2 actions without
//!   resource-level permissions); otherwise ARNs are compared segment by segment (six
//!   colon-separated segments, the last one keeps any further colons) with case-sensitive
//!   wildcards that never cross a segment. A request for resource `"*"` is therefore only matched
//!   by `Resource: "*"`: the guide has no resource-level permissions for `ec2:*VpcEndpoint*`, so
//!   a policy naming one endpoint ARN grants nothing for those actions.
//! - Principals: `"*"` and `{"AWS": "*"}` match everyone, anonymous callers included; an account
//!   id or `arn:aws:iam::ACCOUNT:root` matches every principal of that account; any other ARN
//!   matches that exact ARN; `Service`, `Federated` and `CanonicalUser` entries match a caller
//!   string equal to them. Anonymous callers match only `"*"`. `NotAction` and `NotResource`
//!   apply when none of their entries matches. `NotPrincipal` sees a user as the chain of its
//!   account and itself (IAM: "AWS might validate the account first and then the user"): it
//!   applies unless it names both, the account as an account and the user by its ARN; the
//!   account alone exempts only the account's root.
//! - Conditions: every operator block, and every key inside a block, must hold (AND). Key names
//!   are case-insensitive; several values of one key are OR-ed: an ordinary operator holds when
//!   the request value matches any of them, a negated one (`StringNotEquals`, `StringNotLike`,
//!   `StringNotEqualsIgnoreCase`, `ArnNotEquals`, `ArnNotLike`, `NotIpAddress`) when it matches
//!   none. A key that is absent from the request (or present with no values) makes ordinary
//!   operators false and negated ones true; the `…IfExists` forms are true for an absent key;
//!   `Null: "true"` holds when the key is absent, `Null: "false"` when present. With several
//!   request values and no set prefix an ordinary operator holds when any request value matches
//!   any policy value, and a negated one is its negation.
//!   `ForAnyValue:` holds when at least one request value satisfies the operator (false for an
//!   absent key unless `IfExists`); `ForAllValues:` holds when every request value does (true for
//!   an absent key). `Bool` compares `"true"`/`"false"` case-insensitively; `IpAddress` takes IPv4
//!   or IPv6 addresses and CIDRs; `ArnEquals` and `ArnLike` both compare segment by segment with
//!   wildcards (as AWS does). `Numeric…` operators compare numbers (integers or decimals),
//!   `Date…` operators dates (ISO 8601 or epoch seconds), both checked when the policy is
//!   parsed; `BinaryEquals` compares the base64 text; `NumericNotEquals` and `DateNotEquals`
//!   are negated operators. The guide's remark on `aws:SourceIp` through an endpoint ("the
//!   condition is not matched — the statement is ignored") follows: the S3 stub leaves the key
//!   out of such requests, so an `IpAddress` Allow does not apply.
//! - Policy variables (Version `2012-10-17` only; in older or unversioned policies they are
//!   literal text): `${key}` in a Resource / NotResource (within the ARN's resource part) or in
//!   a string or ARN condition value is the request's value of that key, `${key, 'default'}`
//!   falls back to the default, `${*}`, `${?}`, `${$}` are literal `*`, `?`, `$`. A variable
//!   without a value (absent key, or several values) makes that Resource not match, and a
//!   condition or NotResource using it makes the statement not apply (IAM: "any attempt to
//!   match it fails and causes the statement to be invalid").
//!
//! # One policy
//! [`Policy::evaluate`]: an explicit Deny beats an Allow, which beats the implicit deny. The
//! first matching Deny (document order) is reported, or else the first matching Allow.
//!
//! # Endpoint policies and other services
//! The guide: "Only the parts of the policy that relate to the specified service will work ...
//! if you add EC2 actions to an endpoint policy for an endpoint to Amazon S3, they will have no
//! effect." [`Policy::for_service`] returns the policy restricted to one service prefix: a
//! request for an action of another service is implicitly denied (an `ec2:*` Allow grants
//! nothing, a `NotAction` Deny denies nothing outside the service); statements whose `Action`
//! patterns cannot name an action of the service (only `ec2:*`) are dropped, and a mixed
//! statement keeps only its patterns for the service (so `["ec2:*", "s3:GetObject"]` acts as
//! `s3:GetObject`); a `NotAction` statement whose list excludes the whole service (`s3:*`) is
//! dropped. For requests of the service itself the result decides exactly like the original.
//!
//! # Several policies: [`decide`]
//! Each applicable policy is given with a label and a flag telling whether an Allow from it is
//! *required* (a gate). The request is allowed when
//! 1. no policy denies it explicitly (else `Deny { by: "label:Sid" }`, or `"label"` without Sid),
//! 2. every required policy allows it (else `Deny { by: "label" }`), and
//! 3. at least one non-required policy allows it (else `Deny { by: "implicit" }`).
//!
//! A resource policy (bucket or endpoint kind) that is not required grants only by statements
//! that name the caller itself or everyone: an Allow whose Principal matches the caller only
//! through its account (`"123456789012"`, `arn:aws:iam::123456789012:root`) delegates to the
//! account and grants nothing by itself (IAM, "AWS account principals": "This delegates
//! authority to the account"; "Policy evaluation logic": "the principal ARN that is specified
//! in the policy determines whether implicit denies in other policy types are applicable to the
//! final decision"). Its Denies apply to every caller of the account. An Allow with
//! `NotPrincipal` grants by itself to every caller it does not name itself, anonymous included
//! (IAM: "granted to all principals except for the one(s) specified, including anonymous
//! (unauthenticated) users"), as `"*"` does; to a user it names without its account, it is a
//! grant to the account only, which delegates.
//!
//! For S3 ([`S3Policies`]): "all types of policies — IAM user policies, endpoint policies, S3
//! policies ... — must grant the necessary permissions". The endpoint policy, when the request
//! came through an endpoint, is a required gate restricted to `s3`; the bucket policy and the
//! caller's identity policy are grant sources, one Allow from either suffices within an
//! account (an account principal in the bucket policy needs the identity policy's Allow, as
//! above); a signed caller of another account than the bucket's needs both (see
//! [`S3Policies::decide`]); anonymous requests have only the bucket policy. ACLs are left to
//! the S3 stub.

mod eval;
mod parse;
mod s3;
#[cfg(test)]
mod tests;

use std::fmt;

use ipnet::IpNet;

pub use eval::matches_wildcard;
pub use s3::{
    HEADER_KEYS, KnownPrincipals, MalformedPolicy, known_condition_key, parse_bucket_policy,
    unreadable_bucket_policy,
};

/// The default endpoint policy: "If you do not attach a policy when you create an endpoint, we
/// attach a default policy for you that allows full access to the service."
pub const FULL_ACCESS: &str = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#;

/// Label of the endpoint policy in verdicts.
pub const ENDPOINT_POLICY: &str = "endpoint-policy";
/// Label of the bucket policy in verdicts.
pub const BUCKET_POLICY: &str = "bucket-policy";
/// Label of the caller's identity (IAM user) policy in verdicts.
pub const USER_POLICY: &str = "user-policy";
/// `by` of a [`Verdict::Deny`] when no policy granted access.
pub const IMPLICIT: &str = "implicit";

/// Which kind of policy a document is (validation differs: identity policies have no Principal;
/// resource policies — bucket and endpoint policies — must have Principal or NotPrincipal in
/// every statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to an IAM user: applies to that user, no Principal.
    Identity,
    /// An S3 bucket policy.
    Bucket,
    /// A VPC endpoint policy.
    Endpoint,
}

impl PolicyKind {
    /// Whether every statement needs a Principal or NotPrincipal.
    pub fn requires_principal(self) -> bool {
        !matches!(self, PolicyKind::Identity)
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::Identity => "identity",
            PolicyKind::Bucket => "bucket",
            PolicyKind::Endpoint => "endpoint",
        })
    }
}

/// Why a document is not an acceptable policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// The document is JSON but not an object.
    #[error("the policy must be a JSON object")]
    NotObject,
    /// A top-level element other than Version, Id and Statement.
    #[error("unknown policy element {0:?}")]
    UnknownElement(String),
    /// Version is neither of the two policy language versions.
    #[error("Version must be \"2008-10-17\" or \"2012-10-17\"")]
    Version,
    /// Id is not a string.
    #[error("Id must be a string")]
    Id,
    /// There is no Statement element.
    #[error("the policy has no Statement")]
    NoStatement,
    /// Statement is neither an object nor a non-empty list.
    #[error("Statement must be an object or a non-empty list")]
    StatementShape,
    /// One statement is invalid.
    #[error("statement {index}{}: {problem}", sid_suffix(.sid))]
    Statement {
        /// Position of the statement in the document, from 0.
        index: usize,
        /// Its Sid, when it has a string one.
        sid: Option<String>,
        /// What is wrong with it.
        problem: StatementError,
    },
}

fn sid_suffix(sid: &Option<String>) -> String {
    sid.as_ref().map(|s| format!(" (Sid {s:?})")).unwrap_or_default()
}

/// What is wrong with one statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// The statement is not a JSON object.
    #[error("a statement must be a JSON object")]
    NotObject,
    /// An element that statements do not have.
    #[error("unknown statement element {0:?}")]
    UnknownElement(String),
    /// Sid is not a string.
    #[error("Sid must be a string")]
    Sid,
    /// Another statement has the same Sid.
    #[error("duplicate Sid: statement ids must be unique within a policy")]
    DuplicateSid,
    /// Effect is missing or not one of the two values.
    #[error("Effect must be \"Allow\" or \"Deny\"")]
    Effect,
    /// Both an element and its negated form.
    #[error("{0} and {1} cannot both be present")]
    Both(&'static str, &'static str),
    /// Neither an element nor its negated form.
    #[error("{0} or {1} is required")]
    Missing(&'static str, &'static str),
    /// A resource policy statement without Principal or NotPrincipal.
    #[error("Principal or NotPrincipal is required in {0} policies")]
    PrincipalRequired(PolicyKind),
    /// An identity policy statement with Principal or NotPrincipal.
    #[error("{0} is not allowed in an identity policy")]
    PrincipalNotAllowed(&'static str),
    /// An element that is neither a string nor a non-empty list.
    #[error("{0} must be a string or a non-empty list of strings")]
    NotStrings(&'static str),
    /// A list entry that is not a string.
    #[error("{field}[{at}] must be a string, not {found}")]
    NotString {
        /// Action, NotAction, Resource, NotResource or a principal element.
        field: String,
        /// Position in the list.
        at: usize,
        /// The JSON type found.
        found: &'static str,
    },
    /// An action that is neither `*` nor `service:action`.
    #[error("{field} {value:?} must be \"*\" or of the form service:action")]
    Action {
        /// Action or NotAction.
        field: &'static str,
        /// The offending entry.
        value: String,
    },
    /// A resource that is neither `*` nor an ARN.
    #[error(
        "{field} {value:?} must be \"*\" or an ARN (arn:partition:service:region:account:resource)"
    )]
    Resource {
        /// Resource or NotResource.
        field: &'static str,
        /// The offending entry.
        value: String,
    },
    /// A principal element of the wrong shape.
    #[error(
        "{0} must be \"*\" or an object mapping AWS, Service, Federated or CanonicalUser to principals"
    )]
    PrincipalShape(&'static str),
    /// An AWS principal that is not `*`, an account id or an ARN.
    #[error("{field} AWS principal {value:?} must be \"*\", a 12-digit account id or an ARN")]
    AwsPrincipal {
        /// Principal or NotPrincipal.
        field: &'static str,
        /// The offending entry.
        value: String,
    },
    /// Condition is not an object of operator blocks.
    #[error("Condition must be an object mapping operators to blocks of condition keys")]
    ConditionShape,
    /// An operator this engine does not know.
    #[error("unknown condition operator {0:?}")]
    UnknownOperator(String),
    /// An operator block that is not a non-empty object.
    #[error("Condition {0}: the block must be a non-empty object mapping condition keys to values")]
    OperatorBlock(String),
    /// A condition key that is not `service:name`.
    #[error("Condition {op}: key {key:?} must be of the form service:name")]
    ConditionKey {
        /// The operator.
        op: String,
        /// The key.
        key: String,
    },
    /// Condition values that are not strings, booleans or numbers.
    #[error(
        "Condition {op} {key}: values must be a string, boolean or number, or a non-empty list of them"
    )]
    ConditionValues {
        /// The operator.
        op: String,
        /// The key.
        key: String,
    },
    /// A value the operator cannot use.
    #[error("Condition {op} {key}: {value:?} is not {expected}")]
    ConditionValue {
        /// The operator.
        op: String,
        /// The key.
        key: String,
        /// The offending value.
        value: String,
        /// What the operator takes.
        expected: &'static str,
    },
}

/// The effect of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Denies, overriding any Allow.
    Deny,
}

/// An element or its negated form: `Action` / `NotAction` and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope<T> {
    /// `Action`, `Resource`, `Principal`: applies to what is listed.
    Is(T),
    /// `NotAction`, `NotResource`, `NotPrincipal`: applies to everything else.
    Not(T),
}

/// The principals named by a Principal or NotPrincipal element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    /// `"*"`: everyone, anonymous included.
    Any,
    /// An object such as `{"AWS": [...], "Service": ...}`.
    Listed(Vec<PrincipalId>),
}

/// One entry of a principal object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalId {
    /// `{"AWS": "*"}`: everyone, anonymous included.
    AnyAws,
    /// An account id, or `arn:…:iam::ACCOUNT:root`: every principal of the account.
    Account(String),
    /// Any other ARN: that principal.
    Arn(String),
    /// `{"Service": "ec2.amazonaws.com"}`.
    Service(String),
    /// `{"Federated": …}`.
    Federated(String),
    /// `{"CanonicalUser": …}`.
    CanonicalUser(String),
}

/// A set qualifier on a condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    /// `ForAnyValue:`: at least one request value satisfies the operator.
    ForAnyValue,
    /// `ForAllValues:`: every request value satisfies the operator.
    ForAllValues,
}

/// A condition operator without its qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BaseOperator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    IpAddress,
    NotIpAddress,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    Null,
}

/// A full condition operator, e.g. `ForAllValues:StringLikeIfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    /// `ForAnyValue:` / `ForAllValues:`.
    pub set: Option<SetQualifier>,
    /// The comparison.
    pub base: BaseOperator,
    /// The `IfExists` suffix: an absent key makes the condition true.
    pub if_exists: bool,
}

/// One condition: an operator applied to one key with one or more values (OR-ed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The operator as written, e.g. `StringNotEquals`.
    pub operator_name: String,
    /// The parsed operator.
    pub operator: Operator,
    /// The key as written (compared case-insensitively).
    pub key: String,
    /// The values, booleans and numbers written as strings.
    pub values: Vec<String>,
    /// For IpAddress / NotIpAddress: the values parsed (addresses as host networks).
    nets: Vec<IpNet>,
}

/// One validated statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Position in the original document, from 0.
    pub index: usize,
    /// The Sid, if any.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    /// Principal / NotPrincipal; `None` in identity policies (the statement applies to the
    /// policy's user).
    pub principal: Option<Scope<Principals>>,
    /// Action / NotAction patterns.
    pub action: Scope<Vec<String>>,
    /// Resource / NotResource patterns.
    pub resource: Scope<Vec<String>>,
    /// All conditions, AND-ed.
    pub conditions: Vec<Condition>,
    /// Whether policy variables (`${aws:username}` …) are substituted: only in policies of
    /// Version 2012-10-17 (IAM: "If you don't include the Version element and set it to an
    /// appropriate version date, variables like ${aws:username} are treated as literal
    /// strings in the policy").
    pub variables: bool,
}

impl Statement {
    /// Whether this statement applies to the request (its effect aside).
    pub fn matches(&self, req: &RequestContext<'_>) -> bool {
        eval::statement_matches(self, req)
    }
}

/// A parsed, validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    text: String,
    kind: PolicyKind,
    version: Option<String>,
    id: Option<String>,
    statements: Vec<Statement>,
    /// Set by [`Policy::for_service`]: actions of other services are implicitly denied.
    service: Option<String>,
}

impl Policy {
    /// Parses and validates a document of the given kind.
    pub fn parse(json: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        parse::parse(json, kind)
    }

    /// A policy with no statement: it allows nothing (an IAM user without policies is
    /// "implicitly denied" everything). What a stored policy that no longer parses becomes,
    /// so that a policy never fails open.
    pub fn deny_all(kind: PolicyKind) -> Policy {
        Policy {
            text: r#"{"Version":"2012-10-17","Statement":[]}"#.to_string(),
            kind,
            version: Some("2012-10-17".to_string()),
            id: None,
            statements: Vec::new(),
            service: None,
        }
    }

    /// The default endpoint policy, [`FULL_ACCESS`].
    pub fn full_access() -> Policy {
        // FULL_ACCESS is a constant checked by the `full_access_is_valid` test.
        Policy::parse(FULL_ACCESS, PolicyKind::Endpoint).expect("the default policy is valid")
    }

    /// Decides this policy alone for a request.
    pub fn evaluate(&self, req: &RequestContext<'_>) -> Decision {
        eval::evaluate(self, req)
    }

    /// This policy restricted to one service prefix (e.g. `"s3"`), as an endpoint to that
    /// service applies it; see the module doc. [`Decision::Deny::index`] still counts statements
    /// of the original document.
    pub fn for_service(&self, prefix: &str) -> Policy {
        eval::for_service(self, prefix)
    }

    /// The statements, in document order (after [`Policy::for_service`], those that apply).
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The original document text.
    pub fn to_json(&self) -> &str {
        &self.text
    }

    /// The kind the policy was validated as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The Version element, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The Id element, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The service prefix set by [`Policy::for_service`].
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }
}

/// One request as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The caller: None = anonymous; Some(arn) e.g. "arn:aws:iam::123456789012:user/developer".
    pub principal: Option<&'a str>,
    /// e.g. "s3:GetObject", "ec2:CreateVpcEndpoint".
    pub action: &'a str,
    /// e.g. "arn:aws:s3:::my-secure-bucket/hello.txt"; for EC2 actions the resource ARN or "*".
    pub resource: &'a str,
    /// Condition keys present for this request: aws:sourceVpce, aws:sourceVpc, aws:VpcSourceIp,
    /// aws:SourceIp, aws:SecureTransport, aws:username, s3:prefix … (names case-insensitive;
    /// values as strings, several values allowed for multivalued keys).
    pub keys: &'a [(&'a str, &'a [&'a str])],
}

impl<'a> RequestContext<'a> {
    /// The values of a key (its name compared case-insensitively; entries repeated under
    /// several spellings are concatenated). Empty when the key is absent.
    pub fn values(&self, key: &str) -> Vec<&'a str> {
        self.keys
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .flat_map(|(_, v)| v.iter().copied())
            .collect()
    }
}

/// What one policy says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An Allow statement matched and no Deny did.
    Allow {
        /// Sid of the first matching Allow.
        sid: Option<String>,
    },
    /// An explicit Deny matched.
    Deny {
        /// Sid of the first matching Deny.
        sid: Option<String>,
        /// Its position in the document, from 0.
        index: usize,
    },
    /// Nothing matched.
    Implicit,
}

/// What all applicable policies together say about a request.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed.
    Allow,
    /// Denied; `by` is `label:Sid` (or `label`) for an explicit Deny, the label of a required
    /// policy that did not allow, or [`IMPLICIT`] when no policy granted access.
    Deny {
        /// Who denied.
        by: String,
        /// Whether a Deny statement matched (S3's "with an explicit deny in …"), rather than
        /// no policy allowing ("because no … allows").
        explicit: bool,
    },
}

/// Combines several policies: see the module doc. Each entry is (label, policy, whether an
/// Allow from this policy is required).
pub fn decide(policies: &[(&str, &Policy, bool)], req: &RequestContext<'_>) -> Verdict {
    let decisions =
        policies.iter().map(|&(label, p, required)| (label, grant(p, required, req), required));
    combine(decisions, true)
}

/// What one policy says in a combination: a resource policy that is a source of permissions
/// (not a required gate) grants only what it grants the caller directly, see
/// [`eval::evaluate_grant`].
fn grant(p: &Policy, required: bool, req: &RequestContext<'_>) -> Decision {
    if !required && p.kind.requires_principal() {
        eval::evaluate_grant(p, req)
    } else {
        p.evaluate(req)
    }
}

/// `grant_needed`: whether one policy that is not required must allow (rule 3 of the module
/// doc); without, every required policy allowing suffices.
fn combine<'l>(
    decisions: impl IntoIterator<Item = (&'l str, Decision, bool)>,
    grant_needed: bool,
) -> Verdict {
    let decisions: Vec<_> = decisions.into_iter().collect();
    for (label, d, _) in &decisions {
        if let Decision::Deny { sid, .. } = d {
            let by = match sid {
                Some(sid) => format!("{label}:{sid}"),
                None => label.to_string(),
            };
            return Verdict::Deny { by, explicit: true };
        }
    }
    for (label, d, required) in &decisions {
        if *required && !matches!(d, Decision::Allow { .. }) {
            return Verdict::Deny { by: label.to_string(), explicit: false };
        }
    }
    let granted =
        decisions.iter().any(|(_, d, required)| !required && matches!(d, Decision::Allow { .. }));
    if granted || !grant_needed {
        Verdict::Allow
    } else {
        Verdict::Deny { by: IMPLICIT.to_string(), explicit: false }
    }
}

/// The policies that apply to one S3 request; the S3 stub fills this in.
#[derive(Debug, Clone, Copy, Default)]
pub struct S3Policies<'p> {
    /// The policy of the endpoint the request came through; `None` on the public path.
    pub endpoint: Option<&'p Policy>,
    /// The bucket's policy, if it has one.
    pub bucket: Option<&'p Policy>,
    /// The caller's identity policy; `None` for anonymous callers.
    pub identity: Option<&'p Policy>,
    /// Whether a signed caller asks for a resource of another account than its own.
    pub cross_account: bool,
}

impl S3Policies<'_> {
    /// The verdict: the endpoint policy (restricted to `s3`) must allow, no policy may deny,
    /// and the bucket or the identity policy must allow. Labels: [`ENDPOINT_POLICY`],
    /// [`BUCKET_POLICY`], [`USER_POLICY`].
    ///
    /// Across accounts both must allow (IAM, "Cross-account policy evaluation logic": "The
    /// resource-based policy in the trusting account must specify the principal of the trusted
    /// account", and "The principal's identity-based policy must allow the requested access to
    /// the resource in the trusting service"): the bucket policy by any of its principals that
    /// match the caller, its account included; a bucket without a policy allows nothing (`by`
    /// [`BUCKET_POLICY`]).
    pub fn decide(&self, req: &RequestContext<'_>) -> Verdict {
        let endpoint =
            self.endpoint.map(|p| (ENDPOINT_POLICY, eval::evaluate_in(p, Some("s3"), req), true));
        if self.cross_account {
            let required = |label, p: Option<&Policy>| {
                (label, p.map_or(Decision::Implicit, |p| p.evaluate(req)), true)
            };
            let both = [required(BUCKET_POLICY, self.bucket), required(USER_POLICY, self.identity)];
            return combine(endpoint.into_iter().chain(both), false);
        }
        let bucket = self.bucket.map(|p| (BUCKET_POLICY, grant(p, false, req), false));
        let identity = self.identity.map(|p| (USER_POLICY, p.evaluate(req), false));
        combine(endpoint.into_iter().chain(bucket).chain(identity), true)
    }
}
