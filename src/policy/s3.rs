//! S3's own checks of a bucket policy (PutBucketPolicy, and lab files' bucket policies, which
//! must pass the same checks), on top of [`Policy::parse`], and the messages S3 answers with
//! its `MalformedPolicy` error. Invariant: a policy accepted here names only this bucket and its
//! objects, only S3 actions that exist and apply to a resource of their statement, only
//! condition keys AWS documents (global `aws:` keys or S3's), and only principals that exist
//! (the lab's users, by ARN, without wildcards).
//!
//! The lists below are from the Service Authorization Reference for Amazon S3 (actions with
//! their resource types, condition keys) and the IAM User Guide's "AWS global condition context
//! keys"; they are not exhaustive of AWS's newest features (a missing name is refused).
//!
//! The messages are S3's, as S3 and the S3-compatible servers that copy it answer them:
//! "Policy has invalid resource", "Invalid principal in policy", "Policy has invalid action",
//! "Missing required field Statement", "Missing required field Principal", "Invalid effect:
//! allow", "Action does not apply to any resource(s) in statement", "Policy has an invalid
//! condition key", "Invalid IP address in Conditions", "Policies must be valid JSON and the
//! first byte must be '{'", "This policy contains invalid Json", "Could not parse the policy:
//! Statement is empty!", "The policy must contain a valid version string", "Unknown field X".
//! Where no S3 wording was found ("Missing required field Action" and "… Resource", by analogy
//! with Principal and Effect; a duplicate Sid, IAM's wording; a condition operator, a bad
//! Bool value), the closest one is used; the engine's own explanation goes to the debug log.

use serde_json::Value;

use super::eval::matches_wildcard;
use super::{Policy, PolicyError, PolicyKind, PrincipalId, Principals, Scope, StatementError};

/// What kind of resource an S3 action applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    /// `arn:aws:s3:::bucket`.
    Bucket,
    /// `arn:aws:s3:::bucket/key`.
    Object,
    /// Neither (the account, access points, batch jobs, Storage Lens …): never applies to a
    /// resource of a bucket policy.
    Other,
}

