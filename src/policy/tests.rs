//! The access matrix (the guide's examples and their near misses), validation messages, and
//! property tests.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

// The guide's example policies, copied byte for byte (trailing tabs included).

/// Using Endpoint Policies — Example: Restricting Access to a Specific Bucket.
const GUIDE_ENDPOINT_SPECIFIC_BUCKET: &str = r#"{
  "Statement": [
    {
      "Sid": "Access-to-specific-bucket-only",
      "Principal": "*",
      "Action": [
        "s3:GetObject",
        "s3:PutObject"
      ],
      "Effect": "Allow",
      "Resource": ["arn:aws:s3:::my_secure_bucket",
                   "arn:aws:s3:::my_secure_bucket/*"]
    }
  ]
}		"#;

/// Using Endpoint Policies — Example: Enabling Access to the Amazon Linux AMI Repositories.
const GUIDE_ENDPOINT_AMI_REPOS: &str = r#"{
  "Statement": [
    {
      "Sid": "AmazonLinuxAMIRepositoryAccess",
      "Principal": "*",
      "Action": [
        "s3:GetObject"
      ],
      "Effect": "Allow",
      "Resource": [
        "arn:aws:s3:::packages.*.amazonaws.com/*",
        "arn:aws:s3:::repo.*.amazonaws.com/*"
      ]
    }
  ]
}"#;

/// Using Amazon S3 Bucket Policies — Example: Restricting Access to a Specific Endpoint.
const GUIDE_BUCKET_SPECIFIC_VPCE: &str = r#"{
  "Version": "2012-10-17",
  "Id": "Policy1415115909152",
  "Statement": [
    {
      "Sid": "Access-to-specific-VPCE-only",
      "Principal": "*",
      "Action": "s3:*",
      "Effect": "Deny",
      "Resource": ["arn:aws:s3:::my_secure_bucket",
                   "arn:aws:s3:::my_secure_bucket/*"],
      "Condition": {
        "StringNotEquals": {
          "aws:sourceVpce": "vpce-1a2b3c4d"
        }
      }
    }
  ]
}	"#;

/// Using Amazon S3 Bucket Policies — Example: Restricting Access to a Specific VPC.
const GUIDE_BUCKET_SPECIFIC_VPC: &str = r#"{
  "Version": "2012-10-17",
  "Id": "Policy1415115909152",
  "Statement": [
    {
      "Sid": "Access-to-specific-VPC-only",
      "Principal": "*",
      "Action": "s3:*",
      "Effect": "Deny",
      "Resource": ["arn:aws:s3:::my_secure_bucket",
                   "arn:aws:s3:::my_secure_bucket/*"],
      "Condition": {
        "StringNotEquals": {
          "aws:sourceVpc": "vpc-111bbb22"
        }
      }
    }
  ]
}	"#;

const DEV: &str = "arn:aws:iam::123456789012:user/developer";
const ADMIN: &str = "arn:aws:iam::123456789012:user/admin";
const MALLORY: &str = "arn:aws:iam::999999999999:user/mallory";
const OBJ: &str = "arn:aws:s3:::my_secure_bucket/hello.txt";
const BUCKET: &str = "arn:aws:s3:::my_secure_bucket";
const OTHER_OBJ: &str = "arn:aws:s3:::other_bucket/hello.txt";
const VPCE_ARN: &str = "arn:aws:ec2:us-east-1:123456789012:vpc-endpoint/vpce-1a2b3c4d";

/// The `developer` user of the default lab: "ec2:Describe*" and "s3:*" only.
const DEVELOPER_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
    {"Sid":"DeveloperAccess","Effect":"Allow","Action":["ec2:Describe*","s3:*"],"Resource":"*"}]}"#;

type Keys = &'static [(&'static str, &'static [&'static str])];

const NO_KEYS: Keys = &[];
const VIA_VPCE: Keys =
    &[("aws:sourceVpce", &["vpce-1a2b3c4d"]), ("aws:sourceVpc", &["vpc-111bbb22"])];
const VIA_OTHER_VPCE: Keys =
    &[("aws:sourceVpce", &["vpce-99999999"]), ("aws:sourceVpc", &["vpc-222ccc33"])];
const PUBLIC_203: Keys = &[("aws:SourceIp", &["203.0.113.10"])];

fn req(
    principal: Option<&'static str>,
    action: &'static str,
    resource: &'static str,
    keys: Keys,
) -> RequestContext<'static> {
    RequestContext { principal, action, resource, keys }
}

fn allow(sid: Option<&str>) -> Decision {
    Decision::Allow { sid: sid.map(str::to_owned) }
}

fn deny(sid: Option<&str>, index: usize) -> Decision {
    Decision::Deny { sid: sid.map(str::to_owned), index }
}

/// A denial: by an explicit Deny when `by` names a Sid (every row's Deny has one), else by no
/// policy allowing.
fn denied(by: &str) -> Verdict {
    Verdict::Deny { by: by.to_string(), explicit: by.contains(':') }
}

/// A denial by a Deny statement without a Sid.
fn denied_explicitly(label: &str) -> Verdict {
    Verdict::Deny { by: label.to_string(), explicit: true }
}

fn p(json: &str, kind: PolicyKind) -> Policy {
    Policy::parse(json, kind).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

use PolicyKind::{Bucket, Endpoint, Identity};

/// One policy, one request, one decision.
struct Row {
    name: &'static str,
    policy: &'static str,
    kind: PolicyKind,
    req: RequestContext<'static>,
    want: Decision,
}

fn row(
    name: &'static str,
    policy: &'static str,
    kind: PolicyKind,
    req: RequestContext<'static>,
    want: Decision,
) -> Row {
    Row { name, policy, kind, req, want }
}

const VPCE_SID: Option<&str> = Some("Access-to-specific-VPCE-only");
const VPC_SID: Option<&str> = Some("Access-to-specific-VPC-only");
const BUCKET_SID: Option<&str> = Some("Access-to-specific-bucket-only");
const AMI_SID: Option<&str> = Some("AmazonLinuxAMIRepositoryAccess");

const IP_ALLOW: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"FromOffice","Effect":"Allow",
    "Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::my_secure_bucket/*",
    "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}"#;
const IP_ALLOW_HOST: &str = r#"{"Statement":{"Effect":"Allow","Principal":"*",
    "Action":"s3:GetObject","Resource":"*",
    "Condition":{"IpAddress":{"aws:SourceIp":["198.51.100.7","203.0.113.10"]}}}}"#;
const IP_DENY_OUTSIDE: &str = r#"{"Statement":{"Sid":"NotFromOffice","Effect":"Deny","Principal":"*",
    "Action":"s3:*","Resource":"*",
    "Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}}"#;
const DENY_OVER_ALLOW: &str = r#"{"Statement":[
    {"Sid":"All","Effect":"Allow","Action":"s3:*","Resource":"*"},
    {"Sid":"NoDelete","Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"}]}"#;
const NOT_ACTION: &str =
    r#"{"Statement":{"Effect":"Allow","NotAction":"s3:Delete*","Resource":"*"}}"#;
const NOT_RESOURCE: &str = r#"{"Statement":{"Sid":"OnlyMine","Effect":"Deny","Principal":"*",
    "Action":"s3:*","NotResource":["arn:aws:s3:::my_secure_bucket","arn:aws:s3:::my_secure_bucket/*"]}}"#;
/// The IAM guide's form: the user and its account ("you must also specify the account ARN of
/// the not-denied principal").
const NOT_PRINCIPAL: &str = r#"{"Statement":{"Sid":"OnlyDeveloper","Effect":"Deny",
    "NotPrincipal":{"AWS":["arn:aws:iam::123456789012:user/developer","arn:aws:iam::123456789012:root"]},
    "Action":"s3:*","Resource":"*"}}"#;
/// The user alone: its account is not exempt, so neither is the user.
const NOT_PRINCIPAL_USER_ONLY: &str = r#"{"Statement":{"Sid":"OnlyDeveloper","Effect":"Deny",
    "NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/developer"},"Action":"s3:*","Resource":"*"}}"#;
/// The account alone: only the account itself (its root) is exempt, not its users.
const NOT_PRINCIPAL_ACCOUNT_ONLY: &str = r#"{"Statement":{"Sid":"NotTheAccount","Effect":"Deny",
    "NotPrincipal":{"AWS":"123456789012"},"Action":"s3:*","Resource":"*"}}"#;
/// Allow with NotPrincipal: everyone but the admin (anonymous included).
const ALLOW_NOT_ADMIN: &str = r#"{"Statement":{"Sid":"AllButAdmin","Effect":"Allow",
    "NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/admin"},"Action":"s3:GetObject","Resource":"*"}}"#;
/// Allow with NotPrincipal naming the admin and its account.
const ALLOW_NOT_ADMIN_NOR_ACCOUNT: &str = r#"{"Statement":{"Sid":"AllButAdmin","Effect":"Allow",
    "NotPrincipal":{"AWS":["arn:aws:iam::123456789012:user/admin","arn:aws:iam::123456789012:root"]},
    "Action":"s3:GetObject","Resource":"*"}}"#;
/// Allow with NotPrincipal naming the account alone.
const ALLOW_NOT_ACCOUNT: &str = r#"{"Statement":{"Sid":"AllButAccount","Effect":"Allow",
    "NotPrincipal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"s3:GetObject","Resource":"*"}}"#;
const ROOT_PRINCIPAL: &str = r#"{"Statement":{"Effect":"Allow",
    "Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"s3:*","Resource":"*"}}"#;
const ACCOUNT_PRINCIPAL: &str = r#"{"Statement":{"Effect":"Allow",
    "Principal":{"AWS":["123456789012"]},"Action":"s3:*","Resource":"*"}}"#;
const AWS_STAR: &str = r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"*"}}"#;
const ONE_USER: &str = r#"{"Statement":{"Effect":"Allow",
    "Principal":{"AWS":["arn:aws:iam::123456789012:user/developer"]},"Action":"s3:*","Resource":"*"}}"#;
const SERVICE_PRINCIPAL: &str = r#"{"Statement":{"Effect":"Allow",
    "Principal":{"Service":"ec2.amazonaws.com"},"Action":"s3:GetObject","Resource":"*"}}"#;
const NOT_EQUALS_IF_EXISTS: &str = r#"{"Statement":[
    {"Sid":"Everyone","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},
    {"Sid":"WrongEndpoint","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*",
     "Condition":{"StringNotEqualsIfExists":{"aws:sourceVpce":"vpce-1a2b3c4d"}}}]}"#;
const EQUALS_IF_EXISTS: &str = r#"{"Statement":{"Sid":"VpcOrPublic","Effect":"Allow","Principal":"*",
    "Action":"s3:*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:sourceVpc":"vpc-111bbb22"}}}}"#;
const TWO_ENDPOINTS: &str = r#"{"Statement":{"Sid":"TwoEndpoints","Effect":"Deny","Principal":"*",
    "Action":"s3:*","Resource":"*",
    "Condition":{"StringNotEquals":{"aws:sourceVpce":["vpce-1a2b3c4d","vpce-99999999"]}}}}"#;
const TWO_KEYS: &str = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*",
    "Condition":{"StringEquals":{"aws:sourceVpce":"vpce-1a2b3c4d","aws:sourceVpc":"vpc-111bbb22"}}}}"#;
const TWO_BLOCKS: &str = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*",
    "Condition":{"StringEquals":{"aws:sourceVpce":"vpce-1a2b3c4d"},
                 "Bool":{"aws:SecureTransport":"true"}}}}"#;
const TLS_ONLY: &str = r#"{"Statement":{"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*",
    "Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false}}}}"#;
const NULL_TRUE: &str = r#"{"Statement":{"Sid":"EndpointOnly","Effect":"Deny","Principal":"*",
    "Action":"s3:*","Resource":"*","Condition":{"Null":{"aws:sourceVpce":"true"}}}}"#;
const NULL_FALSE: &str = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*",
    "Resource":"*","Condition":{"Null":{"aws:sourceVpce":false}}}}"#;
const ANY_VALUE: &str = r#"{"Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*",
    "Condition":{"ForAnyValue:StringEquals":{"s3:prefix":["home/","public/"]}}}}"#;
const ALL_VALUES: &str = r#"{"Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*",
    "Condition":{"ForAllValues:StringLike":{"s3:prefix":"home/*"}}}}"#;
const ANY_VALUE_NOT: &str = r#"{"Statement":{"Sid":"Tags","Effect":"Deny","Principal":"*",
    "Action":"s3:*","Resource":"*","Condition":{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"team"}}}}"#;
