//! The structural checks EC2 applies to an endpoint policy document before accepting it. The full
//! policy engine (evaluation) lives elsewhere; this only decides whether a document is
//! acceptable as an endpoint policy.

use super::ModelError;

/// The policy AWS attaches when none is given: "If you do not attach a policy when you create an
/// endpoint, we attach a default policy for you that allows full access to the service."
pub const DEFAULT_ENDPOINT_POLICY: &str = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#;

/// The longest endpoint policy EC2 accepts, in characters.
pub const MAX_ENDPOINT_POLICY_CHARS: usize = 20_480;

/// Checks an endpoint policy: at most [`MAX_ENDPOINT_POLICY_CHARS`] characters, a JSON object whose `Statement` is an object or a non-empty array
/// of statements, each with `Effect` `Allow` or `Deny`, a `Principal` (the guide: "Your policy
/// must contain a Principal element."), and an `Action` or `NotAction`.
pub fn validate_endpoint_policy(text: &str) -> Result<(), ModelError> {
    // PrivateLink quotas: "The size of an endpoint policy cannot exceed 20,480 characters,
    // including white space." EC2's code for it is not documented: InvalidPolicyDocument, as
    // for any other refused document.
    let chars = text.chars().count();
    if chars > MAX_ENDPOINT_POLICY_CHARS {
        return Err(ModelError::InvalidPolicy(format!(
            "the size of an endpoint policy cannot exceed 20,480 characters, including white \
             space (this one has {chars})"
        )));
    }
    // EC2 answers a syntax error with its position (see `PolicySyntax` in the EC2 API), line and
    // column both counted from 1: serde_json says column 0 for an empty document (nothing read
    // on the line yet), which is the first column.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(ModelError::PolicySyntax {
            line: e.line(),
            column: e.column().max(1),
            detail: e.to_string(),
        });
    }
    // The same engine that evaluates the policy validates it, so whatever is accepted is
    // understood (a policy without Principal is refused, as the guide's examples all name one).
    crate::policy::Policy::parse(text, crate::policy::PolicyKind::Endpoint)
        .map(|_| ())
        .map_err(|e| ModelError::InvalidPolicy(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guide_examples_and_default_are_valid() {
        validate_endpoint_policy(DEFAULT_ENDPOINT_POLICY).unwrap();
        let guide = r#"{"Statement":[{"Sid":"Access-to-specific-bucket-only","Principal":"*",
            "Action":["s3:GetObject","s3:PutObject"],"Effect":"Allow",
            "Resource":["arn:aws:s3:::my_secure_bucket","arn:aws:s3:::my_secure_bucket/*"]}]}"#;
        validate_endpoint_policy(guide).unwrap();
    }

    #[test]
    fn at_most_20480_characters_including_white_space() {
        let padded = |n: usize| {
            let body = DEFAULT_ENDPOINT_POLICY.strip_suffix('}').unwrap();
            format!("{body}{}}}", " ".repeat(n - DEFAULT_ENDPOINT_POLICY.len()))
        };
        validate_endpoint_policy(&padded(MAX_ENDPOINT_POLICY_CHARS)).unwrap();
        let err = validate_endpoint_policy(&padded(MAX_ENDPOINT_POLICY_CHARS + 1)).unwrap_err();
        assert!(matches!(&err, ModelError::InvalidPolicy(m) if m.contains("20,480")), "{err}");
    }

    #[test]
    fn refusals() {
        for bad in [
            "not json",
            "[]",
            r#"{"Version":"2012-10-17"}"#,
            r#"{"Statement":[]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*"}}"#,
            r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Principal":"*","Action":"*"}}"#,
        ] {
            assert!(
                matches!(
                    validate_endpoint_policy(bad),
                    Err(ModelError::InvalidPolicy(_) | ModelError::PolicySyntax { .. })
                ),
                "{bad}"
            );
        }
    }
}
