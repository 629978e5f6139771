//! Who may do what, compiled from the world for the services: the lab's users (keys and
//! identity policies) and every endpoint's policy. The control plane publishes a new [`Access`]
//! with every change, so the S3 stub and the EC2 API read it without locks.
//!
//! S3 authorization (see [`crate::policy::S3Policies`]): an explicit Deny anywhere wins; through
//! an endpoint, the endpoint policy must allow (from the guide: "Your endpoint has a policy that
//! controls the use of the endpoint to access Amazon S3 resources"); then the bucket policy or
//! the caller's identity policy must allow (both, for a bucket of another account than the
//! caller's). Condition keys: `aws:sourceVpce`, `aws:sourceVpc` and `aws:VpcSourceIp` only
//! through an endpoint, `aws:SourceIp` only on the public path (from the guide: through an
//! endpoint "the condition is not matched").

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::World;
use crate::policy::{Policy, PolicyKind, RequestContext, Verdict};

/// A user as the services see it.
pub struct AccessUser {
    pub name: String,
    pub arn: String,
    pub secret: String,
    /// All the user's identity policies merged into one document.
    pub policy: Policy,
    /// The unique id (`aws:userid`), see [`user_id`].
    pub user_id: String,
}

impl AccessUser {
    /// The account of the user (of its ARN, `arn:aws:iam::<account>:user/<name>`).
    pub fn account(&self) -> &str {
        self.arn.split(':').nth(4).unwrap_or_default()
    }

    /// The condition keys of this principal (IAM, "AWS global condition context keys";
    /// absent for anonymous requests): `aws:username`, `aws:userid`, `aws:PrincipalArn`,
    /// `aws:PrincipalAccount` and `aws:PrincipalType` (`User`: the lab's principals are IAM
    /// users).
    pub fn keys(&self) -> [(&'static str, &str); 5] {
        [
            ("aws:username", self.name.as_str()),
            ("aws:userid", self.user_id.as_str()),
            ("aws:PrincipalArn", self.arn.as_str()),
            ("aws:PrincipalAccount", self.account()),
            ("aws:PrincipalType", "User"),
        ]
    }
}

/// An IAM user's unique id as `aws:userid` gives it: AWS assigns `AIDA` followed by 17
/// characters at creation ("Unique identifiers", IAM User Guide). The lab has no creation
/// step, so the 17 characters are derived from the ARN (SHA-256, base 32 in AWS's alphabet of
/// capitals and digits): stable across restarts, distinct per user, and never the name.
pub fn user_id(arn: &str) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(arn.as_bytes());
    let mut id = String::from("AIDA");
    id.extend(digest.iter().take(17).map(|b| ALPHABET[(b % 32) as usize] as char));
    id
}

/// An endpoint's policy in effect, with the one it replaced while a propagation delay runs.
struct EndpointPolicy {
    current: Arc<Policy>,
    previous: Option<(Arc<Policy>, Instant)>,
}

#[derive(Default)]
pub struct Access {
    users: HashMap<String, AccessUser>,
    endpoints: HashMap<String, EndpointPolicy>,
    /// How long a modified endpoint policy takes to reach the data plane (the guide: changes
    /// "can take a few minutes").
    delay: Duration,
    /// VPCs whose resolver answers (`enableDnsSupport`).
    dns_enabled: std::collections::HashSet<String>,
}

impl Access {
    /// Compiles the world. `old` (the previous access) keeps endpoint policies that changed in
    /// effect until `delay` (the lab's `policy_propagation_delay`) has passed.
    pub fn from_world(
        world: &World,
        delay: Duration,
        old: Option<&Access>,
        now: Instant,
    ) -> Access {
        let mut users = HashMap::new();
        for u in world.users() {
            let policy = merge(&u.policies);
            let arn = u.arn();
            let user_id = user_id(&arn);
            users.insert(
                u.access_key.clone(),
                AccessUser { name: u.name, arn, secret: u.secret_key, policy, user_id },
            );
        }
        let mut endpoints = HashMap::new();
        for e in &world.endpoints {
            // No policy: the default, full access. A stored one that no longer parses (it was
            // validated when stored) allows nothing rather than everything.
            let current = Arc::new(match e.policy.as_deref() {
                None => Policy::full_access(),
                Some(p) => Policy::parse(p, PolicyKind::Endpoint).unwrap_or_else(|err| {
                    tracing::warn!(endpoint = %e.id, error = %err, "stored endpoint policy does not parse: denying all");
                    Policy::deny_all(PolicyKind::Endpoint)
                }),
            });
            let previous = old.and_then(|o| o.endpoints.get(&e.id)).and_then(|prev| {
                // Unchanged by this change: a switch still pending keeps the time of the
                // modification that started it (a rebuild for any other change must not
                // restart the guide's "few minutes").
                if prev.current.to_json() == current.to_json() {
                    return prev.previous.clone();
                }
                let before = prev.in_effect(now, old.map_or(Duration::ZERO, |o| o.delay));
                (before.to_json() != current.to_json() && !delay.is_zero()).then_some((before, now))
            });
            endpoints.insert(e.id.clone(), EndpointPolicy { current, previous });
        }
        let dns_enabled =
            world.vpcs.iter().filter(|v| v.enable_dns_support).map(|v| v.id.clone()).collect();
        Access { users, endpoints, delay, dns_enabled }
    }

