//! Module ids: `blake3:<64 lowercase hex>` of a module's bytes.

use std::fmt;
use std::str::FromStr;

/// The content address of a module: the blake3 hash of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleId([u8; 32]);

impl ModuleId {
    /// The textual prefix of every id.
    pub const PREFIX: &'static str = "blake3:";

    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> ModuleId {
        ModuleId(*blake3::hash(bytes).as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_bytes(bytes: [u8; 32]) -> ModuleId {
        ModuleId(bytes)
    }

    /// The 64 hex digits without the prefix (used for blob file names).
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Whether `bytes` hash to this id: every reader of a module checks this.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        // blake3::Hash's equality is constant-time; not needed here, but free.
        blake3::hash(bytes) == blake3::Hash::from_bytes(self.0)
    }
}

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.hex())
    }
}

impl fmt::Debug for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ModuleId {
    type Err = String;

    fn from_str(s: &str) -> Result<ModuleId, String> {
        let hex = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| format!("module id {s:?} does not start with {:?}", Self::PREFIX))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "module id {s:?} must be blake3: followed by 64 lowercase hex digits"
            ));
        }
        blake3::Hash::from_hex(hex)
            .map(|h| ModuleId(*h.as_bytes()))
            .map_err(|e| format!("module id {s:?}: {e}"))
    }
}

impl serde::Serialize for ModuleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ModuleId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ModuleId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_malformed_text() {
        let id = ModuleId::of(b"hello");
        let text = id.to_string();
        assert!(text.starts_with("blake3:"));
        assert_eq!(text.len(), 7 + 64);
        assert_eq!(text.parse::<ModuleId>().unwrap(), id);
        assert!(id.matches(b"hello"));
        assert!(!id.matches(b"hellO"));
        assert!("sha256:00".parse::<ModuleId>().is_err());
        assert!("blake3:abc".parse::<ModuleId>().is_err());
        assert!(
            text.to_uppercase()
                .replace("BLAKE3", "blake3")
                .parse::<ModuleId>()
                .is_err()
        );
    }
}
