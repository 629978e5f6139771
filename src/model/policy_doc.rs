//! The structural checks EC2 applies to an endpoint policy document before accepting it. The full
//! policy engine (evaluation) lives elsewhere; this only decides whether a document is
//! acceptable as an endpoint policy.

use serde_json::Value;

use super::ModelError;

/// The policy AWS attaches when none is given: "If you do not attach a policy when you create an
/// endpoint, we attach a default policy for you that allows full access to the service."
pub const DEFAULT_ENDPOINT_POLICY: &str = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#;

/// Checks an endpoint policy: a JSON object whose `Statement` is an object or a non-empty array
/// of statements, each with `Effect` `Allow` or `Deny`, a `Principal` (the guide: "Your policy
/// must contain a Principal element."), and an `Action` or `NotAction`.
pub fn validate_endpoint_policy(text: &str) -> Result<(), ModelError> {
    let bad = |m: &str| Err(ModelError::InvalidPolicy(m.to_string()));
    let doc: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(ModelError::InvalidPolicy(format!("not JSON: {e}"))),
    };
    let Value::Object(doc) = doc else {
        return bad("the policy must be a JSON object");
    };
    if let Some(v) = doc.get("Version")
        && !matches!(v.as_str(), Some("2008-10-17" | "2012-10-17"))
    {
        return bad("Version must be \"2008-10-17\" or \"2012-10-17\"");
    }
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        Some(_) => return bad("Statement must be an object or a non-empty array"),
        None => return bad("the policy has no Statement"),
    };
    for (i, s) in statements.iter().enumerate() {
        let Value::Object(s) = s else {
            return Err(ModelError::InvalidPolicy(format!("statement {i} is not an object")));
        };
        if !matches!(s.get("Effect").and_then(Value::as_str), Some("Allow" | "Deny")) {
            return Err(ModelError::InvalidPolicy(format!(
                "statement {i}: Effect must be \"Allow\" or \"Deny\""
            )));
        }
        if !s.contains_key("Principal") && !s.contains_key("NotPrincipal") {
            return Err(ModelError::InvalidPolicy(format!(
                "statement {i} has no Principal: your policy must contain a Principal element"
            )));
        }
        if !s.contains_key("Action") && !s.contains_key("NotAction") {
            return Err(ModelError::InvalidPolicy(format!(
                "statement {i} has no Action or NotAction"
            )));
        }
    }
    Ok(())
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
                matches!(validate_endpoint_policy(bad), Err(ModelError::InvalidPolicy(_))),
                "{bad}"
            );
        }
    }
}