/// S3's actions and the resource type each applies to (Service Authorization Reference).
#[rustfmt::skip]
const ACTIONS: &[(&str, On)] = &[
    ("AbortMultipartUpload", On::Object), ("BypassGovernanceRetention", On::Object),
    ("CreateAccessGrant", On::Other), ("CreateAccessGrantsInstance", On::Other),
    ("CreateAccessGrantsLocation", On::Other), ("CreateAccessPoint", On::Other),
    ("CreateAccessPointForObjectLambda", On::Other), ("CreateBucket", On::Bucket),
    ("CreateBucketMetadataTableConfiguration", On::Bucket), ("CreateJob", On::Other),
    ("CreateMultiRegionAccessPoint", On::Other), ("CreateSession", On::Bucket),
    ("CreateStorageLensGroup", On::Other), ("DeleteAccessGrant", On::Other),
    ("DeleteAccessPoint", On::Other), ("DeleteAccessPointPolicy", On::Other),
    ("DeleteBucket", On::Bucket), ("DeleteBucketMetadataTableConfiguration", On::Bucket),
    ("DeleteBucketOwnershipControls", On::Bucket), ("DeleteBucketPolicy", On::Bucket),
    ("DeleteBucketWebsite", On::Bucket), ("DeleteJobTagging", On::Other),
    ("DeleteMultiRegionAccessPoint", On::Other), ("DeleteObject", On::Object),
    ("DeleteObjectTagging", On::Object), ("DeleteObjectVersion", On::Object),
    ("DeleteObjectVersionTagging", On::Object), ("DeleteStorageLensConfiguration", On::Other),
    ("DeleteStorageLensConfigurationTagging", On::Other), ("DescribeJob", On::Other),
    ("DescribeMultiRegionAccessPointOperation", On::Other), ("GetAccelerateConfiguration", On::Bucket),
    ("GetAccessPoint", On::Other), ("GetAccessPointPolicy", On::Other),
    ("GetAccessPointPolicyStatus", On::Other), ("GetAccountPublicAccessBlock", On::Other),
    ("GetAnalyticsConfiguration", On::Bucket), ("GetBucketAcl", On::Bucket),
    ("GetBucketCORS", On::Bucket), ("GetBucketLocation", On::Bucket),
    ("GetBucketLogging", On::Bucket), ("GetBucketMetadataTableConfiguration", On::Bucket),
    ("GetBucketNotification", On::Bucket), ("GetBucketObjectLockConfiguration", On::Bucket),
    ("GetBucketOwnershipControls", On::Bucket), ("GetBucketPolicy", On::Bucket),
    ("GetBucketPolicyStatus", On::Bucket), ("GetBucketPublicAccessBlock", On::Bucket),
    ("GetBucketRequestPayment", On::Bucket), ("GetBucketTagging", On::Bucket),
    ("GetBucketVersioning", On::Bucket), ("GetBucketWebsite", On::Bucket),
    ("GetEncryptionConfiguration", On::Bucket), ("GetIntelligentTieringConfiguration", On::Bucket),
    ("GetInventoryConfiguration", On::Bucket), ("GetJobTagging", On::Other),
    ("GetLifecycleConfiguration", On::Bucket), ("GetMetricsConfiguration", On::Bucket),
    ("GetMultiRegionAccessPoint", On::Other), ("GetObject", On::Object),
    ("GetObjectAcl", On::Object), ("GetObjectAttributes", On::Object),
    ("GetObjectLegalHold", On::Object), ("GetObjectRetention", On::Object),
    ("GetObjectTagging", On::Object), ("GetObjectTorrent", On::Object),
    ("GetObjectVersion", On::Object), ("GetObjectVersionAcl", On::Object),
    ("GetObjectVersionAttributes", On::Object), ("GetObjectVersionForReplication", On::Object),
    ("GetObjectVersionTagging", On::Object), ("GetObjectVersionTorrent", On::Object),
    ("GetReplicationConfiguration", On::Bucket), ("GetStorageLensConfiguration", On::Other),
    ("GetStorageLensDashboard", On::Other), ("InitiateReplication", On::Object),
    ("ListAccessGrants", On::Other), ("ListAccessPoints", On::Other),
    ("ListAllMyBuckets", On::Other), ("ListBucket", On::Bucket),
    ("ListBucketMultipartUploads", On::Bucket), ("ListBucketVersions", On::Bucket),
    ("ListJobs", On::Other), ("ListMultiRegionAccessPoints", On::Other),
    ("ListMultipartUploadParts", On::Object), ("ListStorageLensConfigurations", On::Other),
    ("ObjectOwnerOverrideToBucketOwner", On::Object), ("PutAccelerateConfiguration", On::Bucket),
    ("PutAccessPointPolicy", On::Other), ("PutAccessPointPublicAccessBlock", On::Other),
    ("PutAccountPublicAccessBlock", On::Other), ("PutAnalyticsConfiguration", On::Bucket),
    ("PutBucketAcl", On::Bucket), ("PutBucketCORS", On::Bucket),
    ("PutBucketLogging", On::Bucket), ("PutBucketNotification", On::Bucket),
    ("PutBucketObjectLockConfiguration", On::Bucket), ("PutBucketOwnershipControls", On::Bucket),
    ("PutBucketPolicy", On::Bucket), ("PutBucketPublicAccessBlock", On::Bucket),
    ("PutBucketRequestPayment", On::Bucket), ("PutBucketTagging", On::Bucket),
    ("PutBucketVersioning", On::Bucket), ("PutBucketWebsite", On::Bucket),
    ("PutEncryptionConfiguration", On::Bucket), ("PutIntelligentTieringConfiguration", On::Bucket),
    ("PutInventoryConfiguration", On::Bucket), ("PutJobTagging", On::Other),
    ("PutLifecycleConfiguration", On::Bucket), ("PutMetricsConfiguration", On::Bucket),
    ("PutObject", On::Object), ("PutObjectAcl", On::Object),
    ("PutObjectLegalHold", On::Object), ("PutObjectRetention", On::Object),
    ("PutObjectTagging", On::Object), ("PutObjectVersionAcl", On::Object),
    ("PutObjectVersionTagging", On::Object), ("PutReplicationConfiguration", On::Bucket),
    ("PutStorageLensConfiguration", On::Other), ("ReplicateDelete", On::Object),
    ("ReplicateObject", On::Object), ("ReplicateTags", On::Object),
    ("RestoreObject", On::Object), ("UpdateJobPriority", On::Other),
    ("UpdateJobStatus", On::Other),
];

