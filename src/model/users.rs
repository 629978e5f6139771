//! IAM users of a lab: access keys for SigV4 and identity policies.
//!
//! A lab without `[[user]]` entries gets `../shared/DESIGN.md`'s two users, with AWS's two
//! documented example key pairs: `admin` (everything) and `developer` (`ec2:Describe*` and
//! `s3:*`).

use serde::{Deserialize, Serialize};

use super::{ModelError, World};
use crate::policy::{Policy, PolicyKind};

/// The account every lab lives in.
pub const ACCOUNT_ID: &str = "123456789012";

/// The account of the buckets AWS itself keeps (the Amazon Linux AMI repositories, see
/// [`super::aws_repository_buckets`]): another account than the lab's, so that the lab's users
/// reach them only as their bucket policy allows. AWS does not say which account owns them;
/// this is an example id of the AWS documentation (README, Decisions).
pub const AWS_ACCOUNT_ID: &str = "444455556666";

pub const ADMIN_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Admin","Effect":"Allow","Action":"*","Resource":"*"}]}"#;
pub const DEVELOPER_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Describe","Effect":"Allow","Action":"ec2:Describe*","Resource":"*"},{"Sid":"S3","Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub access_key: String,
    pub secret_key: String,
    /// Identity policies (JSON), all of which apply.
    pub policies: Vec<String>,
}

impl User {
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{ACCOUNT_ID}:user/{}", self.name)
    }
}

/// `../shared/DESIGN.md`'s default users.
pub fn default_users() -> Vec<User> {
    vec![
        User {
            name: "admin".into(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            policies: vec![ADMIN_POLICY.into()],
        },
        User {
            name: "developer".into(),
            access_key: "AKIAI44QH8DHBEXAMPLE".into(),
            secret_key: "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY".into(),
            policies: vec![DEVELOPER_POLICY.into()],
        },
    ]
}

impl World {
    /// The users of the lab (the defaults when the lab declares none).
    pub fn users(&self) -> Vec<User> {
        if self.users.is_empty() { default_users() } else { self.users.to_vec() }
    }

    pub fn user_by_key(&self, access_key: &str) -> Option<User> {
        self.users().into_iter().find(|u| u.access_key == access_key)
    }

    pub fn add_user(&mut self, user: User) -> Result<(), ModelError> {
        let ok_name = !user.name.is_empty()
            && user.name.len() <= 64
            && user.name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if !ok_name {
            return Err(ModelError::InvalidUserName(user.name));
        }
        if user.access_key.len() < 16 || !user.access_key.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(ModelError::InvalidAccessKey(user.access_key));
        }
        if self.users.iter().any(|u| u.name == user.name) {
            return Err(ModelError::DuplicateId(user.name));
        }
        if self.users.iter().any(|u| u.access_key == user.access_key) {
            return Err(ModelError::DuplicateId(user.access_key));
        }
        for p in &user.policies {
            Policy::parse(p, PolicyKind::Identity)
                .map_err(|e| ModelError::InvalidPolicy(e.to_string()))?;
        }
        self.users.push(user);
        Ok(())
    }
}
