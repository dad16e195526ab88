//! Who is calling: bearer secrets on the wire, for both sides of every gRPC edge.
//!
//! A client — a user's `weft` with an API token, a worker with the cluster secret — sends
//! `authorization: Bearer SECRET` with every request ([`Bearer`], an interceptor on its channel:
//! [`authed`]). A server keeps only the secrets' blake3 digests ([`SecretHash`]) and compares the
//! digest of what it is sent ([`presented`]); a secret is never stored, logged or printed by Weft
//! after it is minted ([`Secret`]'s `Debug` hides it).

use std::fmt;
use std::str::FromStr;

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// What a minted token starts with, so that one pasted in the wrong place is recognisable.
pub const TOKEN_PREFIX: &str = "weft_";

/// A bearer secret: an API token or the cluster secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// A secret as read from a file or the environment: surrounding whitespace (a final newline)
    /// is dropped; what is left must be 16 to 512 visible ASCII characters.
    pub fn new(text: &str) -> Result<Secret, String> {
        let text = text.trim();
        if text.len() < 16 || text.len() > 512 {
            return Err(format!(
                "a secret must be 16 to 512 characters long (this one is {})",
                text.len()
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a secret must be visible ASCII characters, without spaces".into());
        }
        Ok(Secret(text.to_owned()))
    }

    /// A new random token: [`TOKEN_PREFIX`] and 32 random bytes in hex.
    pub fn mint() -> Result<Secret, String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness to mint a token: {e}"))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Secret(format!("{TOKEN_PREFIX}{hex}")))
    }

    /// The secret itself: only to show it once when minted, or to send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest a server keeps in its place.
    pub fn hash(&self) -> SecretHash {
        SecretHash(*blake3::hash(self.0.as_bytes()).as_bytes())
    }
}

/// The blake3 digest of a secret, written `blake3:HEX`: what a tenants file holds. Comparisons run
/// in constant time (blake3's `Hash` equality).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash([u8; 32]);

impl fmt::Display for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blake3:{}", blake3::Hash::from_bytes(self.0).to_hex())
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for SecretHash {
    type Err = String;

    fn from_str(text: &str) -> Result<SecretHash, String> {
        text.strip_prefix("blake3:")
            .and_then(|hex| blake3::Hash::from_hex(hex).ok())
            .map(|h| SecretHash(*h.as_bytes()))
            .ok_or_else(|| {
                format!("{text:?} is not a token hash (blake3: and 64 hex digits, as `weft tenant token` prints)")
            })
    }
}

impl SecretHash {
    /// Whether `secret` is the one this is the digest of, in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        blake3::hash(secret.as_bytes()) == blake3::Hash::from_bytes(self.0)
    }
}

/// The secret a request presents (`authorization: Bearer SECRET`), if any. `Err` for a header that
/// is there but is not a bearer secret.
pub fn presented(metadata: &MetadataMap) -> Result<Option<&str>, &'static str> {
    let Some(value) = metadata.get("authorization") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| "the authorization header is not ASCII")?;
    let secret = text
        .strip_prefix("Bearer ")
        .ok_or("the authorization header is not `Bearer TOKEN`")?;
    Ok(Some(secret.trim()))
}

/// Sends `authorization: Bearer SECRET` with every request, or nothing when there is no secret.
#[derive(Clone, Default)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(…)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Bearer {
    pub fn new(secret: Option<&Secret>) -> Bearer {
        Bearer(secret.and_then(|s| {
            let mut value = AsciiMetadataValue::try_from(format!("Bearer {}", s.expose())).ok()?;
            value.set_sensitive(true);
            Some(value)
        }))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel whose every request carries a [`Bearer`] secret: what every Weft client speaks on.
pub type AuthChannel = InterceptedService<Channel, Bearer>;

/// `channel`, sending `secret` with every request.
pub fn authed(channel: Channel, secret: Option<&Secret>) -> AuthChannel {
    InterceptedService::new(channel, Bearer::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_random_and_hash_as_written() {
        let a = Secret::mint().unwrap();
        let b = Secret::mint().unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + 64);
        let hash = a.hash();
        assert_eq!(hash.to_string().parse::<SecretHash>(), Ok(hash));
        assert!(hash.matches(a.expose()));
        assert!(!hash.matches(b.expose()));
        assert_eq!(format!("{a:?}"), "Secret(…)");
        assert!(!format!("{:?}", Bearer::new(Some(&a))).contains(a.expose()));
    }

    #[test]
    fn secrets_and_hashes_are_checked() {
        assert_eq!(
            Secret::new("  0123456789abcdef\n").unwrap().expose(),
            "0123456789abcdef"
        );
        assert!(Secret::new("short").unwrap_err().contains("16 to 512"));
        assert!(
            Secret::new("has a space inside it")
                .unwrap_err()
                .contains("visible")
        );
        assert!(
            "blake3:xyz"
                .parse::<SecretHash>()
                .unwrap_err()
                .contains("not a token hash")
        );
    }

    #[test]
    fn a_request_presents_its_bearer_secret() {
        let secret = Secret::new("0123456789abcdef").unwrap();
        let mut bearer = Bearer::new(Some(&secret));
        let request = bearer.call(tonic::Request::new(())).unwrap();
        assert_eq!(presented(request.metadata()), Ok(Some("0123456789abcdef")));
        let bare = Bearer::new(None).call(tonic::Request::new(())).unwrap();
        assert_eq!(presented(bare.metadata()), Ok(None));
        let mut basic = tonic::Request::new(());
        basic
            .metadata_mut()
            .insert("authorization", "Basic abc".parse().unwrap());
        assert!(presented(basic.metadata()).is_err());
    }
}