/// S3's condition keys (Service Authorization Reference); a name ending in `/` takes a tag key.
const S3_KEYS: &[&str] = &[
    "s3:AccessGrantsInstanceArn",
    "s3:AccessPointNetworkOrigin",
    "s3:authType",
    "s3:BucketTag/",
    "s3:DataAccessPointAccount",
    "s3:DataAccessPointArn",
    "s3:delimiter",
    "s3:ExistingJobOperation",
    "s3:ExistingJobPriority",
    "s3:ExistingObjectTag/",
    "s3:if-match",
    "s3:if-none-match",
    "s3:JobSuspendedCause",
    "s3:LocationConstraint",
    "s3:max-keys",
    "s3:object-lock-legal-hold",
    "s3:object-lock-mode",
    "s3:object-lock-remaining-retention-days",
    "s3:object-lock-retain-until-date",
    "s3:ObjectCreationOperation",
    "s3:prefix",
    "s3:RequestJobOperation",
    "s3:RequestJobPriority",
    "s3:RequestObjectTag/",
    "s3:RequestObjectTagKeys",
    "s3:ResourceAccount",
    "s3:signatureAge",
    "s3:signatureversion",
    "s3:TlsVersion",
    "s3:versionid",
];

/// S3's condition keys that are request headers of the same name (`s3:<header>`): the
/// requests carry them when the header is sent.
pub const HEADER_KEYS: &[&str] = &[
    "s3:x-amz-acl",
    "s3:x-amz-content-sha256",
    "s3:x-amz-copy-source",
    "s3:x-amz-grant-full-control",
    "s3:x-amz-grant-read",
    "s3:x-amz-grant-read-acp",
    "s3:x-amz-grant-write",
    "s3:x-amz-grant-write-acp",
    "s3:x-amz-metadata-directive",
    "s3:x-amz-object-ownership",
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:x-amz-server-side-encryption-customer-algorithm",
    "s3:x-amz-storage-class",
    "s3:x-amz-website-redirect-location",
];

/// The global condition keys the IAM User Guide documents ("AWS global condition context
/// keys"); a name ending in `/` takes a tag key.
const GLOBAL_KEYS: &[&str] = &[
    "aws:CalledVia",
    "aws:CalledViaFirst",
    "aws:CalledViaLast",
    "aws:CurrentTime",
    "aws:Ec2InstanceSourcePrivateIPv4",
    "aws:Ec2InstanceSourceVpc",
    "aws:EpochTime",
    "aws:FederatedProvider",
    "aws:MultiFactorAuthAge",
    "aws:MultiFactorAuthPresent",
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalIsAWSService",
    "aws:PrincipalOrgID",
    "aws:PrincipalOrgPaths",
    "aws:PrincipalServiceName",
    "aws:PrincipalServiceNamesList",
    "aws:PrincipalTag/",
    "aws:PrincipalType",
    "aws:referer",
    "aws:RequestedRegion",
    "aws:RequestTag/",
    "aws:ResourceAccount",
    "aws:ResourceOrgID",
    "aws:ResourceOrgPaths",
    "aws:ResourceTag/",
    "aws:SecureTransport",
    "aws:SourceAccount",
    "aws:SourceArn",
    "aws:SourceIdentity",
    "aws:SourceIp",
    "aws:SourceOrgID",
    "aws:SourceOrgPaths",
    "aws:SourceVpc",
    "aws:SourceVpcArn",
    "aws:SourceVpce",
    "aws:TagKeys",
    "aws:TokenIssueTime",
    "aws:UserAgent",
    "aws:userid",
    "aws:username",
    "aws:ViaAWSService",
    "aws:VpceAccount",
    "aws:VpceOrgID",
    "aws:VpceOrgPaths",
    "aws:VpcSourceIp",
];

/// Whether a condition key may appear in a bucket policy: a documented global key or one of
/// S3's, compared case-insensitively (IAM: "Key names are case-insensitive").
pub fn known_condition_key(key: &str) -> bool {
    GLOBAL_KEYS.iter().chain(S3_KEYS).chain(HEADER_KEYS).any(|k| {
        if k.ends_with('/') {
            key.len() > k.len() && key.get(..k.len()).is_some_and(|p| p.eq_ignore_ascii_case(k))
        } else {
            key.eq_ignore_ascii_case(k)
        }
    })
}

/// The principals that exist: S3 refuses a policy naming a user that does not ("Invalid
/// principal in policy"). Users of other accounts are not known and pass.
#[derive(Debug, Clone, Copy)]
pub struct KnownPrincipals<'a> {
    /// The lab's account.
    pub account: &'a str,
    /// The ARNs of its users.
    pub users: &'a [String],
}

/// A bucket policy S3 refuses: S3's `MalformedPolicy` message, and the engine's explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MalformedPolicy {
    /// What S3 says (the error's Message).
    pub message: String,
    /// Which statement and element, for the log and for lab files.
    pub detail: String,
}

