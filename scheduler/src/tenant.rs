//! Tenants: the owner carried by every module and job, so data of one never reaches another.

use std::fmt;

/// A tenant name: 1–64 characters of `[a-z0-9_-]`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Tenant(String);

impl Tenant {
    /// The tenant of a single-user installation.
    pub const DEFAULT: &'static str = "default";

    pub fn new(name: &str) -> Result<Tenant, String> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Tenant(name.to_owned()))
        } else {
            Err(format!(
                "invalid tenant name {name:?}: use 1-64 characters of a-z, 0-9, '_' and '-'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant(Tenant::DEFAULT.to_owned())
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Tenant {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Tenant::new(&s)
    }
}

impl From<Tenant> for String {
    fn from(t: Tenant) -> String {
        t.0
    }
}