    /// Whether the resolver of this VPC answers. From the guide: "You must enable DNS resolution
    /// in your VPC".
    pub fn dns_enabled(&self, vpc: &str) -> bool {
        self.dns_enabled.contains(vpc)
    }

    pub fn secret_for(&self, access_key: &str) -> Option<String> {
        self.users.get(access_key).map(|u| u.secret.clone())
    }

    pub fn user(&self, access_key: &str) -> Option<&AccessUser> {
        self.users.get(access_key)
    }

    /// The ARNs of the lab's users (the principals a bucket policy may name in its account).
    pub fn user_arns(&self) -> Vec<String> {
        self.users.values().map(|u| u.arn.clone()).collect()
    }

    /// The policy of an endpoint as the data plane applies it now.
    pub fn endpoint_policy(&self, vpce: &str, now: Instant) -> Arc<Policy> {
        match self.endpoints.get(vpce) {
            Some(e) => e.in_effect(now, self.delay),
            None => Arc::new(Policy::full_access()),
        }
    }

    /// An EC2 action by a user: only the identity policy decides (EC2 has no resource policies
    /// here). From the guide: "We currently do not support resource-level permissions for any
    /// of the ec2:*VpcEndpoint* API actions, or for the ec2:DescribePrefixLists action", so the
    /// caller passes resource "*" for those.
    pub fn ec2_allowed(&self, user: &AccessUser, action: &str, resource: &str) -> bool {
        let principal = user.keys();
        let values: Vec<[&str; 1]> = principal.iter().map(|(_, v)| [*v]).collect();
        let keys: Vec<(&str, &[&str])> =
            principal.iter().zip(&values).map(|((k, _), v)| (*k, v.as_slice())).collect();
        let req = RequestContext { principal: Some(&user.arn), action, resource, keys: &keys };
        let policies = [(crate::policy::USER_POLICY, &user.policy, false)];
        matches!(crate::policy::decide(&policies, &req), Verdict::Allow)
    }
}

impl EndpointPolicy {
    fn in_effect(&self, now: Instant, delay: Duration) -> Arc<Policy> {
        match &self.previous {
            Some((prev, since)) if now.saturating_duration_since(*since) < delay => prev.clone(),
            _ => self.current.clone(),
        }
    }
}