impl MalformedPolicy {
    fn new(message: impl Into<String>, detail: impl Into<String>) -> MalformedPolicy {
        MalformedPolicy { message: message.into(), detail: detail.into() }
    }
}

const INVALID_RESOURCE: &str = "Policy has invalid resource";
const INVALID_PRINCIPAL: &str = "Invalid principal in policy";
const INVALID_ACTION: &str = "Policy has invalid action";
const NOT_APPLICABLE: &str = "Action does not apply to any resource(s) in statement";
const INVALID_KEY: &str = "Policy has an invalid condition key";
const INVALID_JSON: &str = "This policy contains invalid Json";

/// Parses a bucket policy for `bucket` as S3's PutBucketPolicy checks it (see the module doc).
pub fn parse_bucket_policy(
    bucket: &str,
    text: &str,
    known: KnownPrincipals<'_>,
) -> Result<Policy, MalformedPolicy> {
    let policy = Policy::parse(text, PolicyKind::Bucket)
        .map_err(|e| MalformedPolicy::new(s3_message(&e, text), e.to_string()))?;
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let objects = format!("{bucket_arn}/");
    for st in policy.statements() {
        let at = |what: String| match &st.sid {
            Some(sid) => format!("statement {} (Sid {sid:?}): {what}", st.index),
            None => format!("statement {}: {what}", st.index),
        };
        // Resources: this bucket or its objects; which of the two each can name.
        let (mut bucket_ok, mut object_ok) = (false, false);
        let (Scope::Is(resources) | Scope::Not(resources)) = &st.resource;
        for r in resources {
            // What precedes the first wildcard must lead to the bucket or into it.
            let literal = &r[..r.find(['*', '?']).unwrap_or(r.len())];
            let in_bucket = *r == bucket_arn
                || (literal.starts_with("arn:aws:s3:::")
                    && (objects.starts_with(literal) || literal.starts_with(&objects)));
            if !in_bucket {
                let detail = at(format!("{r:?} is not bucket {bucket} or its objects"));
                return Err(MalformedPolicy::new(INVALID_RESOURCE, detail));
            }
            bucket_ok |= matches_wildcard(r, &bucket_arn, false);
            object_ok |= literal.starts_with(&objects) || r.contains('*');
        }
        let applies = |on: On| match on {
            On::Bucket => bucket_ok,
            On::Object => object_ok,
            On::Other => false,
        };
        // Actions: S3's, existing, and (Action only) each applying to some resource.
        let (Scope::Is(actions) | Scope::Not(actions)) = &st.action;
        for a in actions {
            if a == "*" {
                continue;
            }
            let named: Vec<On> = match a.split_once(':') {
                Some((svc, name)) if svc.eq_ignore_ascii_case("s3") => ACTIONS
                    .iter()
                    .filter(|(n, _)| matches_wildcard(name, n, true))
                    .map(|(_, on)| *on)
                    .collect(),
                _ => Vec::new(),
            };
            if named.is_empty() {
                return Err(MalformedPolicy::new(
                    INVALID_ACTION,
                    at(format!("{a:?} is no S3 action")),
                ));
            }
            if matches!(st.action, Scope::Is(_))
                && matches!(st.resource, Scope::Is(_))
                && !named.into_iter().any(applies)
            {
                let detail = at(format!("{a:?} applies to none of {resources:?}"));
                return Err(MalformedPolicy::new(NOT_APPLICABLE, detail));
            }
        }
        if let Some(Scope::Is(Principals::Listed(ids)) | Scope::Not(Principals::Listed(ids))) =
            &st.principal
        {
            for id in ids {
                if let PrincipalId::Arn(arn) = id {
                    check_principal_arn(arn, known).map_err(|why| {
                        MalformedPolicy::new(INVALID_PRINCIPAL, at(format!("{arn:?}: {why}")))
                    })?;
                }
            }
        }
        if let Some(c) = st.conditions.iter().find(|c| !known_condition_key(&c.key)) {
            let detail = at(format!("{}: no such condition key {:?}", c.operator_name, c.key));
            return Err(MalformedPolicy::new(INVALID_KEY, detail));
        }
    }
    Ok(policy)
}

