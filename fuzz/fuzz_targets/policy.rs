//! Arbitrary UTF-8 → `policy::Policy::parse` never panics for any `PolicyKind`; a policy that
//! parses can be evaluated, restricted to `s3`, and combined, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpcsim::policy::{Policy, PolicyKind, RequestContext, S3Policies, decide};

const KINDS: [PolicyKind; 3] = [PolicyKind::Identity, PolicyKind::Bucket, PolicyKind::Endpoint];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for kind in KINDS {
        let policy = match Policy::parse(text, kind) {
            Ok(p) => p,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        let vpce: &[&str] = &["vpce-11bb22cc"];
        let ip: &[&str] = &["10.0.1.10"];
        let prefix: &[&str] = &["a/", "b*"];
        let keys: &[(&str, &[&str])] =
            &[("aws:sourceVpce", vpce), ("aws:SourceIp", ip), ("s3:prefix", prefix)];
        let requests = [
            RequestContext {
                principal: None,
                action: "s3:GetObject",
                resource: "arn:aws:s3:::my-secure-bucket/hello.txt",
                keys,
            },
            RequestContext {
                principal: Some("arn:aws:iam::123456789012:user/developer"),
                action: "ec2:CreateVpcEndpoint",
                resource: "*",
                keys: &[],
            },
        ];
        let s3 = policy.for_service("s3");
        for req in &requests {
            let _ = policy.evaluate(req);
            let _ = s3.evaluate(req);
            let _ = decide(&[("p", &policy, true), ("s3", &s3, false)], req);
            let _ = S3Policies { endpoint: Some(&policy), bucket: Some(&s3), identity: None }
                .decide(req);
        }
        // The original text reparses to the same policy.
        assert_eq!(Policy::parse(policy.to_json(), kind).as_ref(), Ok(&policy));
    }
});