/// One identity policy from several: their statements together (Sids made unique). A user
/// without policies is allowed nothing ("By default, users and roles don't have permission",
/// IAM guide); so is one whose policies no longer parse (they were validated when stored):
/// never full access.
fn merge(policies: &[String]) -> Policy {
    let deny_all = || Policy::deny_all(PolicyKind::Identity);
    match policies {
        [] => return deny_all(),
        [one] => return Policy::parse(one, PolicyKind::Identity).unwrap_or_else(|_| deny_all()),
        _ => {}
    }
    let mut statements = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in policies {
        let Ok(serde_json::Value::Object(doc)) = serde_json::from_str::<serde_json::Value>(p)
        else {
            return deny_all();
        };
        let list = match doc.get("Statement") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(s @ serde_json::Value::Object(_)) => vec![s.clone()],
            _ => return deny_all(),
        };
        for mut st in list {
            if let Some(sid) = st.get("Sid").and_then(|s| s.as_str()).map(str::to_string) {
                let mut unique = sid.clone();
                let mut n = 2;
                while !seen.insert(unique.clone()) {
                    unique = format!("{sid}{n}");
                    n += 1;
                }
                st["Sid"] = serde_json::Value::String(unique);
            }
            statements.push(st);
        }
    }
    let doc = serde_json::json!({ "Version": "2012-10-17", "Statement": statements });
    Policy::parse(&doc.to_string(), PolicyKind::Identity).unwrap_or_else(|_| deny_all())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::file::{DEFAULT_LAB, parse};

    const ONLY_SECURE: &str = r#"{"Statement":[{"Sid":"Access-to-specific-bucket-only","Principal":"*","Action":["s3:GetObject","s3:PutObject"],"Effect":"Allow","Resource":["arn:aws:s3:::my-secure-bucket","arn:aws:s3:::my-secure-bucket/*"]}]}"#;

    const ONLY_OPEN: &str = r#"{"Statement":[{"Principal":"*","Action":"s3:GetObject","Effect":"Allow","Resource":"arn:aws:s3:::open-bucket/*"}]}"#;

    fn allows(p: &Policy, object: &str) -> bool {
        let resource = format!("arn:aws:s3:::{object}");
        let req = RequestContext {
            principal: None,
            action: "s3:GetObject",
            resource: &resource,
            keys: &[],
        };
        matches!(p.evaluate(&req), crate::policy::Decision::Allow { .. })
    }

    fn allows_open_bucket(p: &Policy) -> bool {
        allows(p, "open-bucket/hello.txt")
    }

    /// The default lab with `policy_propagation_delay = "2m"`.
    fn two_minute_lab() -> World {
        let text = DEFAULT_LAB.replacen(
            "region = \"us-east-1\"",
            "region = \"us-east-1\"\npolicy_propagation_delay = \"2m\"",
            1,
        );
        parse("t.toml", &text).unwrap()
    }

    #[test]
    fn a_user_without_policies_is_allowed_nothing() {
        // IAM: "By default, users and roles don't have permission to create or modify AWS
        // resources". A user with no policies (or policies that no longer parse) is implicitly
        // denied, never given the endpoint's full access.
        let text = format!(
            "{DEFAULT_LAB}\n[[user]]\nname = \"nobody\"\naccess_key = \"AKIANOBODY0000000001\"\n\
             secret_key = \"x\"\n"
        );
        let world = parse("t.toml", &text).unwrap();
        let access = Access::from_world(&world, Duration::ZERO, None, Instant::now());
        let nobody = access.user("AKIANOBODY0000000001").expect("the user");
        assert!(!allows(&nobody.policy, "open-bucket/hello.txt"));
        assert!(!access.ec2_allowed(nobody, "ec2:CreateVpc", "*"));
        let admin = access.user("AKIAIOSFODNN7EXAMPLE").expect("admin");
        assert!(access.ec2_allowed(admin, "ec2:CreateVpc", "*"));
        let open = r#"{"Statement":[{"Action":"s3:GetObject","Effect":"Allow","Resource":"arn:aws:s3:::open-bucket/*"}]}"#;
        let other = r#"{"Statement":[{"Action":"s3:PutObject","Effect":"Allow","Resource":"*"}]}"#;
        for bad in [vec![], vec!["not json".to_string()], vec![open.into(), "{}".into()]] {
            assert!(!allows_open_bucket(&merge(&bad)), "{bad:?}");
        }
        assert!(allows_open_bucket(&merge(&[open.into(), other.into()])));
        // A stored endpoint policy that does not parse denies rather than allows.
        let mut world = world;
        world.endpoints[0].policy = Some("{".into());
        let access = Access::from_world(&world, Duration::ZERO, None, Instant::now());
        assert!(!allows_open_bucket(&access.endpoint_policy("vpce-11bb22cc", Instant::now())));
    }

    #[test]
    fn ec2_requests_carry_the_principal_keys() {
        // aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType and aws:userid are in every
        // request of an IAM user: an Allow conditioned on them applies.
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*",
            "Condition":{"StringEquals":{"aws:PrincipalType":"User","aws:PrincipalAccount":"123456789012",
            "aws:PrincipalArn":"arn:aws:iam::123456789012:user/keyed"},"StringLike":{"aws:userid":"AIDA*"}}}]}"#;
        let text = format!(
            "{DEFAULT_LAB}\n[[user]]\nname = \"keyed\"\naccess_key = \"AKIAKEYED00000000001\"\n\
             secret_key = \"x\"\npolicies = ['''{policy}''']\n"
        );
        let world = parse("t.toml", &text).unwrap();
        let access = Access::from_world(&world, Duration::ZERO, None, Instant::now());
        let keyed = access.user("AKIAKEYED00000000001").expect("the user");
        assert!(access.ec2_allowed(keyed, "ec2:CreateVpc", "*"));
        assert_eq!(keyed.user_id.len(), 21);
        assert_eq!(keyed.user_id, user_id(&keyed.arn), "stable");
        assert_ne!(keyed.user_id, user_id("arn:aws:iam::123456789012:user/other"));
    }

    #[test]
    fn a_modified_endpoint_policy_takes_effect_after_the_propagation_delay() {
        // From the guide: policy changes "can take a few minutes" to take effect.
        let mut world = two_minute_lab();
        assert_eq!(world.policy_propagation_delay_secs, 120);
        let delay = Duration::from_secs(world.policy_propagation_delay_secs);
        let t0 = Instant::now();
        let before = Access::from_world(&world, delay, None, t0);
        assert!(allows_open_bucket(&before.endpoint_policy("vpce-11bb22cc", t0)));
        world.endpoints[0].policy = Some(ONLY_SECURE.into());
        let after = Access::from_world(&world, delay, Some(&before), t0);
        assert!(allows_open_bucket(
            &after.endpoint_policy("vpce-11bb22cc", t0 + Duration::from_secs(119))
        ));
        assert!(!allows_open_bucket(
            &after.endpoint_policy("vpce-11bb22cc", t0 + Duration::from_secs(121))
        ));
        // Without a delay, at once.
        let now = Access::from_world(&world, Duration::ZERO, Some(&before), t0);
        assert!(!allows_open_bucket(&now.endpoint_policy("vpce-11bb22cc", t0)));
    }

    #[test]
    fn another_change_does_not_restart_a_pending_policy_delay() {
        // The guide: "if you do modify a policy, it can take a few minutes for the changes to
        // take effect". The few minutes run from the modification: any other change meanwhile
        // (which rebuilds the access state) must not push the switch back.
        let mut world = two_minute_lab();
        let delay = Duration::from_secs(120);
        let t0 = Instant::now();
        let first = Access::from_world(&world, delay, None, t0);
        world.endpoints[0].policy = Some(ONLY_SECURE.into());
        let modified = Access::from_world(&world, delay, Some(&first), t0);
        // At 90 s something else changes: the control plane rebuilds the state from a world
        // whose endpoint policy is the same.
        let t90 = t0 + Duration::from_secs(90);
        let rebuilt = Access::from_world(&world, delay, Some(&modified), t90);
        let at = |s: u64| rebuilt.endpoint_policy("vpce-11bb22cc", t0 + Duration::from_secs(s));
        assert!(allows_open_bucket(&at(119)));
        assert!(!allows_open_bucket(&at(121)), "the switch moved past t0 + 2 min");
        // And a rebuild after the switch keeps the new policy.
        let later =
            Access::from_world(&world, delay, Some(&rebuilt), t0 + Duration::from_secs(130));
        assert!(!allows_open_bucket(
            &later.endpoint_policy("vpce-11bb22cc", t0 + Duration::from_secs(130))
        ));
        // Modified again at 90 s, before the first switch: the policy in effect then (the
        // original full access) stays until 90 s + 2 min, then the newest one applies.
        world.endpoints[0].policy = Some(ONLY_OPEN.into());
        let again = Access::from_world(&world, delay, Some(&modified), t90);
        let at = |s: u64| again.endpoint_policy("vpce-11bb22cc", t0 + Duration::from_secs(s));
        assert!(allows(&at(200), "my-secure-bucket/a") && allows(&at(200), "open-bucket/a"));
        assert!(!allows(&at(211), "my-secure-bucket/a") && allows(&at(211), "open-bucket/a"));
    }

    #[test]
    fn bad_delay_names_the_line() {
        let text = DEFAULT_LAB.replacen(
            "region = \"us-east-1\"",
            "region = \"us-east-1\"\npolicy_propagation_delay = \"soon\"",
            1,
        );
        let err = parse("t.toml", &text).unwrap_err();
        assert_eq!(err.field, "policy_propagation_delay");
        assert_eq!(err.line, 10);
    }
}