/// An AWS principal ARN (not an account): no wildcard (IAM: "You cannot use a wildcard to match
/// part of a principal name or ARN"), and in the lab's account one of its users.
fn check_principal_arn(arn: &str, known: KnownPrincipals<'_>) -> Result<(), &'static str> {
    if arn.contains(['*', '?']) {
        return Err("a wildcard in a principal ARN");
    }
    let account = arn.split(':').nth(4);
    if account == Some(known.account) && !known.users.iter().any(|u| u == arn) {
        return Err("no such principal in the account");
    }
    Ok(())
}

/// S3's message for a document the engine refused.
fn s3_message(e: &PolicyError, text: &str) -> String {
    match e {
        PolicyError::Json(_) | PolicyError::NotObject if !text.starts_with('{') => {
            "Policies must be valid JSON and the first byte must be '{'".into()
        }
        PolicyError::Json(_) | PolicyError::NotObject | PolicyError::Id => INVALID_JSON.into(),
        PolicyError::UnknownElement(k) => format!("Unknown field {k}"),
        PolicyError::Version => "The policy must contain a valid version string".into(),
        PolicyError::NoStatement => "Missing required field Statement".into(),
        PolicyError::StatementShape => {
            let empty = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("Statement").and_then(Value::as_array).map(Vec::is_empty));
            if empty == Some(true) {
                "Could not parse the policy: Statement is empty!".into()
            } else {
                INVALID_JSON.into()
            }
        }
        PolicyError::Statement { index, problem, .. } => statement_message(problem, *index, text),
    }
}

fn statement_message(problem: &StatementError, index: usize, text: &str) -> String {
    use StatementError as E;
    match problem {
        E::NotObject | E::Sid | E::ConditionShape | E::ConditionValues { .. } => {
            INVALID_JSON.into()
        }
        E::UnknownElement(k) => format!("Unknown field {k}"),
        E::DuplicateSid => "Statement IDs (SID) in a single policy must be unique.".into(),
        E::Effect => {
            let doc = serde_json::from_str::<Value>(text).ok();
            let st = doc.as_ref().and_then(|d| match d.get("Statement") {
                Some(Value::Array(a)) => a.get(index),
                other => other,
            });
            match st.and_then(|s| s.get("Effect")) {
                None => "Missing required field Effect".into(),
                Some(Value::String(v)) => format!("Invalid effect: {v}"),
                Some(v) => format!("Invalid effect: {v}"),
            }
        }
        E::Missing(is, _) => format!("Missing required field {is}"),
        E::PrincipalRequired(_) => "Missing required field Principal".into(),
        E::Both(is, _) | E::NotStrings(is) => field_message(is),
        E::NotString { field, .. } => field_message(field),
        E::Action { .. } => INVALID_ACTION.into(),
        E::Resource { .. } => INVALID_RESOURCE.into(),
        E::PrincipalShape(_) | E::AwsPrincipal { .. } | E::PrincipalNotAllowed(_) => {
            INVALID_PRINCIPAL.into()
        }
        E::UnknownOperator(op) | E::OperatorBlock(op) => format!("Invalid Condition type : {op}"),
        E::ConditionKey { .. } => INVALID_KEY.into(),
        E::ConditionValue { expected, .. } if expected.contains("IP") => {
            "Invalid IP address in Conditions".into()
        }
        E::ConditionValue { op, .. } => format!("Invalid Condition type : {op}"),
    }
}

/// The message for a malformed element, by the element's name.
fn field_message(field: &str) -> String {
    if field.contains("Principal") {
        INVALID_PRINCIPAL.into()
    } else if field.contains("Action") {
        INVALID_ACTION.into()
    } else if field.contains("Resource") {
        INVALID_RESOURCE.into()
    } else {
        INVALID_JSON.into()
    }
}

/// What a stored bucket policy that no longer parses (it was validated when stored) becomes:
/// an explicit Deny of every action except reading, replacing and deleting the bucket policy,
/// so that its Denies never fail open and an administrator (whose identity policy allows those
/// three) can still repair it. S3: "the root user of the AWS account that owns a bucket can
/// always use this operation, even if the policy explicitly denies the root user"; the lab has
/// no root user, and this is the nearest.
pub fn unreadable_bucket_policy() -> Policy {
    const TEXT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"UnreadableBucketPolicy","Effect":"Deny","Principal":"*","NotAction":["s3:GetBucketPolicy","s3:PutBucketPolicy","s3:DeleteBucketPolicy"],"Resource":"*"}]}"#;
    // A constant checked by the `an_unreadable_bucket_policy_fails_closed` test.
    Policy::parse(TEXT, PolicyKind::Bucket).unwrap_or_else(|_| Policy::deny_all(PolicyKind::Bucket))
}