const QUESTION_MARK: &str =
    r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::log?/*"}}"#;
const IGNORE_CASE: &str = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*",
    "Condition":{"StringEqualsIgnoreCase":{"aws:username":"Developer"}}}}"#;
const EXACT_CASE: &str = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*",
    "Condition":{"StringEquals":{"AWS:UserName":"Developer"}}}}"#;
const STRING_LIKE: &str = r#"{"Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*",
    "Condition":{"StringLike":{"s3:prefix":["home/*","public/??"]}}}}"#;
const STRING_NOT_LIKE: &str = r#"{"Statement":{"Sid":"NoSecrets","Effect":"Deny","Action":"s3:ListBucket",
    "Resource":"*","Condition":{"StringNotLike":{"s3:prefix":"public/*"}}}}"#;
const ARN_LIKE: &str = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*",
    "Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/*"}}}}"#;
const ARN_EQUALS_SEGMENT: &str = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*",
    "Resource":"*","Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::*:user/developer"}}}}"#;
const ARN_NOT_LIKE: &str = r#"{"Statement":{"Sid":"OurAccount","Effect":"Deny","Principal":"*",
    "Action":"s3:*","Resource":"*",
    "Condition":{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:*"}}}}"#;
const MODIFY_ONE_ENDPOINT: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
    "Action":"ec2:ModifyVpcEndpoint",
    "Resource":"arn:aws:ec2:us-east-1:123456789012:vpc-endpoint/vpce-1a2b3c4d"}}"#;
const MANAGE_ENDPOINTS: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
    "Action":["ec2:CreateVpcEndpoint","ec2:ModifyVpcEndpoint","ec2:DeleteVpcEndpoints",
              "ec2:DescribeVpcEndpoint*","ec2:DescribePrefixLists"],"Resource":"*"}}"#;

#[rustfmt::skip]
fn decision_rows() -> Vec<Row> {
    use Decision::Implicit;
    vec![
        // The guide's "Restricting Access to a Specific Endpoint" bucket policy.
        row("vpce: through the named endpoint, the Deny does not apply",
            GUIDE_BUCKET_SPECIFIC_VPCE, Bucket, req(Some(DEV), "s3:GetObject", OBJ, VIA_VPCE), Implicit),
        row("vpce: through another endpoint",
            GUIDE_BUCKET_SPECIFIC_VPCE, Bucket, req(Some(DEV), "s3:GetObject", OBJ, VIA_OTHER_VPCE), deny(VPCE_SID, 0)),
        row("vpce: public path, key absent: StringNotEquals is true",
            GUIDE_BUCKET_SPECIFIC_VPCE, Bucket, req(Some(DEV), "s3:GetObject", OBJ, PUBLIC_203), deny(VPCE_SID, 0)),
        row("vpce: anonymous on the public path",
            GUIDE_BUCKET_SPECIFIC_VPCE, Bucket, req(None, "s3:PutObject", OBJ, NO_KEYS), deny(VPCE_SID, 0)),
        row("vpce: the bucket ARN itself (ListBucket)",
            GUIDE_BUCKET_SPECIFIC_VPCE, Bucket, req(Some(DEV), "s3:ListBucket", BUCKET, VIA_OTHER_VPCE), deny(VPCE_SID, 0)),
        row("vpce: key name case-insensitive",
            GUIDE_BUCKET_SPECIFIC_VPCE, Bucket, req(Some(DEV), "s3:GetObject", OBJ, &[("AWS:SOURCEVPCE", &["vpce-1a2b3c4d"])]), Implicit),
        row("vpce: key value case-sensitive",
            GUIDE_BUCKET_SPECIFIC_VPCE, Bucket, req(Some(DEV), "s3:GetObject", OBJ, &[("aws:sourceVpce", &["VPCE-1A2B3C4D"])]), deny(VPCE_SID, 0)),
        row("vpce: another bucket is not covered",
            GUIDE_BUCKET_SPECIFIC_VPCE, Bucket, req(Some(DEV), "s3:GetObject", OTHER_OBJ, VIA_OTHER_VPCE), Implicit),
        row("vpce: resources are case-sensitive",
            GUIDE_BUCKET_SPECIFIC_VPCE, Bucket, req(Some(DEV), "s3:GetObject", "arn:aws:s3:::MY_SECURE_BUCKET/hello.txt", NO_KEYS), Implicit),
        row("vpce: actions are case-insensitive",
            GUIDE_BUCKET_SPECIFIC_VPCE, Bucket, req(Some(DEV), "S3:getobject", OBJ, NO_KEYS), deny(VPCE_SID, 0)),
        // The guide's "Restricting Access to a Specific VPC" bucket policy.
        row("vpc: from the named VPC",
            GUIDE_BUCKET_SPECIFIC_VPC, Bucket, req(Some(DEV), "s3:GetObject", OBJ, VIA_VPCE), Implicit),
        row("vpc: from another VPC",
            GUIDE_BUCKET_SPECIFIC_VPC, Bucket, req(Some(DEV), "s3:GetObject", OBJ, VIA_OTHER_VPCE), deny(VPC_SID, 0)),
        row("vpc: public path, key absent",
            GUIDE_BUCKET_SPECIFIC_VPC, Bucket, req(None, "s3:GetObject", OBJ, PUBLIC_203), deny(VPC_SID, 0)),
        // The guide's "Restricting Access to a Specific Bucket" endpoint policy.
        row("endpoint bucket: GetObject on the bucket's object",
            GUIDE_ENDPOINT_SPECIFIC_BUCKET, Endpoint, req(None, "s3:GetObject", OBJ, VIA_VPCE), allow(BUCKET_SID)),
        row("endpoint bucket: PutObject",
            GUIDE_ENDPOINT_SPECIFIC_BUCKET, Endpoint, req(Some(DEV), "s3:PutObject", OBJ, VIA_VPCE), allow(BUCKET_SID)),
        row("endpoint bucket: DeleteObject is not listed",
            GUIDE_ENDPOINT_SPECIFIC_BUCKET, Endpoint, req(Some(DEV), "s3:DeleteObject", OBJ, VIA_VPCE), Implicit),
        row("endpoint bucket: another bucket",
            GUIDE_ENDPOINT_SPECIFIC_BUCKET, Endpoint, req(Some(DEV), "s3:GetObject", OTHER_OBJ, VIA_VPCE), Implicit),
        row("endpoint bucket: a bucket whose name extends it",
            GUIDE_ENDPOINT_SPECIFIC_BUCKET, Endpoint, req(Some(DEV), "s3:GetObject", "arn:aws:s3:::my_secure_bucket2/x", VIA_VPCE), Implicit),
        row("endpoint bucket: action case-insensitive",
            GUIDE_ENDPOINT_SPECIFIC_BUCKET, Endpoint, req(Some(DEV), "S3:GETOBJECT", OBJ, VIA_VPCE), allow(BUCKET_SID)),
        // The guide's "Enabling Access to the Amazon Linux AMI Repositories" endpoint policy.
        row("ami: packages bucket of a region",
            GUIDE_ENDPOINT_AMI_REPOS, Endpoint, req(None, "s3:GetObject", "arn:aws:s3:::packages.us-east-1.amazonaws.com/2015.09/main/repomd.xml", VIA_VPCE), allow(AMI_SID)),
        row("ami: repo bucket of a region",
            GUIDE_ENDPOINT_AMI_REPOS, Endpoint, req(None, "s3:GetObject", "arn:aws:s3:::repo.eu-west-1.amazonaws.com/latest/x.rpm", VIA_VPCE), allow(AMI_SID)),
        row("ami: PutObject is not allowed",
            GUIDE_ENDPOINT_AMI_REPOS, Endpoint, req(None, "s3:PutObject", "arn:aws:s3:::repo.eu-west-1.amazonaws.com/x", VIA_VPCE), Implicit),
        row("ami: packages.amazonaws.com lacks the region part",
            GUIDE_ENDPOINT_AMI_REPOS, Endpoint, req(None, "s3:GetObject", "arn:aws:s3:::packages.amazonaws.com/x", VIA_VPCE), Implicit),
        row("ami: the bucket itself, not an object",
            GUIDE_ENDPOINT_AMI_REPOS, Endpoint, req(None, "s3:GetObject", "arn:aws:s3:::repo.us-east-1.amazonaws.com", VIA_VPCE), Implicit),
        row("ami: my own bucket",
            GUIDE_ENDPOINT_AMI_REPOS, Endpoint, req(None, "s3:GetObject", OBJ, VIA_VPCE), Implicit),
        // aws:SourceIp: present on the public path only.
        row("ip: public path inside the CIDR",
            IP_ALLOW, Bucket, req(None, "s3:GetObject", OBJ, PUBLIC_203), allow(Some("FromOffice"))),
        row("ip: public path outside the CIDR",
            IP_ALLOW, Bucket, req(None, "s3:GetObject", OBJ, &[("aws:SourceIp", &["198.51.100.10"])]), Implicit),
        row("ip: through an endpoint the key is absent: the statement is ignored",
            IP_ALLOW, Bucket, req(None, "s3:GetObject", OBJ, VIA_VPCE), Implicit),
        row("ip: a bare address is a /32",
            IP_ALLOW_HOST, Bucket, req(None, "s3:GetObject", OBJ, &[("aws:sourceip", &["203.0.113.10"])]), allow(None)),
        row("ip: the next address is outside the /32",
            IP_ALLOW_HOST, Bucket, req(None, "s3:GetObject", OBJ, &[("aws:SourceIp", &["203.0.113.11"])]), Implicit),
        row("ip: NotIpAddress with the key absent is true",
            IP_DENY_OUTSIDE, Bucket, req(None, "s3:GetObject", OBJ, VIA_VPCE), deny(Some("NotFromOffice"), 0)),
        row("ip: NotIpAddress inside the CIDR",
            IP_DENY_OUTSIDE, Bucket, req(None, "s3:GetObject", OBJ, PUBLIC_203), Implicit),
        // Explicit Deny over Allow.
        row("deny over allow: the denied action",
            DENY_OVER_ALLOW, Identity, req(Some(DEV), "s3:DeleteObject", OBJ, NO_KEYS), deny(Some("NoDelete"), 1)),
        row("deny over allow: another action",
            DENY_OVER_ALLOW, Identity, req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), allow(Some("All"))),
        // NotAction, NotResource, NotPrincipal.
        row("NotAction: an action outside the list",
            NOT_ACTION, Identity, req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), allow(None)),
        row("NotAction: an action in the list (case-insensitive)",
            NOT_ACTION, Identity, req(Some(DEV), "s3:deleteobject", OBJ, NO_KEYS), Implicit),
        row("NotResource: another bucket is denied",
            NOT_RESOURCE, Bucket, req(Some(DEV), "s3:GetObject", OTHER_OBJ, NO_KEYS), deny(Some("OnlyMine"), 0)),
        row("NotResource: the listed bucket is not",
            NOT_RESOURCE, Bucket, req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), Implicit),
        // IAM, NotPrincipal: "AWS might validate the account first and then the user", so
        // NotPrincipal must name both for the user to be exempt.
        row("NotPrincipal: the named user (and its account) is exempt",
            NOT_PRINCIPAL, Bucket, req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), Implicit),
        row("NotPrincipal: the user named without its account is denied by its account",
            NOT_PRINCIPAL_USER_ONLY, Bucket, req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), deny(Some("OnlyDeveloper"), 0)),
        row("NotPrincipal: the account alone does not exempt its users",
            NOT_PRINCIPAL_ACCOUNT_ONLY, Bucket, req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), deny(Some("NotTheAccount"), 0)),
        row("NotPrincipal: the account alone exempts the account itself",
            NOT_PRINCIPAL_ACCOUNT_ONLY, Bucket, req(Some("arn:aws:iam::123456789012:root"), "s3:GetObject", OBJ, NO_KEYS), Implicit),
        row("NotPrincipal: the account alone, another account is denied",
            NOT_PRINCIPAL_ACCOUNT_ONLY, Bucket, req(Some(MALLORY), "s3:GetObject", OBJ, NO_KEYS), deny(Some("NotTheAccount"), 0)),
        row("NotPrincipal Allow: another user of the account",
            ALLOW_NOT_ADMIN, Bucket, req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), allow(Some("AllButAdmin"))),
        row("NotPrincipal Allow: anonymous",
            ALLOW_NOT_ADMIN, Bucket, req(None, "s3:GetObject", OBJ, NO_KEYS), allow(Some("AllButAdmin"))),
        row("NotPrincipal Allow: the named user still matches through its account",
            ALLOW_NOT_ADMIN, Bucket, req(Some(ADMIN), "s3:GetObject", OBJ, NO_KEYS), allow(Some("AllButAdmin"))),
        row("NotPrincipal Allow: the named user and its account",
            ALLOW_NOT_ADMIN_NOR_ACCOUNT, Bucket, req(Some(ADMIN), "s3:GetObject", OBJ, NO_KEYS), Implicit),
        row("NotPrincipal: anonymous is denied",
            NOT_PRINCIPAL, Bucket, req(None, "s3:GetObject", OBJ, NO_KEYS), deny(Some("OnlyDeveloper"), 0)),
        row("NotPrincipal: another user of the account is denied",
            NOT_PRINCIPAL, Bucket, req(Some(ADMIN), "s3:GetObject", OBJ, NO_KEYS), deny(Some("OnlyDeveloper"), 0)),
        // Principals.
        row("principal root ARN: a user of the account",
            ROOT_PRINCIPAL, Bucket, req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), allow(None)),
        row("principal root ARN: a user of another account",
            ROOT_PRINCIPAL, Bucket, req(Some(MALLORY), "s3:GetObject", OBJ, NO_KEYS), Implicit),
        row("principal root ARN: anonymous",
            ROOT_PRINCIPAL, Bucket, req(None, "s3:GetObject", OBJ, NO_KEYS), Implicit),
        row("principal account id: a user of the account",
            ACCOUNT_PRINCIPAL, Bucket, req(Some(ADMIN), "s3:GetObject", OBJ, NO_KEYS), allow(None)),
        row("principal account id: another account",
            ACCOUNT_PRINCIPAL, Bucket, req(Some(MALLORY), "s3:GetObject", OBJ, NO_KEYS), Implicit),
        row("principal AWS *: anonymous included",
            AWS_STAR, Bucket, req(None, "s3:GetObject", OBJ, NO_KEYS), allow(None)),
        row("principal one user: that user",
            ONE_USER, Bucket, req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), allow(None)),
        row("principal one user: another user of the account",
            ONE_USER, Bucket, req(Some(ADMIN), "s3:GetObject", OBJ, NO_KEYS), Implicit),
        row("principal Service: that service",
            SERVICE_PRINCIPAL, Bucket, req(Some("ec2.amazonaws.com"), "s3:GetObject", OBJ, NO_KEYS), allow(None)),
        row("principal Service: a user",
            SERVICE_PRINCIPAL, Bucket, req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), Implicit),
        // IfExists.
        row("StringNotEqualsIfExists: key absent makes the condition true, as without IfExists",
            NOT_EQUALS_IF_EXISTS, Bucket, req(None, "s3:GetObject", OBJ, PUBLIC_203), deny(Some("WrongEndpoint"), 1)),
        row("StringNotEqualsIfExists: the named endpoint",
            NOT_EQUALS_IF_EXISTS, Bucket, req(None, "s3:GetObject", OBJ, VIA_VPCE), allow(Some("Everyone"))),
        row("StringNotEqualsIfExists: another endpoint",
            NOT_EQUALS_IF_EXISTS, Bucket, req(None, "s3:GetObject", OBJ, VIA_OTHER_VPCE), deny(Some("WrongEndpoint"), 1)),
        row("StringEqualsIfExists: key absent",
            EQUALS_IF_EXISTS, Bucket, req(None, "s3:GetObject", OBJ, NO_KEYS), allow(Some("VpcOrPublic"))),
        row("StringEqualsIfExists: another VPC",
            EQUALS_IF_EXISTS, Bucket, req(None, "s3:GetObject", OBJ, VIA_OTHER_VPCE), Implicit),
        // Several values OR-ed; several keys and blocks AND-ed.
        row("values OR-ed, negated: the second endpoint matches one",
            TWO_ENDPOINTS, Bucket, req(None, "s3:GetObject", OBJ, VIA_OTHER_VPCE), Implicit),
        row("values OR-ed, negated: a third endpoint matches none",
            TWO_ENDPOINTS, Bucket, req(None, "s3:GetObject", OBJ, &[("aws:sourceVpce", &["vpce-0000000"])]), deny(Some("TwoEndpoints"), 0)),
        row("keys AND-ed: both present",
            TWO_KEYS, Bucket, req(None, "s3:GetObject", OBJ, VIA_VPCE), allow(None)),
        row("keys AND-ed: one missing",
            TWO_KEYS, Bucket, req(None, "s3:GetObject", OBJ, &[("aws:sourceVpce", &["vpce-1a2b3c4d"])]), Implicit),
        row("blocks AND-ed: both hold",
            TWO_BLOCKS, Bucket, req(None, "s3:GetObject", OBJ, &[("aws:sourceVpce", &["vpce-1a2b3c4d"]), ("aws:SecureTransport", &["true"])]), allow(None)),
        row("blocks AND-ed: plain HTTP",
            TWO_BLOCKS, Bucket, req(None, "s3:GetObject", OBJ, &[("aws:sourceVpce", &["vpce-1a2b3c4d"]), ("aws:SecureTransport", &["false"])]), Implicit),
        // Bool and Null.
        row("Bool: plain HTTP denied (JSON false)",
            TLS_ONLY, Bucket, req(None, "s3:GetObject", OBJ, &[("aws:securetransport", &["false"])]), deny(Some("TlsOnly"), 0)),
        row("Bool: HTTPS",
            TLS_ONLY, Bucket, req(None, "s3:GetObject", OBJ, &[("aws:SecureTransport", &["TRUE"])]), Implicit),
        row("Bool: key absent is false",
            TLS_ONLY, Bucket, req(None, "s3:GetObject", OBJ, NO_KEYS), Implicit),
        row("Null true: key absent",
            NULL_TRUE, Bucket, req(None, "s3:GetObject", OBJ, PUBLIC_203), deny(Some("EndpointOnly"), 0)),
        row("Null true: key present",
            NULL_TRUE, Bucket, req(None, "s3:GetObject", OBJ, VIA_VPCE), Implicit),
        row("Null false: key present",
            NULL_FALSE, Bucket, req(None, "s3:GetObject", OBJ, VIA_VPCE), allow(None)),
        row("Null false: key absent",
            NULL_FALSE, Bucket, req(None, "s3:GetObject", OBJ, NO_KEYS), Implicit),
        // ForAnyValue / ForAllValues.
        row("ForAnyValue: one of several values matches",
            ANY_VALUE, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, &[("s3:prefix", &["tmp/", "public/"])]), allow(None)),
        row("ForAnyValue: none matches",
            ANY_VALUE, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, &[("s3:prefix", &["tmp/", "var/"])]), Implicit),
        row("ForAnyValue: empty set is false",
            ANY_VALUE, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, &[("s3:prefix", &[])]), Implicit),
        row("ForAllValues: every value matches",
            ALL_VALUES, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, &[("s3:prefix", &["home/a", "home/b/c"])]), allow(None)),
        row("ForAllValues: one value does not",
            ALL_VALUES, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, &[("s3:prefix", &["home/a", "tmp/"])]), Implicit),
        row("ForAllValues: key absent is true",
            ALL_VALUES, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, NO_KEYS), allow(None)),
        row("ForAllValues: empty set is true",
            ALL_VALUES, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, &[("s3:prefix", &[])]), allow(None)),
        row("ForAnyValue:StringNotEquals: one value differs",
            ANY_VALUE_NOT, Bucket, req(None, "s3:PutObject", OBJ, &[("aws:TagKeys", &["team", "cost"])]), deny(Some("Tags"), 0)),
        row("ForAnyValue:StringNotEquals: all equal",
            ANY_VALUE_NOT, Bucket, req(None, "s3:PutObject", OBJ, &[("aws:TagKeys", &["team"])]), Implicit),
        row("ForAnyValue:StringNotEquals: key absent is false",
            ANY_VALUE_NOT, Bucket, req(None, "s3:PutObject", OBJ, NO_KEYS), Implicit),
        // Wildcards, case.
        row("? matches one character",
            QUESTION_MARK, Identity, req(Some(DEV), "s3:GetObject", "arn:aws:s3:::log1/x", NO_KEYS), allow(None)),
        row("? does not match two",
            QUESTION_MARK, Identity, req(Some(DEV), "s3:GetObject", "arn:aws:s3:::log12/x", NO_KEYS), Implicit),
        row("? does not match none",
            QUESTION_MARK, Identity, req(Some(DEV), "s3:GetObject", "arn:aws:s3:::log/x", NO_KEYS), Implicit),
        row("StringEqualsIgnoreCase: other case",
            IGNORE_CASE, Identity, req(Some(DEV), "s3:GetObject", OBJ, &[("aws:username", &["DEVELOPER"])]), allow(None)),
        row("StringEquals: other case, key name case-insensitive",
            EXACT_CASE, Identity, req(Some(DEV), "s3:GetObject", OBJ, &[("aws:username", &["developer"])]), Implicit),
        row("StringEquals: same case",
            EXACT_CASE, Identity, req(Some(DEV), "s3:GetObject", OBJ, &[("aws:username", &["Developer"])]), allow(None)),
        row("StringLike: ?? matches two characters",
            STRING_LIKE, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, &[("s3:prefix", &["public/ab"])]), allow(None)),
        row("StringLike: case-sensitive",
            STRING_LIKE, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, &[("s3:prefix", &["HOME/x"])]), Implicit),
        row("StringNotLike: matching prefix",
            STRING_NOT_LIKE, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, &[("s3:prefix", &["public/x"])]), Implicit),
        row("StringNotLike: another prefix",
            STRING_NOT_LIKE, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, &[("s3:prefix", &["secret/"])]), deny(Some("NoSecrets"), 0)),
        row("StringNotLike: key absent is true",
            STRING_NOT_LIKE, Identity, req(Some(DEV), "s3:ListBucket", BUCKET, NO_KEYS), deny(Some("NoSecrets"), 0)),
        // Arn operators.
        row("ArnLike: a user of the account",
            ARN_LIKE, Bucket, req(Some(DEV), "s3:GetObject", OBJ, &[("aws:PrincipalArn", &[DEV])]), allow(None)),
        row("ArnLike: another account",
            ARN_LIKE, Bucket, req(Some(MALLORY), "s3:GetObject", OBJ, &[("aws:PrincipalArn", &[MALLORY])]), Implicit),
        row("ArnEquals: wildcard account segment",
            ARN_EQUALS_SEGMENT, Bucket, req(Some(MALLORY), "s3:GetObject", OBJ, &[("aws:PrincipalArn", &["arn:aws:iam::999999999999:user/developer"])]), allow(None)),
        row("ArnEquals: * does not cross a segment",
            ARN_EQUALS_SEGMENT, Bucket, req(Some(DEV), "s3:GetObject", OBJ, &[("aws:PrincipalArn", &["arn:aws:iam::1:2:user/developer"])]), Implicit),
        row("ArnNotLike: another account is denied",
            ARN_NOT_LIKE, Bucket, req(Some(MALLORY), "s3:GetObject", OBJ, &[("aws:PrincipalArn", &[MALLORY])]), deny(Some("OurAccount"), 0)),
        row("ArnNotLike: key absent is true",
            ARN_NOT_LIKE, Bucket, req(None, "s3:GetObject", OBJ, NO_KEYS), deny(Some("OurAccount"), 0)),
        // EC2 identity policies.
        row("developer: ec2:DescribeVpcs",
            DEVELOPER_POLICY, Identity, req(Some(DEV), "ec2:DescribeVpcs", "*", NO_KEYS), allow(Some("DeveloperAccess"))),
        row("developer: ec2:describevpcendpoints, lower case",
            DEVELOPER_POLICY, Identity, req(Some(DEV), "ec2:describevpcendpoints", "*", NO_KEYS), allow(Some("DeveloperAccess"))),
        row("developer: ec2:CreateVpcEndpoint refused",
            DEVELOPER_POLICY, Identity, req(Some(DEV), "ec2:CreateVpcEndpoint", "*", NO_KEYS), Implicit),
        row("developer: s3:PutObject",
            DEVELOPER_POLICY, Identity, req(Some(DEV), "s3:PutObject", OBJ, NO_KEYS), allow(Some("DeveloperAccess"))),
        row("no resource-level permissions: a specific endpoint ARN does not grant",
            MODIFY_ONE_ENDPOINT, Identity, req(Some(DEV), "ec2:ModifyVpcEndpoint", "*", NO_KEYS), Implicit),
        row("the same policy would match the ARN itself, which the caller never passes",
            MODIFY_ONE_ENDPOINT, Identity, req(Some(DEV), "ec2:ModifyVpcEndpoint", VPCE_ARN, NO_KEYS), allow(None)),
        row("Resource * grants ModifyVpcEndpoint",
            MANAGE_ENDPOINTS, Identity, req(Some(DEV), "ec2:ModifyVpcEndpoint", "*", NO_KEYS), allow(None)),
        row("DescribeVpcEndpoint* covers DescribeVpcEndpointServices",
            MANAGE_ENDPOINTS, Identity, req(Some(DEV), "ec2:DescribeVpcEndpointServices", "*", NO_KEYS), allow(None)),
        row("manage endpoints: DescribeVpcs is not listed",
            MANAGE_ENDPOINTS, Identity, req(Some(DEV), "ec2:DescribeVpcs", "*", NO_KEYS), Implicit),
        // The default endpoint policy.
        row("full access: anonymous GetObject",
            FULL_ACCESS, Endpoint, req(None, "s3:GetObject", OTHER_OBJ, VIA_VPCE), allow(None)),
    ]
}

#[test]
fn decision_matrix() {
    let rows = decision_rows();
    assert!(rows.len() >= 40, "{} rows", rows.len());
    let mut failures = Vec::new();
    for r in &rows {
        let got = p(r.policy, r.kind).evaluate(&r.req);
        if got != r.want {
            failures.push(format!("{}: got {got:?}, want {:?}", r.name, r.want));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// The applicable policies for S3 and the verdict.
struct VerdictRow {
    name: &'static str,
    endpoint: Option<&'static str>,
    bucket: Option<&'static str>,
    identity: Option<&'static str>,
    req: RequestContext<'static>,
    want: Verdict,
}

const ANON_READ_WRITE: &str = r#"{"Version":"2012-10-17","Statement":[
    {"Sid":"AnonymousReadWrite","Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:PutObject"],
     "Resource":"arn:aws:s3:::my_secure_bucket/*"}]}"#;
/// The lab's my-secure-bucket: the guide's endpoint restriction plus anonymous read and write.
const SECURE_BUCKET: &str = r#"{"Version":"2012-10-17","Statement":[
    {"Sid":"Access-to-specific-VPCE-only","Principal":"*","Action":"s3:*","Effect":"Deny",
     "Resource":["arn:aws:s3:::my_secure_bucket","arn:aws:s3:::my_secure_bucket/*"],
     "Condition":{"StringNotEquals":{"aws:sourceVpce":"vpce-1a2b3c4d"}}},
    {"Sid":"AnonymousReadWrite","Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:PutObject"],
     "Resource":"arn:aws:s3:::my_secure_bucket/*"}]}"#;
const ENDPOINT_DENY_DELETE: &str = r#"{"Statement":[
    {"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},
    {"Sid":"NoDelete","Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"*"}]}"#;
const ENDPOINT_DENY_NO_SID: &str = r#"{"Statement":[
    {"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},
    {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"*"}]}"#;
const ENDPOINT_EC2_ONLY: &str = r#"{"Statement":{"Sid":"Ec2","Effect":"Allow","Principal":"*","Action":"ec2:*","Resource":"*"}}"#;
const ENDPOINT_NOT_ACTION_DENY: &str = r#"{"Statement":[
    {"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},
    {"Sid":"OnlyS3","Effect":"Deny","Principal":"*","NotAction":"s3:*","Resource":"*"}]}"#;
const USER_NO_DELETE: &str = r#"{"Statement":[
    {"Effect":"Allow","Action":"s3:*","Resource":"*"},
    {"Sid":"KeepData","Effect":"Deny","Action":"s3:Delete*","Resource":"*"}]}"#;
const BUCKET_ALLOW_ALL: &str = r#"{"Statement":{"Sid":"All","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}"#;
const USER_SILENT: &str =
    r#"{"Statement":{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}}"#;
const DENY_ACCOUNT: &str = r#"{"Statement":{"Sid":"NotUs","Effect":"Deny",
    "Principal":{"AWS":"123456789012"},"Action":"s3:GetObject","Resource":"*"}}"#;
/// The account and one user of it in one statement: the user is named itself.
const ACCOUNT_AND_USER: &str = r#"{"Statement":{"Effect":"Allow",
    "Principal":{"AWS":["123456789012","arn:aws:iam::123456789012:user/developer"]},"Action":"s3:*","Resource":"*"}}"#;

#[rustfmt::skip]
fn verdict_rows() -> Vec<VerdictRow> {
    let v = |name, endpoint, bucket, identity, req, want| VerdictRow { name, endpoint, bucket, identity, req, want };
    vec![
        v("guide vpce policy: through vpce-1a2b3c4d, the user policy allows",
          Some(FULL_ACCESS), Some(GUIDE_BUCKET_SPECIFIC_VPCE), Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OBJ, VIA_VPCE), Verdict::Allow),
        v("guide vpce policy: through another endpoint",
          Some(FULL_ACCESS), Some(GUIDE_BUCKET_SPECIFIC_VPCE), Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OBJ, VIA_OTHER_VPCE), denied("bucket-policy:Access-to-specific-VPCE-only")),
        v("guide vpce policy: public path",
          None, Some(GUIDE_BUCKET_SPECIFIC_VPCE), Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OBJ, PUBLIC_203), denied("bucket-policy:Access-to-specific-VPCE-only")),
        v("guide vpce policy: anonymous through the endpoint, nothing grants",
          Some(FULL_ACCESS), Some(GUIDE_BUCKET_SPECIFIC_VPCE), None,
          req(None, "s3:GetObject", OBJ, VIA_VPCE), denied(IMPLICIT)),
        v("lab secure bucket: anonymous through the endpoint",
          Some(FULL_ACCESS), Some(SECURE_BUCKET), None,
          req(None, "s3:PutObject", OBJ, VIA_VPCE), Verdict::Allow),
        v("lab secure bucket: anonymous on the public path",
          None, Some(SECURE_BUCKET), None,
          req(None, "s3:GetObject", OBJ, PUBLIC_203), denied("bucket-policy:Access-to-specific-VPCE-only")),
        v("lab secure bucket: anonymous DeleteObject through the endpoint",
          Some(FULL_ACCESS), Some(SECURE_BUCKET), None,
          req(None, "s3:DeleteObject", OBJ, VIA_VPCE), denied(IMPLICIT)),
        v("guide vpc policy: from the VPC",
          Some(FULL_ACCESS), Some(GUIDE_BUCKET_SPECIFIC_VPC), Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OBJ, VIA_VPCE), Verdict::Allow),
        v("guide vpc policy: from another VPC",
          Some(FULL_ACCESS), Some(GUIDE_BUCKET_SPECIFIC_VPC), Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OBJ, VIA_OTHER_VPCE), denied("bucket-policy:Access-to-specific-VPC-only")),
        v("endpoint bucket policy: the allowed bucket",
          Some(GUIDE_ENDPOINT_SPECIFIC_BUCKET), None, Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OBJ, VIA_VPCE), Verdict::Allow),
        v("endpoint bucket policy: another bucket",
          Some(GUIDE_ENDPOINT_SPECIFIC_BUCKET), None, Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OTHER_OBJ, VIA_VPCE), denied(ENDPOINT_POLICY)),
        v("endpoint bucket policy: DeleteObject",
          Some(GUIDE_ENDPOINT_SPECIFIC_BUCKET), None, Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:DeleteObject", OBJ, VIA_VPCE), denied(ENDPOINT_POLICY)),
        v("endpoint bucket policy: the same request on the public path",
          None, None, Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OTHER_OBJ, PUBLIC_203), Verdict::Allow),
        v("endpoint policy does not grant by itself",
          Some(GUIDE_ENDPOINT_SPECIFIC_BUCKET), None, None,
          req(None, "s3:GetObject", OBJ, VIA_VPCE), denied(IMPLICIT)),
        v("ami endpoint policy: my bucket",
          Some(GUIDE_ENDPOINT_AMI_REPOS), Some(ANON_READ_WRITE), None,
          req(None, "s3:GetObject", OBJ, VIA_VPCE), denied(ENDPOINT_POLICY)),
        v("ami endpoint policy: a repository, allowed by its bucket policy",
          Some(GUIDE_ENDPOINT_AMI_REPOS), Some(BUCKET_ALLOW_ALL), None,
          req(None, "s3:GetObject", "arn:aws:s3:::repo.us-east-1.amazonaws.com/x.rpm", VIA_VPCE), Verdict::Allow),
        v("endpoint explicit deny with Sid",
          Some(ENDPOINT_DENY_DELETE), Some(BUCKET_ALLOW_ALL), Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:DeleteObject", OBJ, VIA_VPCE), denied("endpoint-policy:NoDelete")),
        v("endpoint explicit deny without Sid",
          Some(ENDPOINT_DENY_NO_SID), Some(BUCKET_ALLOW_ALL), Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:DeleteObject", OBJ, VIA_VPCE), denied_explicitly(ENDPOINT_POLICY)),
        v("endpoint with only ec2:* grants nothing for S3 and does not deny explicitly",
          Some(ENDPOINT_EC2_ONLY), Some(BUCKET_ALLOW_ALL), Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OBJ, VIA_VPCE), denied(ENDPOINT_POLICY)),
        v("endpoint NotAction deny is about S3 only",
          Some(ENDPOINT_NOT_ACTION_DENY), Some(BUCKET_ALLOW_ALL), None,
          req(None, "s3:GetObject", OBJ, VIA_VPCE), Verdict::Allow),
        v("user policy explicit deny beats the bucket's allow",
          Some(FULL_ACCESS), Some(BUCKET_ALLOW_ALL), Some(USER_NO_DELETE),
          req(Some(DEV), "s3:DeleteObject", OBJ, VIA_VPCE), denied("user-policy:KeepData")),
        v("bucket allows, user policy silent",
          Some(FULL_ACCESS), Some(BUCKET_ALLOW_ALL), Some(r#"{"Statement":{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}}"#),
          req(Some(DEV), "s3:GetObject", OBJ, VIA_VPCE), Verdict::Allow),
        // IAM, "AWS account principals": naming an account "delegates authority to the
        // account"; "the principal ARN that is specified in the policy determines whether
        // implicit denies in other policy types are applicable to the final decision": only a
        // policy that "grants permission directly to the IAM user" overrides the implicit deny
        // of the user's identity policy.
        v("account principal (id) delegates: the user's identity policy is silent",
          None, Some(ACCOUNT_PRINCIPAL), Some(USER_SILENT),
          req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), denied(IMPLICIT)),
        v("account principal (root ARN) delegates: the user has no identity policy",
          Some(FULL_ACCESS), Some(ROOT_PRINCIPAL), None,
          req(Some(DEV), "s3:GetObject", OBJ, VIA_VPCE), denied(IMPLICIT)),
        v("account principal and the user's identity policy allows",
          None, Some(ACCOUNT_PRINCIPAL), Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), Verdict::Allow),
        v("the user's own ARN as principal grants alone",
          None, Some(ONE_USER), Some(USER_SILENT),
          req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), Verdict::Allow),
        v("the account and the user's own ARN: the user is named",
          None, Some(ACCOUNT_AND_USER), Some(USER_SILENT),
          req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), Verdict::Allow),
        v("the account and another user's ARN: the admin is not named",
          None, Some(ACCOUNT_AND_USER), Some(USER_SILENT),
          req(Some(ADMIN), "s3:GetObject", OBJ, NO_KEYS), denied(IMPLICIT)),
        v("AWS * grants alone",
          None, Some(AWS_STAR), Some(USER_SILENT),
          req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), Verdict::Allow),
        // IAM, NotPrincipal: with Allow, "the permissions specified in the policy statement
        // will be granted to all principals except for the one(s) specified, including
        // anonymous (unauthenticated) users": granted to a user itself, as "*" is.
        v("NotPrincipal Allow grants alone to a user it does not name",
          None, Some(ALLOW_NOT_ADMIN), Some(USER_SILENT),
          req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), Verdict::Allow),
        v("NotPrincipal Allow grants alone to anonymous",
          None, Some(ALLOW_NOT_ADMIN), None,
          req(None, "s3:GetObject", OBJ, NO_KEYS), Verdict::Allow),
        v("NotPrincipal Allow naming the user: only its account is left, which delegates",
          None, Some(ALLOW_NOT_ADMIN), Some(USER_SILENT),
          req(Some(ADMIN), "s3:GetObject", OBJ, NO_KEYS), denied(IMPLICIT)),
        v("NotPrincipal Allow naming the user: its identity policy still allows",
          None, Some(ALLOW_NOT_ADMIN), Some(DEVELOPER_POLICY),
          req(Some(ADMIN), "s3:GetObject", OBJ, NO_KEYS), Verdict::Allow),
        v("NotPrincipal Allow naming the user and its account grants it nothing",
          None, Some(ALLOW_NOT_ADMIN_NOR_ACCOUNT), Some(USER_SILENT),
          req(Some(ADMIN), "s3:GetObject", OBJ, NO_KEYS), denied(IMPLICIT)),
        v("NotPrincipal Allow naming the account alone grants its users alone",
          None, Some(ALLOW_NOT_ACCOUNT), Some(USER_SILENT),
          req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), Verdict::Allow),
        v("NotPrincipal Deny naming the user alone denies it despite its identity policy",
          None, Some(NOT_PRINCIPAL_USER_ONLY), Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OBJ, NO_KEYS), denied("bucket-policy:OnlyDeveloper")),
        v("a Deny naming the account denies every user of it",
          None, Some(DENY_ACCOUNT), Some(DEVELOPER_POLICY),
          req(Some(ADMIN), "s3:GetObject", OBJ, NO_KEYS), denied("bucket-policy:NotUs")),
        v("an endpoint policy naming the account lets its users through the endpoint",
          Some(ACCOUNT_PRINCIPAL), None, Some(DEVELOPER_POLICY),
          req(Some(DEV), "s3:GetObject", OBJ, VIA_VPCE), Verdict::Allow),
        v("aws:SourceIp allow: public path",
          None, Some(IP_ALLOW), None,
          req(None, "s3:GetObject", OBJ, PUBLIC_203), Verdict::Allow),
        v("aws:SourceIp allow: through an endpoint the statement is ignored",
          Some(FULL_ACCESS), Some(IP_ALLOW), None,
          req(None, "s3:GetObject", OBJ, VIA_VPCE), denied(IMPLICIT)),
        v("no policies at all",
          None, None, None,
          req(None, "s3:GetObject", OBJ, NO_KEYS), denied(IMPLICIT)),
    ]
}

#[test]
fn verdict_matrix() {
    let rows = verdict_rows();
    let mut failures = Vec::new();
    for r in &rows {
        let kinds = [(r.endpoint, Endpoint), (r.bucket, Bucket), (r.identity, Identity)];
        let [endpoint, bucket, identity] = kinds.map(|(t, k)| t.map(|t| p(t, k)));
        let s3 = S3Policies {
            endpoint: endpoint.as_ref(),
            bucket: bucket.as_ref(),
            identity: identity.as_ref(),
            cross_account: false,
        };
        let got = s3.decide(&r.req);
        if got != r.want {
            failures.push(format!("{}: got {got:?}, want {:?}", r.name, r.want));
        }
        // The generic combinator with the endpoint policy restricted to s3 agrees.
        let endpoint_s3 = endpoint.as_ref().map(|e| e.for_service("s3"));
        let mut list: Vec<(&str, &Policy, bool)> = Vec::new();
        list.extend(endpoint_s3.as_ref().map(|e| (ENDPOINT_POLICY, e, true)));
        list.extend(bucket.as_ref().map(|b| (BUCKET_POLICY, b, false)));
        list.extend(identity.as_ref().map(|i| (USER_POLICY, i, false)));
        assert_eq!(decide(&list, &r.req), got, "{}: decide disagrees", r.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn decide_for_ec2_uses_the_identity_policy_alone() {
    let dev = p(DEVELOPER_POLICY, Identity);
    let list = [(USER_POLICY, &dev, false)];
    assert_eq!(decide(&list, &req(Some(DEV), "ec2:DescribeVpcs", "*", NO_KEYS)), Verdict::Allow);
    assert_eq!(
        decide(&list, &req(Some(DEV), "ec2:CreateVpcEndpoint", "*", NO_KEYS)),
        denied(IMPLICIT)
    );
    // A required policy that allows does not grant on its own.
    let full = Policy::full_access();
    assert_eq!(
        decide(&[(ENDPOINT_POLICY, &full, true)], &req(None, "s3:GetObject", OBJ, NO_KEYS)),
        denied(IMPLICIT)
    );
    assert_eq!(decide(&[], &req(None, "s3:GetObject", OBJ, NO_KEYS)), denied(IMPLICIT));
}

/// IAM, "Cross-account policy evaluation logic": "To allow cross-account access, you attach a
/// resource-based policy to the resource that you want to share. You must also attach an
/// identity-based policy to the identity that acts as the principal in the request." Within an
/// account either one suffices; across accounts both must allow, and a bucket without a policy
/// admits no other account.
#[test]
fn cross_account_needs_the_bucket_policy_and_the_identity_policy() {
    const PUBLIC_READ: &str = r#"{"Statement":{"Sid":"AmazonLinuxRepository","Effect":"Allow",
        "Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::repo.us-east-1.amazonaws.com/*"}}"#;
    const THE_LAB_ACCOUNT: &str = r#"{"Statement":{"Sid":"Lab","Effect":"Allow",
        "Principal":{"AWS":"123456789012"},"Action":"s3:*","Resource":"*"}}"#;
    const RPM: &str = "arn:aws:s3:::repo.us-east-1.amazonaws.com/x.rpm";
    let s3_all = p(DEVELOPER_POLICY, Identity);
    let silent = p(USER_SILENT, Identity);
    let deny_all =
        p(r#"{"Statement":{"Sid":"No","Effect":"Deny","Action":"*","Resource":"*"}}"#, Identity);
    let public_read = p(PUBLIC_READ, Bucket);
    let lab_account = p(THE_LAB_ACCOUNT, Bucket);
    let full = Policy::full_access();
    let only_mine = p(
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*",
            "Condition":{"StringEquals":{"s3:ResourceAccount":"123456789012"}}}}"#,
        Endpoint,
    );
    let decide = |endpoint: Option<&Policy>,
                  bucket: Option<&Policy>,
                  identity: Option<&Policy>,
                  action: &'static str| {
        let s3 = S3Policies { endpoint, bucket, identity, cross_account: true };
        s3.decide(&req(Some(ADMIN), action, RPM, VIA_VPCE))
    };
    type Row<'a> = (
        &'a str,
        Option<&'a Policy>,
        Option<&'a Policy>,
        Option<&'a Policy>,
        &'static str,
        Verdict,
    );
    #[rustfmt::skip]
    let rows: [Row<'_>; 9] = [
        ("public read, the caller reads", Some(&full), Some(&public_read), Some(&s3_all), "s3:GetObject", Verdict::Allow),
        ("public read, the caller writes", Some(&full), Some(&public_read), Some(&s3_all), "s3:PutObject", denied(BUCKET_POLICY)),
        ("no bucket policy", Some(&full), None, Some(&s3_all), "s3:GetObject", denied(BUCKET_POLICY)),
        ("public read, the identity policy silent", Some(&full), Some(&public_read), Some(&silent), "s3:GetObject", denied(USER_POLICY)),
        ("an account principal grants with the identity policy", None, Some(&lab_account), Some(&s3_all), "s3:DeleteBucket", Verdict::Allow),
        ("an account principal, identity silent", None, Some(&lab_account), Some(&silent), "s3:GetObject", denied(USER_POLICY)),
        ("the identity policy's Deny", Some(&full), Some(&public_read), Some(&deny_all), "s3:GetObject", denied("user-policy:No")),
        ("the endpoint policy must allow too", Some(&only_mine), Some(&public_read), Some(&s3_all), "s3:GetObject", denied(ENDPOINT_POLICY)),
        ("no identity policy at all", None, Some(&public_read), None, "s3:GetObject", denied(USER_POLICY)),
    ];
    for (name, endpoint, bucket, identity, action, want) in rows {
        assert_eq!(decide(endpoint, bucket, identity, action), want, "{name}");
    }
    // Within the account, the bucket's public read alone grants, and the identity policy alone.
    let same = |bucket, identity| {
        S3Policies { endpoint: None, bucket, identity, cross_account: false }.decide(&req(
            Some(ADMIN),
            "s3:GetObject",
            RPM,
            NO_KEYS,
        ))
    };
    assert_eq!(same(Some(&public_read), Some(&silent)), Verdict::Allow);
    assert_eq!(same(None, Some(&s3_all)), Verdict::Allow);
}

#[test]
fn full_access_is_valid() {
    let full = Policy::full_access();
    assert_eq!(full.to_json(), FULL_ACCESS);
    assert_eq!(full.version(), Some("2008-10-17"));
    assert_eq!(full.kind(), Endpoint);
    assert_eq!(full.statements().len(), 1);
    // Unrestricted, the document allows EC2 actions too; through an S3 endpoint they do nothing.
    let ec2 = req(Some(DEV), "ec2:CreateVpc", "*", NO_KEYS);
    assert_eq!(full.evaluate(&ec2), allow(None));
    assert_eq!(full.for_service("s3").evaluate(&ec2), Decision::Implicit);
}

#[test]
fn guide_policies_parse_with_their_metadata() {
    let vpce = p(GUIDE_BUCKET_SPECIFIC_VPCE, Bucket);
    assert_eq!(vpce.id(), Some("Policy1415115909152"));
    assert_eq!(vpce.version(), Some("2012-10-17"));
    assert_eq!(vpce.to_json(), GUIDE_BUCKET_SPECIFIC_VPCE);
    let st = &vpce.statements()[0];
    assert_eq!(st.effect, Effect::Deny);
    assert_eq!(st.conditions[0].operator.base, BaseOperator::StringNotEquals);
    assert_eq!(st.conditions[0].values, ["vpce-1a2b3c4d"]);
    for (text, kind) in [
        (GUIDE_BUCKET_SPECIFIC_VPC, Bucket),
        (GUIDE_ENDPOINT_SPECIFIC_BUCKET, Endpoint),
        (GUIDE_ENDPOINT_AMI_REPOS, Endpoint),
        (GUIDE_BUCKET_SPECIFIC_VPCE, Endpoint),
    ] {
        p(text, kind);
        // Resource policies are not identity policies.
        assert!(Policy::parse(text, Identity).is_err());
    }
}

#[test]
fn for_service_drops_and_trims() {
    let mixed = p(
        r#"{"Statement":[
            {"Sid":"Ec2","Effect":"Allow","Principal":"*","Action":"ec2:*","Resource":"*"},
            {"Sid":"Mixed","Effect":"Allow","Principal":"*","Action":["ec2:*","s3:GetObject"],"Resource":"*"},
            {"Sid":"NotS3","Effect":"Deny","Principal":"*","NotAction":"s3:*","Resource":"*"},
            {"Sid":"NotEc2","Effect":"Deny","Principal":"*","NotAction":"ec2:*","Resource":"arn:aws:s3:::x/*"}]}"#,
        Endpoint,
    );
    let s3 = mixed.for_service("s3");
    assert_eq!(s3.service(), Some("s3"));
    let kept: Vec<_> = s3.statements().iter().map(|s| (s.sid.as_deref(), s.index)).collect();
    assert_eq!(kept, [(Some("Mixed"), 1), (Some("NotEc2"), 3)]);
    assert_eq!(s3.statements()[0].action, Scope::Is(vec!["s3:GetObject".to_string()]));
    // The original denies EC2 actions through NotAction; restricted to s3 nothing about EC2 holds.
    let ec2 = req(None, "ec2:RunInstances", "*", NO_KEYS);
    assert_eq!(mixed.evaluate(&ec2), deny(Some("NotS3"), 2));
    assert_eq!(s3.evaluate(&ec2), Decision::Implicit);
    // For S3 requests the decision is unchanged, and Deny indexes refer to the document.
    for (action, resource) in [("s3:GetObject", OBJ), ("s3:PutObject", "arn:aws:s3:::x/y")] {
        let r = req(None, action, resource, NO_KEYS);
        assert_eq!(s3.evaluate(&r), mixed.evaluate(&r), "{action}");
    }
    assert_eq!(
        s3.evaluate(&req(None, "s3:PutObject", "arn:aws:s3:::x/y", NO_KEYS)),
        deny(Some("NotEc2"), 3)
    );
}

#[test]
fn wildcard_examples() {
    assert!(matches_wildcard("s3:Get*", "s3:GetObject", false));
    assert!(matches_wildcard("s3:get*", "S3:GETOBJECT", true));
    assert!(!matches_wildcard("s3:get*", "s3:GetObject", false));
    assert!(matches_wildcard("*", "", false));
    assert!(matches_wildcard("a*b*c", "aXbYbZc", false));
    assert!(!matches_wildcard("a?c", "ac", false));
    assert!(matches_wildcard(
        "packages.*.amazonaws.com/*",
        "packages.us-east-1.amazonaws.com/x",
        false
    ));
    assert!(!matches_wildcard("", "a", false));
}

/// Expected validation messages.
#[rustfmt::skip]
#[test]
fn validation_messages() {
    let st = |body: &str| format!(r#"{{"Statement":[{body}]}}"#);
    let ok = r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}"#;
    let cases: Vec<(String, PolicyKind, &str)> = vec![
        ("[]".into(), Bucket, "the policy must be a JSON object"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},"Foo":1}"#.into(), Bucket, r#"unknown policy element "Foo""#),
        (r#"{"Version":"2010-01-01","Statement":[]}"#.into(), Bucket, r#"Version must be "2008-10-17" or "2012-10-17""#),
        (r#"{"Id":5,"Statement":[]}"#.into(), Bucket, "Id must be a string"),
        (r#"{"Version":"2012-10-17"}"#.into(), Bucket, "the policy has no Statement"),
        (r#"{"Statement":[]}"#.into(), Bucket, "Statement must be an object or a non-empty list"),
        (r#"{"Statement":"Allow"}"#.into(), Bucket, "Statement must be an object or a non-empty list"),
        (st(&format!("{ok}, 7")), Bucket, "statement 1: a statement must be a JSON object"),
        (st(r#"{"Effect":"Allow","Principal":"*","Actions":"s3:*","Resource":"*"}"#), Bucket, r#"statement 0: unknown statement element "Actions""#),
        (st(r#"{"Sid":5,"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}"#), Bucket, "statement 0: Sid must be a string"),
        (st(r#"{"Sid":"A","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},{"Sid":"A","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}"#), Bucket,
            r#"statement 1 (Sid "A"): duplicate Sid: statement ids must be unique within a policy"#),
        (st(&format!(r#"{ok},{ok},{{"Sid":"X","Effect":"allow","Principal":"*","Action":"s3:*","Resource":"*"}}"#)), Bucket,
            r#"statement 2 (Sid "X"): Effect must be "Allow" or "Deny""#),
        (st(r#"{"Principal":"*","Action":"s3:*","Resource":"*"}"#), Bucket, r#"statement 0: Effect must be "Allow" or "Deny""#),
        (st(r#"{"Effect":"Allow","Principal":"*","Resource":"*"}"#), Bucket, "statement 0: Action or NotAction is required"),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","NotAction":"s3:Get*","Resource":"*"}"#), Bucket, "statement 0: Action and NotAction cannot both be present"),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*"}"#), Bucket, "statement 0: Resource or NotResource is required"),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","NotResource":"*"}"#), Bucket, "statement 0: Resource and NotResource cannot both be present"),
        (st(r#"{"Sid":"NoWho","Effect":"Allow","Action":"s3:*","Resource":"*"}"#), Bucket, r#"statement 0 (Sid "NoWho"): Principal or NotPrincipal is required in bucket policies"#),
        (st(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#), Endpoint, "statement 0: Principal or NotPrincipal is required in endpoint policies"),
        (st(ok), Identity, "statement 0: Principal is not allowed in an identity policy"),
        (st(r#"{"Effect":"Allow","NotPrincipal":"*","Action":"s3:*","Resource":"*"}"#), Identity, "statement 0: NotPrincipal is not allowed in an identity policy"),
        (st(r#"{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"s3:*","Resource":"*"}"#), Bucket, "statement 0: Principal and NotPrincipal cannot both be present"),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":["s3:GetObject",5],"Resource":"*"}"#), Bucket, "statement 0: Action[1] must be a string, not a number"),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":[],"Resource":"*"}"#), Bucket, "statement 0: Action must be a string or a non-empty list of strings"),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":{"s3":"*"},"Resource":"*"}"#), Bucket, "statement 0: Action must be a string or a non-empty list of strings"),
        (st(r#"{"Effect":"Allow","Principal":"*","NotAction":"GetObject","Resource":"*"}"#), Bucket, r#"statement 0: NotAction "GetObject" must be "*" or of the form service:action"#),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:Get:Object","Resource":"*"}"#), Bucket, r#"statement 0: Action "s3:Get:Object" must be "*" or of the form service:action"#),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"my_secure_bucket"}"#), Bucket, r#"statement 0: Resource "my_secure_bucket" must be "*" or an ARN (arn:partition:service:region:account:resource)"#),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":[null]}"#), Bucket, "statement 0: Resource[0] must be a string, not null"),
        (st(r#"{"Effect":"Allow","Principal":"someone","Action":"s3:*","Resource":"*"}"#), Bucket, r#"statement 0: Principal must be "*" or an object mapping AWS, Service, Federated or CanonicalUser to principals"#),
        (st(r#"{"Effect":"Allow","Principal":{"Users":"bob"},"Action":"s3:*","Resource":"*"}"#), Bucket, r#"statement 0: Principal must be "*" or an object mapping AWS, Service, Federated or CanonicalUser to principals"#),
        (st(r#"{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:*","Resource":"*"}"#), Bucket, r#"statement 0: Principal AWS principal "bob" must be "*", a 12-digit account id or an ARN"#),
        (st(r#"{"Effect":"Allow","Principal":{"AWS":["123456789012",1]},"Action":"s3:*","Resource":"*"}"#), Bucket, "statement 0: Principal.AWS[1] must be a string, not a number"),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":[]}"#), Bucket, "statement 0: Condition must be an object mapping operators to blocks of condition keys"),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEqualz":{"aws:sourceVpce":"v"}}}"#), Bucket, r#"statement 0: unknown condition operator "StringEqualz""#),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"NullIfExists":{"aws:sourceVpce":"true"}}}"#), Bucket, r#"statement 0: unknown condition operator "NullIfExists""#),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"ForSomeValues:StringEquals":{"aws:sourceVpce":"v"}}}"#), Bucket, r#"statement 0: unknown condition operator "ForSomeValues:StringEquals""#),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEquals":"aws:sourceVpce"}}"#), Bucket, "statement 0: Condition StringEquals: the block must be a non-empty object mapping condition keys to values"),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"sourceVpce":"v"}}}"#), Bucket, r#"statement 0: Condition StringEquals: key "sourceVpce" must be of the form service:name"#),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:sourceVpce":null}}}"#), Bucket, "statement 0: Condition StringEquals aws:sourceVpce: values must be a string, boolean or number, or a non-empty list of them"),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}"#), Bucket, r#"statement 0: Condition IpAddress aws:SourceIp: "10.0.0.0/33" is not an IP address or CIDR"#),
        (st(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}"#), Bucket, r#"statement 0: Condition Bool aws:SecureTransport: "yes" is not "true" or "false""#),
    ];
    for (text, kind, want) in &cases {
        match Policy::parse(text, *kind) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => assert_eq!(e.to_string(), *want, "{text}"),
        }
    }
    let e = Policy::parse("{", Bucket).unwrap_err();
    assert!(matches!(e, PolicyError::Json(_)) && e.to_string().starts_with("not JSON: "), "{e}");
    let e = Policy::parse(&st(r#"{"Sid":"X","Effect":"Permit","Principal":"*","Action":"s3:*","Resource":"*"}"#), Bucket).unwrap_err();
    assert_eq!(e, PolicyError::Statement { index: 0, sid: Some("X".into()), problem: StatementError::Effect });
}

#[test]
fn accepted_variants() {
    for text in [
        r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false}}}}"#,
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["*"],"Service":["s3.amazonaws.com"]},"Action":"*","Resource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"ForAllValues:StringNotLikeIfExists":{"s3:prefix":["a*",1]}}}}"#,
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"NotIpAddressIfExists":{"aws:SourceIp":["10.0.0.1","2001:db8::/32"]}}}}"#,
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{}}}"#,
    ] {
        p(text, Bucket);
    }
}

/// IAM "Policy variables": substituted in Resource and in string and ARN condition values under
/// Version 2012-10-17 only; a variable without a value matches nothing.
#[test]
fn policy_variables() {
    const HOME: &str = r#"{"Version":"2012-10-17","Statement":{"Sid":"Home","Effect":"Allow",
        "Action":"s3:GetObject","Resource":"arn:aws:s3:::var-bucket/${aws:username}/*"}}"#;
    const LIMITED: &str = "arn:aws:iam::123456789012:user/limited";
    let as_limited: Keys = &[("aws:username", &["limited"])];
    let home = p(HOME, Identity);
    let get = |key: &'static str, keys| req(Some(LIMITED), "s3:GetObject", key, keys);
    assert_eq!(
        home.evaluate(&get("arn:aws:s3:::var-bucket/limited/a.txt", as_limited)),
        allow(Some("Home"))
    );
    assert_eq!(
        home.evaluate(&get("arn:aws:s3:::var-bucket/${aws:username}/a.txt", as_limited)),
        Decision::Implicit
    );
    assert_eq!(
        home.evaluate(&get("arn:aws:s3:::var-bucket/admin/a.txt", as_limited)),
        Decision::Implicit
    );
    // No aws:username (anonymous): "any attempt to match it fails".
    assert_eq!(
        home.evaluate(&get("arn:aws:s3:::var-bucket/limited/a.txt", NO_KEYS)),
        Decision::Implicit
    );
    // Without Version 2012-10-17 the variable is a literal string.
    let old = p(&HOME.replace(r#""Version":"2012-10-17","#, ""), Identity);
    assert_eq!(
        old.evaluate(&get("arn:aws:s3:::var-bucket/limited/a.txt", as_limited)),
        Decision::Implicit
    );
    assert_eq!(
        old.evaluate(&get("arn:aws:s3:::var-bucket/${aws:username}/a.txt", as_limited)),
        allow(Some("Home"))
    );
    let older = p(&HOME.replace("2012-10-17", "2008-10-17"), Identity);
    assert_eq!(
        older.evaluate(&get("arn:aws:s3:::var-bucket/limited/a.txt", as_limited)),
        Decision::Implicit
    );

    // A bucket policy's Deny on the caller's own folder.
    let own = p(
        r#"{"Version":"2012-10-17","Statement":{"Sid":"NoOwnFolder","Effect":"Deny",
        "Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#,
        Bucket,
    );
    let admin: Keys = &[("aws:username", &["admin"])];
    assert_eq!(
        own.evaluate(&req(Some(ADMIN), "s3:GetObject", "arn:aws:s3:::b/admin/secret.txt", admin)),
        deny(Some("NoOwnFolder"), 0)
    );
    assert_eq!(
        own.evaluate(&req(Some(ADMIN), "s3:GetObject", "arn:aws:s3:::b/other/secret.txt", admin)),
        Decision::Implicit
    );
    // NotResource with a variable that has no value: the statement does not apply.
    let not = p(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*",
        "Action":"s3:*","NotResource":"arn:aws:s3:::b/${aws:username}/*"}}"#,
        Bucket,
    );
    assert_eq!(
        not.evaluate(&req(None, "s3:GetObject", "arn:aws:s3:::b/x/y", NO_KEYS)),
        Decision::Implicit
    );
    assert_eq!(
        not.evaluate(&req(None, "s3:GetObject", "arn:aws:s3:::b/x/y", admin)),
        deny(None, 0)
    );

    // ${*}, ${?} and ${$} are literal characters, never wildcards; a default for an absent key.
    let special = p(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject",
        "Resource":["arn:aws:s3:::b/${*}x${?}${$}", "arn:aws:s3:::b/${aws:userid, 'anonymous'}/*"]}}"#,
        Identity,
    );
    let r = |key| req(None, "s3:GetObject", key, NO_KEYS);
    assert_eq!(special.evaluate(&r("arn:aws:s3:::b/*x?$")), allow(None));
    assert_eq!(special.evaluate(&r("arn:aws:s3:::b/yxz$")), Decision::Implicit);
    assert_eq!(special.evaluate(&r("arn:aws:s3:::b/anonymous/f")), allow(None));

    // In conditions: string and ARN operators only.
    let prefix = p(
        r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Own","Effect":"Allow","Action":"s3:ListBucket","Resource":"*",
         "Condition":{"StringLike":{"s3:prefix":"${aws:username}/*"}}},
        {"Sid":"Me","Effect":"Deny","Action":"s3:ListBucket","Resource":"*",
         "Condition":{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/${aws:username}"}}}]}"#,
        Identity,
    );
    let list = |keys| req(Some(LIMITED), "s3:ListBucket", "arn:aws:s3:::b", keys);
    let mine: Keys = &[
        ("aws:username", &["limited"]),
        ("s3:prefix", &["limited/x"]),
        ("aws:PrincipalArn", &[LIMITED]),
    ];
    let other: Keys = &[
        ("aws:username", &["limited"]),
        ("s3:prefix", &["admin/x"]),
        ("aws:PrincipalArn", &[LIMITED]),
    ];
    let spoofed: Keys = &[
        ("aws:username", &["limited"]),
        ("s3:prefix", &["limited/x"]),
        ("aws:PrincipalArn", &[ADMIN]),
    ];
    // No aws:username: the negated condition does not hold either (the statement is invalid).
    let nobody: Keys = &[("s3:prefix", &["limited/x"]), ("aws:PrincipalArn", &[LIMITED])];
    assert_eq!(prefix.evaluate(&list(mine)), allow(Some("Own")));
    assert_eq!(prefix.evaluate(&list(other)), Decision::Implicit);
    assert_eq!(prefix.evaluate(&list(spoofed)), deny(Some("Me"), 1));
    assert_eq!(prefix.evaluate(&list(nobody)), Decision::Implicit);
}

/// Numeric and Date operators (and their IfExists forms) parse and compare; dates are ISO 8601
/// or epoch seconds.
#[test]
fn numeric_and_date_operators() {
    let cond = |c: &str| {
        p(
            &format!(
                r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":"*",
            "Action":"s3:*","Resource":"*","Condition":{c}}}}}"#
            ),
            Bucket,
        )
    };
    let holds = |policy: &Policy, keys: &[(&str, &[&str])]| {
        let r = RequestContext {
            principal: None,
            action: "s3:ListBucket",
            resource: "arn:aws:s3:::b",
            keys,
        };
        policy.evaluate(&r) == allow(None)
    };
    let max10 = cond(r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#);
    assert!(holds(&max10, &[("s3:max-keys", &["10"])]));
    assert!(holds(&max10, &[("s3:max-keys", &["2.5"])]));
    assert!(!holds(&max10, &[("s3:max-keys", &["11"])]));
    assert!(!holds(&max10, &[("s3:max-keys", &["ten"])]));
    assert!(!holds(&max10, NO_KEYS));
    assert!(holds(&cond(r#"{"NumericLessThanEqualsIfExists":{"s3:max-keys":10}}"#), NO_KEYS));
    let ne = cond(r#"{"NumericNotEquals":{"s3:max-keys":["1","2"]}}"#);
    assert!(holds(&ne, &[("s3:max-keys", &["3"])]) && !holds(&ne, &[("s3:max-keys", &["2"])]));
    assert!(holds(&ne, NO_KEYS), "a negated operator holds for an absent key");
    for (op, at, want) in [
        ("NumericEquals", "5", true),
        ("NumericLessThan", "4", true),
        ("NumericLessThan", "5", false),
        ("NumericGreaterThan", "6", true),
        ("NumericGreaterThanEquals", "5", true),
        ("NumericGreaterThanEquals", "4.9", false),
    ] {
        let c = cond(&format!(r#"{{"{op}":{{"s3:max-keys":"5"}}}}"#));
        assert_eq!(holds(&c, &[("s3:max-keys", &[at])]), want, "{op} {at}");
    }
    const NOW: Keys =
        &[("aws:CurrentTime", &["2024-05-01T10:00:00Z"]), ("aws:EpochTime", &["1714557600"])];
    for (c, want) in [
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}"#, true),
        (r#"{"DateLessThan":{"aws:CurrentTime":"2024-05-01"}}"#, false),
        (r#"{"DateEquals":{"aws:CurrentTime":"2024-05-01T12:00:00+02:00"}}"#, true),
        (r#"{"DateNotEquals":{"aws:CurrentTime":"2024-05-01T10:00:00.000Z"}}"#, false),
        (r#"{"DateLessThanEquals":{"aws:CurrentTime":"1714557600"}}"#, true),
        (r#"{"DateGreaterThanEquals":{"aws:EpochTime":"2024-05-01T10:00:01Z"}}"#, false),
        (r#"{"DateLessThan":{"aws:EpochTime":"2024-05-01T10:00:01Z"}}"#, true),
        (r#"{"DateGreaterThanIfExists":{"aws:TokenIssueTime":"2030-01-01"}}"#, true),
        (r#"{"BinaryEquals":{"s3:x-amz-acl":"cHJpdmF0ZQ=="}}"#, false),
    ] {
        assert_eq!(holds(&cond(c), NOW), want, "{c}");
    }
    for (c, msg) in [
        (r#"{"NumericEquals":{"s3:max-keys":"ten"}}"#, r#""ten" is not a number"#),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"May 1st"}}"#,
            r#""May 1st" is not an ISO 8601 date or epoch seconds"#,
        ),
        (r#"{"DateLessThan":{"aws:CurrentTime":"2024-13-01"}}"#, "is not an ISO 8601 date"),
    ] {
        let text = format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{c}}}}}"#
        );
        let e = Policy::parse(&text, Bucket).unwrap_err().to_string();
        assert!(e.contains(msg), "{e}");
    }
}

/// PutBucketPolicy's checks and S3's own `MalformedPolicy` messages.
#[rustfmt::skip]
#[test]
fn bucket_policy_refused_with_s3_messages() {
    let users = [DEV.to_string(), ADMIN.to_string()];
    let known = KnownPrincipals { account: "123456789012", users: &users };
    let st = |body: &str| format!(r#"{{"Version":"2012-10-17","Statement":[{body}]}}"#);
    let one = |principal: &str, action: &str, resource: &str, cond: &str| {
        st(&format!(r#"{{"Effect":"Allow","Principal":{principal},"Action":{action},"Resource":{resource}{cond}}}"#))
    };
    let key = |k: &str| format!(r#","Condition":{{"StringEquals":{{"{k}":"x"}}}}"#);
    let cases: Vec<(String, &str)> = vec![
        (r#"{"Version":"2012-10-17"}"#.into(), "Missing required field Statement"),
        ("{".into(), "This policy contains invalid Json"),
        ("[]".into(), "Policies must be valid JSON and the first byte must be '{'"),
        (r#"{"Statement":[]}"#.into(), "Could not parse the policy: Statement is empty!"),
        (r#"{"Version":"2012-10-18","Statement":[]}"#.into(), "The policy must contain a valid version string"),
        (st(r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#), "Missing required field Principal"),
        (st(r#"{"Effect":"allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#), "Invalid effect: allow"),
        (st(r#"{"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#), "Missing required field Effect"),
        (st(r#"{"Effect":"Allow","Principal":"*","Resource":"arn:aws:s3:::b/*"}"#), "Missing required field Action"),
        (one(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::other/*""#, ""), "Policy has invalid resource"),
        (one(r#""*""#, r#""s3:GetObject""#, r#""*""#, ""), "Policy has invalid resource"),
        (one(r#""*""#, r#""s3:GetObject""#, r#""b/*""#, ""), "Policy has invalid resource"),
        (one(r#"{"AWS":"bogus"}"#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, ""), "Invalid principal in policy"),
        (one(r#""someone""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, ""), "Invalid principal in policy"),
        (one(r#"{"AWS":"arn:aws:iam::123456789012:user/nobody"}"#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, ""), "Invalid principal in policy"),
        (one(r#"{"AWS":"arn:aws:iam::123456789012:user/*"}"#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, ""), "Invalid principal in policy"),
        (one(r#"{"AWS":"arn:aws:iam::210987654321:user/dev*"}"#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, ""), "Invalid principal in policy"),
        (one(r#""*""#, r#""s3:GetObjects""#, r#""arn:aws:s3:::b/*""#, ""), "Policy has invalid action"),
        (one(r#""*""#, r#""ec2:DescribeVpcs""#, r#""arn:aws:s3:::b/*""#, ""), "Policy has invalid action"),
        (one(r#""*""#, r#""s3:Frob*""#, r#""arn:aws:s3:::b/*""#, ""), "Policy has invalid action"),
        (one(r#""*""#, r#""s3:ListBucket""#, r#""arn:aws:s3:::b/*""#, ""), "Action does not apply to any resource(s) in statement"),
        (one(r#""*""#, r#""s3:PutObject""#, r#""arn:aws:s3:::b""#, ""), "Action does not apply to any resource(s) in statement"),
        (one(r#""*""#, r#"["s3:GetObject","s3:ListBucket"]"#, r#""arn:aws:s3:::b/*""#, ""), "Action does not apply to any resource(s) in statement"),
        (one(r#""*""#, r#""s3:ListAllMyBuckets""#, r#"["arn:aws:s3:::b","arn:aws:s3:::b/*"]"#, ""), "Action does not apply to any resource(s) in statement"),
        (one(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, &key("aws:bogusKey")), "Policy has an invalid condition key"),
        (one(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, &key("s3:bogus")), "Policy has an invalid condition key"),
        (one(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, &key("ec2:Region")), "Policy has an invalid condition key"),
        (one(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, r#","Condition":{"IpAddress":{"aws:SourceIp":"1.2.3.4/40"}}"#), "Invalid IP address in Conditions"),
    ];
    for (text, want) in &cases {
        match parse_bucket_policy("b", text, known) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => {
                assert_eq!(e.message, *want, "{text}\n{}", e.detail);
                assert_eq!(e.to_string(), *want);
            }
        }
    }
    // The detail names the statement and what is wrong, for the log and lab files.
    let e = parse_bucket_policy("b", &cases[9].0, known).unwrap_err();
    assert!(e.detail.contains("statement 0") && e.detail.contains("other/*"), "{}", e.detail);

    for text in [
        one(r#"{"AWS":"arn:aws:iam::123456789012:user/developer"}"#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, ""),
        one(r#"{"AWS":["210987654321","arn:aws:iam::210987654321:user/other","arn:aws:iam::123456789012:root"]}"#, r#""s3:*""#, r#""arn:aws:s3:::b/*""#, ""),
        one(r#""*""#, r#""s3:Get*""#, r#""arn:aws:s3:::b/*""#, ""),
        one(r#""*""#, r#"["s3:ListBucket","s3:GetObject"]"#, r#"["arn:aws:s3:::b","arn:aws:s3:::b/*"]"#, ""),
        one(r#""*""#, r#""s3:listbucket""#, r#""arn:aws:s3:::b""#, r#","Condition":{"StringLike":{"s3:prefix":"home/*"},"NumericLessThan":{"S3:Max-Keys":"10"}}"#),
        one(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/${aws:username}/*""#, r#","Condition":{"StringNotEquals":{"AWS:SOURCEVPCE":"v","aws:PrincipalTag/team":"x","s3:ExistingObjectTag/k":"y"}}"#),
        one(r#""*""#, r#""*""#, r#""arn:aws:s3:::b*""#, r#","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01"}}"#),
        st(r#"{"Effect":"Deny","Principal":"*","NotAction":"s3:GetObject","NotResource":"arn:aws:s3:::b/public/*"}"#),
        // The User Guide's policies enforcing conditional writes and deletes.
        one(r#""*""#, r#""s3:PutObject""#, r#""arn:aws:s3:::b/*""#, r#","Condition":{"Null":{"s3:if-none-match":"true"},"Bool":{"s3:ObjectCreationOperation":"true"}}"#),
        one(r#""*""#, r#"["s3:DeleteObject","s3:DeleteObjectVersion"]"#, r#""arn:aws:s3:::b/*""#, r#","Condition":{"Null":{"s3:if-match":"false"}}"#),
    ] {
        parse_bucket_policy("b", &text, known).unwrap_or_else(|e| panic!("{e}: {}\n{text}", e.detail));
    }
    for text in [GUIDE_BUCKET_SPECIFIC_VPCE, GUIDE_BUCKET_SPECIFIC_VPC] {
        parse_bucket_policy("my_secure_bucket", text, known).unwrap();
    }
}

// ---- property tests ----

/// Exponential but obviously right: the reference for `matches_wildcard`.
fn naive_wildcard(p: &[char], v: &[char], ci: bool) -> bool {
    match p.split_first() {
        None => v.is_empty(),
        Some(('*', rest)) => (0..=v.len()).any(|i| naive_wildcard(rest, &v[i..], ci)),
        Some((&c, rest)) => match v.split_first() {
            Some((&d, vrest)) => {
                (c == '?' || eval::chars_eq(c, d, ci)) && naive_wildcard(rest, vrest, ci)
            }
            None => false,
        },
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(VOCAB).prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (prop::sample::select(ELEMENTS).prop_map(str::to_string), inner),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Element and operator names, to reach deep into the validator.
const ELEMENTS: &[&str] = &[
    "Version",
    "Id",
    "Statement",
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "AWS",
    "Service",
    "StringEquals",
    "StringNotLike",
    "ForAnyValue:StringLike",
    "ForAllValues:StringNotEquals",
    "IpAddress",
    "NotIpAddressIfExists",
    "Bool",
    "Null",
    "ArnLike",
    "aws:SourceIp",
    "aws:sourceVpce",
    "x",
];
const VOCAB: &[&str] = &[
    "*",
    "Allow",
    "Deny",
    "2012-10-17",
    "s3:*",
    "s3:GetObject",
    "ec2:Describe*",
    "arn:aws:s3:::b/*",
    "arn:aws:iam::123456789012:root",
    "123456789012",
    "10.0.0.0/8",
    "true",
    "vpce-1a2b3c4d",
    "",
];

const ACTIONS: &[&str] = &[
    "*",
    "s3:*",
    "s3:GetObject",
    "S3:get*",
    "s3:?etObject",
    "s3:Delete*",
    "ec2:*",
    "ec2:Describe*",
    "ec2:CreateVpcEndpoint",
    "*:*",
    "s?:*",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:s3:::b",
    "arn:aws:s3:::b/*",
    "arn:aws:s3:::?/*",
    "arn:aws:s3:::b/a?c",
    "arn:aws:ec2:*:*:vpc-endpoint/*",
    "arn:*:s3:::*",
];
const PRINCIPALS: &[&str] = &[
    r#""*""#,
    r#"{"AWS":"*"}"#,
    r#"{"AWS":"123456789012"}"#,
    r#"{"AWS":"arn:aws:iam::123456789012:root"}"#,
    r#"{"AWS":["arn:aws:iam::123456789012:user/developer","999999999999"]}"#,
    r#"{"AWS":["arn:aws:iam::123456789012:user/developer","arn:aws:iam::123456789012:root"]}"#,
    r#"{"Service":"ec2.amazonaws.com"}"#,
];
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "StringEqualsIfExists",
    "StringNotEqualsIfExists",
    "ForAnyValue:StringLike",
    "ForAllValues:StringNotEquals",
    "ForAnyValue:StringNotLikeIfExists",
    "ForAllValues:ArnLike",
];
const KEYS: &[&str] = &["aws:sourceVpce", "AWS:SourceVpc", "s3:prefix", "aws:PrincipalArn"];
const VALUES: &[&str] = &[
    "vpce-1a2b3c4d",
    "vpc-111bbb22",
    "home/*",
    "home/a",
    "",
    "*",
    "arn:aws:iam::123456789012:*",
    "arn:aws:iam::123456789012:user/developer",
    "VPCE-1A2B3C4D",
];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(list)
}

fn arb_strings(list: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        pick(list).prop_map(|s| json!(s)),
        prop::collection::vec(pick(list), 1..3).prop_map(|v| json!(v)),
    ]
}

fn arb_condition() -> impl Strategy<Value = Value> {
    prop::collection::vec((pick(OPERATORS), pick(KEYS), arb_strings(VALUES)), 0..3).prop_map(|cs| {
        let mut m = serde_json::Map::new();
        for (op, key, vals) in cs {
            m.entry(op).or_insert_with(|| json!({}))[key] = vals;
        }
        for (op, ip) in [("IpAddress", "203.0.113.0/24"), ("Bool", "true"), ("Null", "false")] {
            if m.len() % 2 == 1 && !m.contains_key(op) {
                m.insert(op.into(), json!({ "aws:SourceIp": ip }));
                break;
            }
        }
        Value::Object(m)
    })
}

fn arb_statement(kind: PolicyKind) -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        pick(PRINCIPALS),
        arb_strings(ACTIONS),
        arb_strings(RESOURCES),
        prop::option::of(arb_condition()),
        prop::option::of(pick(&["A", "B", "C"])),
    )
        .prop_map(
            move |(deny, not_action, not_resource, principal, action, resource, cond, sid)| {
                let mut st = json!({ "Effect": if deny { "Deny" } else { "Allow" } });
                if kind.requires_principal() {
                    let key = if not_action && not_resource { "NotPrincipal" } else { "Principal" };
                    st[key] = serde_json::from_str(principal).expect("vocabulary is JSON");
                }
                st[if not_action { "NotAction" } else { "Action" }] = action;
                st[if not_resource { "NotResource" } else { "Resource" }] = resource;
                if let Some(c) = cond {
                    st["Condition"] = c;
                }
                if let Some(sid) = sid {
                    st["Sid"] = json!(sid);
                }
                st
            },
        )
}

/// Statement-shaped objects with arbitrary values, to reach every statement-level check.
fn arb_statementish() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        arb_json(),
        pick(VOCAB).prop_map(|s| json!(s)),
        arb_strings(ACTIONS),
        arb_strings(RESOURCES),
        pick(PRINCIPALS).prop_map(|p| serde_json::from_str(p).expect("vocabulary is JSON")),
        arb_condition(),
    ];
    let mutated = (arb_statement(Bucket), pick(&parse::STATEMENT_ELEMENTS), value.clone())
        .prop_map(|(mut st, k, v)| {
            st[k] = v;
            st
        });
    let random = prop::collection::vec((pick(ELEMENTS), value), 0..8)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
    prop_oneof![mutated, random]
}

fn arb_policy() -> impl Strategy<Value = (PolicyKind, String)> {
    prop_oneof![Just(Identity), Just(Bucket), Just(Endpoint)].prop_flat_map(|kind| {
        prop::collection::vec(arb_statement(kind), 1..4).prop_map(move |sts| {
            (kind, json!({"Version": "2012-10-17", "Statement": sts}).to_string())
        })
    })
}

/// An owned request, borrowed into a `RequestContext` on use.
#[derive(Debug, Clone)]
struct OwnedRequest {
    principal: Option<&'static str>,
    action: &'static str,
    resource: &'static str,
    keys: Vec<(&'static str, Vec<&'static str>)>,
}

impl OwnedRequest {
    fn with<T>(&self, f: impl FnOnce(&RequestContext<'_>) -> T) -> T {
        let keys: Vec<(&str, &[&str])> =
            self.keys.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        f(&RequestContext {
            principal: self.principal,
            action: self.action,
            resource: self.resource,
            keys: &keys,
        })
    }
}

fn arb_request() -> impl Strategy<Value = OwnedRequest> {
    (
        prop::option::of(pick(&[DEV, ADMIN, MALLORY, "ec2.amazonaws.com", "not an arn"])),
        pick(&[
            "s3:GetObject",
            "s3:getobject",
            "s3:DeleteObject",
            "ec2:DescribeVpcs",
            "ec2:CreateVpcEndpoint",
            "s3",
            "",
        ]),
        pick(&[
            "*",
            "arn:aws:s3:::b",
            "arn:aws:s3:::b/a/c",
            "arn:aws:s3:::b/abc",
            "arn:aws:s3:::x/y",
            "arn:aws:ec2:us-east-1:123456789012:vpc-endpoint/vpce-1",
            "garbage",
        ]),
        prop::collection::vec(
            (
                pick(&[
                    "aws:sourcevpce",
                    "aws:SourceVpc",
                    "s3:prefix",
                    "aws:principalarn",
                    "aws:SourceIp",
                    "aws:SecureTransport",
                ]),
                prop::collection::vec(
                    pick(&[
                        "vpce-1a2b3c4d",
                        "vpc-111bbb22",
                        "home/a",
                        "203.0.113.9",
                        "10.1.1.1",
                        "true",
                        "",
                        "not-an-ip",
                        DEV,
                    ]),
                    0..3,
                ),
            ),
            0..4,
        ),
    )
        .prop_map(|(principal, action, resource, keys)| OwnedRequest {
            principal,
            action,
            resource,
            keys,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_json(v in arb_json()) {
        let text = v.to_string();
        for kind in [Identity, Bucket, Endpoint] {
            if let Ok(policy) = Policy::parse(&text, kind) {
                prop_assert!(!policy.statements().is_empty());
                prop_assert_eq!(policy.to_json(), text.as_str());
            }
        }
    }

    #[test]
    fn parse_never_panics_on_statements(sts in prop::collection::vec(arb_statementish(), 1..3), r in arb_request()) {
        let text = json!({ "Statement": sts }).to_string();
        for kind in [Identity, Bucket, Endpoint] {
            if let Ok(policy) = Policy::parse(&text, kind) {
                r.with(|req| {
                    let _ = policy.evaluate(req);
                    let _ = policy.for_service("s3").evaluate(req);
                });
            }
        }
    }

    #[test]
    fn parse_never_panics_on_text(text in ".{0,64}") {
        for kind in [Identity, Bucket, Endpoint] {
            let _ = Policy::parse(&text, kind);
        }
    }

    #[test]
    fn evaluate_never_panics_and_is_consistent((kind, text) in arb_policy(), r in arb_request()) {
        let Ok(policy) = Policy::parse(&text, kind) else {
            // Only duplicate Sids are invalid in generated policies.
            let e = Policy::parse(&text, kind).unwrap_err();
            prop_assert!(matches!(e, PolicyError::Statement { problem: StatementError::DuplicateSid, .. }), "{}", e);
            return Ok(());
        };
        let s3 = policy.for_service("s3");
        r.with(|req| {
            let d = policy.evaluate(req);
            let matching: Vec<&Statement> = policy.statements().iter().filter(|s| s.matches(req)).collect();
            match &d {
                Decision::Deny { sid, index } => {
                    let st = &policy.statements()[*index];
                    prop_assert!(st.effect == Effect::Deny && st.matches(req) && &st.sid == sid);
                }
                Decision::Allow { .. } => {
                    prop_assert!(matching.iter().all(|s| s.effect == Effect::Allow) && !matching.is_empty());
                }
                Decision::Implicit => prop_assert!(matching.is_empty()),
            }
            // Restricting to s3 changes nothing for s3 actions and denies nothing else.
            let restricted = s3.evaluate(req);
            if req.action.to_ascii_lowercase().starts_with("s3:") {
                prop_assert_eq!(restricted, d.clone());
            } else {
                prop_assert_eq!(restricted, Decision::Implicit);
            }
            // As a source of permissions, a resource policy grants by the statements that name
            // the caller (or everyone), not by those naming only its account; a NotPrincipal
            // statement grants to the callers it does not name themselves.
            let names_itself = |s: &Statement, id: &PrincipalId| match id {
                PrincipalId::Account(a) => {
                    req.principal == Some(format!("arn:aws:iam::{a}:root").as_str())
                }
                id => {
                    let one = Some(Scope::Is(Principals::Listed(vec![id.clone()])));
                    Statement { principal: one, ..s.clone() }.matches(req)
                }
            };
            let names_caller = |s: &Statement| match &s.principal {
                Some(Scope::Is(Principals::Listed(ids))) => ids.iter().any(|id| names_itself(s, id)),
                Some(Scope::Not(Principals::Listed(ids))) => !ids.iter().any(|id| names_itself(s, id)),
                _ => true,
            };
            let grants = matches!(d, Decision::Allow { .. })
                && (kind == Identity || matching.iter().any(|s| names_caller(s)));
            let verdict = decide(&[("bucket-policy", &policy, false)], req);
            prop_assert_eq!(verdict == Verdict::Allow, grants);
            Ok(())
        })?;
    }

    #[test]
    fn wildcard_equals_reference(p in "[aAbB*?]{0,8}", v in "[aAbB]{0,8}", ci in any::<bool>()) {
        let pc: Vec<char> = p.chars().collect();
        let vc: Vec<char> = v.chars().collect();
        prop_assert_eq!(matches_wildcard(&p, &v, ci), naive_wildcard(&pc, &vc, ci));
    }

    #[test]
    fn wildcard_equals_reference_unicode(p in "[aé*?ÉK\u{212a}k]{0,6}", v in "[aéÉkK\u{212a}]{0,6}", ci in any::<bool>()) {
        let pc: Vec<char> = p.chars().collect();
        let vc: Vec<char> = v.chars().collect();
        prop_assert_eq!(matches_wildcard(&p, &v, ci), naive_wildcard(&pc, &vc, ci));
    }
}
