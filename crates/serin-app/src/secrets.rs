//! Secrets at rest and in use.
//!
//! A secret's value is sealed here with ChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`) under a 256-bit key the operator gives the server
//! (`SERIN_SECRET_KEY` or `--secret-key-file`, 64 hex digits) and that never
//! reaches the database. Each value gets a fresh random 96-bit nonce, stored
//! in front of the ciphertext, and the secret's name is the associated data,
//! so a sealed value copied under another name does not open. Without a key
//! the secrets API refuses to store anything (`SECRETS_DISABLED`) rather than
//! keep values in the clear.
//!
//! In use, a plan's `secret:NAME` is replaced by the value at the moment of
//! the call (a gate, a hook, a notification) and never written anywhere;
//! failures name the secret, never the value.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serin_store::Store;

/// Seals and opens secret values with the operator's key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Arc<ChaCha20Poly1305>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(key hidden)")
    }
}

impl Sealer {
    /// A sealer from 64 hex digits (`openssl rand -hex 32`).
    pub fn from_hex(text: &str) -> Result<Sealer, String> {
        let bytes =
            hex::decode(text.trim()).map_err(|_| "the secret key is not hex".to_string())?;
        if bytes.len() != 32 {
            return Err(format!(
                "the secret key is {} bytes; give 32 (64 hex digits, e.g. `openssl rand -hex 32`)",
                bytes.len()
            ));
        }
        Ok(Sealer {
            cipher: Arc::new(ChaCha20Poly1305::new(Key::from_slice(&bytes))),
        })
    }

    /// `nonce ‖ ciphertext` of `value`, bound to `name`.
    pub fn seal(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The value sealed under `name`, if this key sealed it.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < 12 {
            return Err(format!("secret {name} is damaged"));
        }
        let (nonce, body) = sealed.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| format!("secret {name} does not open with this server's key"))
    }
}

/// A secret's value, for a call about to be made.
pub async fn value(store: &Store, sealer: Option<&Sealer>, name: &str) -> Result<String, String> {
    let sealer = sealer.ok_or("secrets are off on this server (no SERIN_SECRET_KEY)")?;
    let sealed = store
        .sealed_secret(name)
        .await
        .map_err(|e| format!("cannot read secret {name}: {e}"))?
        .ok_or_else(|| format!("no secret named {name}"))?;
    let bytes = sealer.open(name, &sealed)?;
    String::from_utf8(bytes).map_err(|_| format!("secret {name} is not text"))
}

/// A URL a plan gave: itself, or the value of the secret it names
/// (`secret:NAME`), which must be an http(s) URL.
pub async fn resolve_url(
    store: &Store,
    sealer: Option<&Sealer>,
    url: &str,
) -> Result<String, String> {
    let Some(name) = serin_core::secret::reference(url) else {
        return Ok(url.to_string());
    };
    let v = value(store, sealer, name).await?;
    if v.starts_with("http://") || v.starts_with("https://") {
        Ok(v)
    } else {
        Err(format!("secret {name} is not an http:// or https:// URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_name() {
        let s = Sealer::from_hex(&"11".repeat(32)).unwrap();
        let sealed = s
            .seal("slack", b"https://hooks.slack.com/services/T/B/X")
            .unwrap();
        assert!(
            !sealed.windows(5).any(|w| w == b"hooks"),
            "the value is not in the clear"
        );
        assert_eq!(
            s.open("slack", &sealed).unwrap(),
            b"https://hooks.slack.com/services/T/B/X"
        );
        assert!(s.open("other", &sealed).is_err(), "bound to its name");
        let t = Sealer::from_hex(&"22".repeat(32)).unwrap();
        assert!(t.open("slack", &sealed).is_err(), "bound to its key");
        assert_ne!(
            s.seal("slack", b"x").unwrap(),
            s.seal("slack", b"x").unwrap(),
            "fresh nonces"
        );
        assert!(Sealer::from_hex("abcd").is_err());
        assert!(Sealer::from_hex(&"zz".repeat(32)).is_err());
    }
}
