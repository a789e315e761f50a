//! Users: people who log in, with an email, a name and a role.
//!
//! API keys are for machines; users are for people at the dashboard
//! or the CLI. Both end up as the same kind of caller with a role, so the role
//! policy is one policy. A user's password is never stored, only its Argon2
//! hash (the server hashes; this module only checks what a person typed).
//!
//! A disabled user can't log in and their sessions stop working at once; the
//! record stays, because the audit log names them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::auth::Role;
use crate::release::product::validate_text;

/// Shortest password accepted (NIST SP 800-63B asks for at least 8).
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted: Argon2 takes any length, but a megabyte of
/// password is a denial of service, not a secret.
pub const MAX_PASSWORD_LEN: usize = 256;
/// Longest email and name.
pub const MAX_EMAIL_LEN: usize = 254;

/// A user as the API shows it (never with a password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// `user_<uuid>`.
    pub id: String,
    /// Unique, lower-case; what they log in with and the actor in the audit log.
    pub email: String,
    /// Their name, for people.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
    /// When they last logged in.
    pub last_login: Option<DateTime<Utc>>,
    /// When the account was disabled; disabled users can't log in.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Failed logins since the last successful one.
    pub failed_logins: u32,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Their email: what they log in with.
    pub email: String,
    /// Their name.
    pub name: String,
    /// `admin`, `engineer` or `viewer`.
    pub role: Role,
    /// At least 8 characters.
    pub password: String,
}

impl NewUser {
    /// Checks every field; the email is returned lower-cased.
    pub fn validate(&self) -> Result<String, DomainError> {
        let email = normalize_email(&self.email)?;
        validate_person_name(&self.name)?;
        validate_password(&self.password)?;
        person_role(self.role)?;
        Ok(email)
    }
}

/// A change of a user by an admin: each field given replaces the current one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New role.
    #[serde(default)]
    pub role: Option<Role>,
    /// `true` disables the account (and ends its sessions); `false` enables it.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// New password (ends the user's sessions).
    #[serde(default)]
    pub password: Option<String>,
}

impl UserPatch {
    /// Checks the fields given.
    pub fn validate(&self) -> Result<(), DomainError> {
        if let Some(n) = &self.name {
            validate_person_name(n)?;
        }
        if let Some(p) = &self.password {
            validate_password(p)?;
        }
        if let Some(r) = self.role {
            person_role(r)?;
        }
        if self.name.is_none()
            && self.role.is_none()
            && self.disabled.is_none()
            && self.password.is_none()
        {
            return Err(DomainError::invalid(
                "body",
                "give at least one of name, role, disabled, password",
            ));
        }
        Ok(())
    }

    /// Whether the change must end the user's sessions.
    pub fn ends_sessions(&self) -> bool {
        self.password.is_some() || self.disabled == Some(true) || self.role.is_some()
    }
}

/// A person's role: `proxy` is for keys.
fn person_role(role: Role) -> Result<(), DomainError> {
    if role.is_for_people() {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "role",
            format!("`{role}` is a role for API keys of remote proxies, not for people"),
        ))
    }
}

/// Lower-cases and checks an email: one `@`, something on each side, a dot in
/// the domain, no spaces or control characters. (Deliverability is the mail
/// server's business; this only refuses what can't be an address.)
pub fn normalize_email(email: &str) -> Result<String, DomainError> {
    let e = email.trim().to_lowercase();
    let bad = |why: &str| DomainError::invalid("email", why.to_string());
    if e.is_empty() {
        return Err(bad("must not be empty"));
    }
    if e.len() > MAX_EMAIL_LEN {
        return Err(bad("must be at most 254 characters"));
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    match e.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(e)
        }
        _ => Err(bad("is not an email address (like ada@example.com)")),
    }
}

fn validate_person_name(name: &str) -> Result<(), DomainError> {
    if name.trim().is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    if name.len() > MAX_EMAIL_LEN {
        return Err(DomainError::invalid(
            "name",
            "must be at most 254 characters",
        ));
    }
    validate_text("name", name)
}

/// Checks a new password's length (counted in characters).
pub fn validate_password(p: &str) -> Result<(), DomainError> {
    let n = p.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(DomainError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if p.len() > MAX_PASSWORD_LEN {
        return Err(DomainError::invalid(
            "password",
            format!("must be at most {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    Ok(())
}

/// How long a client waits after `failures` wrong passwords in a row before the
/// next attempt is heard: nothing for the first 5, then 1 s doubling per
/// failure, at most 15 minutes. A person who mistypes never notices; a guesser
/// gets about 100 tries in the first day instead of millions.
pub fn login_delay(failures: u32) -> std::time::Duration {
    const FREE: u32 = 5;
    const MAX_SECS: u64 = 15 * 60;
    if failures < FREE {
        return std::time::Duration::ZERO;
    }
    let secs = 1u64
        .checked_shl(failures - FREE)
        .unwrap_or(MAX_SECS)
        .min(MAX_SECS);
    std::time::Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_and_patches() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
        assert!(validate_password(&"x".repeat(300)).is_err());
        assert!(UserPatch::default().validate().is_err());
        let p = UserPatch {
            role: Some(Role::Viewer),
            ..UserPatch::default()
        };
        assert!(p.validate().is_ok() && p.ends_sessions());
        let p = UserPatch {
            name: Some("Ada".into()),
            ..UserPatch::default()
        };
        assert!(!p.ends_sessions());
    }

    #[test]
    fn delays_grow_and_stop() {
        assert_eq!(login_delay(4).as_secs(), 0);
        assert_eq!(login_delay(5).as_secs(), 1);
        assert_eq!(login_delay(7).as_secs(), 4);
        assert_eq!(login_delay(40).as_secs(), 900);
        assert_eq!(login_delay(u32::MAX).as_secs(), 900);
    }
}
