//! The master key, AES-256-GCM for secret values, and SHA-256 token hashes.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_policy::secret::{Scope, SecretState, SecretValue};

/// The key that encrypts every secret value: 32 bytes, zeroized on drop, never printed.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Why the master key could not be loaded. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// `TOLLGATE_MASTER_KEY` is not base64 of 32 bytes.
    #[error("TOLLGATE_MASTER_KEY must be the base64 encoding of exactly 32 bytes")]
    BadEnv,
    /// The key file is not 32 bytes (raw) or base64 of 32 bytes.
    #[error("the master key file {0} must hold the base64 encoding of exactly 32 bytes")]
    BadFile(String),
    /// The key file could not be read or created.
    #[error("master key file {0}: {1}")]
    Io(String, std::io::Error),
    /// The OS random source failed.
    #[error("the operating system's random source failed")]
    Random,
}

/// The file name of the generated master key in the data dir.
pub(crate) const MASTER_KEY_FILE: &str = "master.key";

impl MasterKey {
    /// Parses the base64 encoding of 32 bytes.
    pub fn from_base64(text: &str) -> Option<Self> {
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()?;
        let key: [u8; 32] = bytes.as_slice().try_into().ok()?;
        zeroize::Zeroize::zeroize(&mut bytes);
        Some(Self(SecretBox::new(Box::new(key))))
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, MasterKeyError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| MasterKeyError::Random)?;
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    /// `TOLLGATE_MASTER_KEY` if given (`env`), else the key file in `data_dir`, created with
    /// mode 0600 on first start.
    pub fn load(env: Option<&str>, data_dir: &Path) -> Result<Self, MasterKeyError> {
        if let Some(text) = env {
            return Self::from_base64(text).ok_or(MasterKeyError::BadEnv);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let shown = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text).ok_or(MasterKeyError::BadFile(shown)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&path).map_err(|e| MasterKeyError::Io(shown.clone(), e))?;
                let mut text = base64::engine::general_purpose::STANDARD.encode(key.0.expose_secret());
                let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
                zeroize::Zeroize::zeroize(&mut text);
                written.map_err(|e| MasterKeyError::Io(shown, e))?;
                Ok(key)
            }
            Err(e) => Err(MasterKeyError::Io(shown, e)),
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose_secret().into())
    }

    /// Encrypts `value` for the row (scope, owner, name): returns (nonce, ciphertext).
    pub(crate) fn seal(
        &self,
        scope: Scope,
        owner: &str,
        name: &str,
        value: &SecretValue,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).ok()?;
        let aad = associated_data(scope, owner, name);
        let ct = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: value.expose().as_bytes(), aad: &aad })
            .ok()?;
        Some((nonce.to_vec(), ct))
    }

    /// Decrypts a row's value; anything that does not authenticate is `Unreadable`.
    pub(crate) fn open(&self, scope: Scope, owner: &str, name: &str, nonce: &[u8], ciphertext: &[u8]) -> SecretState {
        if nonce.len() != 12 {
            return SecretState::Unreadable;
        }
        let aad = associated_data(scope, owner, name);
        let Ok(plain) = self.cipher().decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad }) else {
            return SecretState::Unreadable;
        };
        match String::from_utf8(plain) {
            Ok(text) => SecretValue::parse(text).map_or(SecretState::Unreadable, SecretState::Value),
            Err(e) => {
                zeroize::Zeroize::zeroize(&mut e.into_bytes());
                SecretState::Unreadable
            }
        }
    }
}

/// Binds a ciphertext to its row: a value moved to another scope, owner or name fails to
/// authenticate. Fields are length-prefixed, so no two rows share an encoding.
fn associated_data(scope: Scope, owner: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + owner.len() + name.len());
    aad.extend_from_slice(b"tollgate/v1");
    for field in [scope.as_str(), owner, name] {
        aad.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
        aad.extend_from_slice(field.as_bytes());
    }
    aad
}

/// The SHA-256 of a token: all the store ever keeps of one. Compared in constant time.
#[derive(Clone, Copy, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a presented token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The raw digest, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::generate().unwrap()
    }

    #[test]
    fn seal_and_open_round_trip() {
        let k = key();
        let v = SecretValue::parse("sk-secret-value").unwrap();
        let (nonce, ct) = k.seal(Scope::Workspace, "ws-1", "MINIMAX_API_KEY", &v).unwrap();
        assert!(!ct.windows(6).any(|w| w == b"secret"), "ciphertext does not contain the plaintext");
        match k.open(Scope::Workspace, "ws-1", "MINIMAX_API_KEY", &nonce, &ct) {
            SecretState::Value(got) => assert_eq!(got.expose(), "sk-secret-value"),
            SecretState::Unreadable => panic!("must decrypt"),
        }
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_does_not_open() {
        let k = key();
        let v = SecretValue::parse("sk-secret-value").unwrap();
        let (nonce, ct) = k.seal(Scope::Org, "org-1", "A", &v).unwrap();
        for (scope, owner, name) in
            [(Scope::Workspace, "org-1", "A"), (Scope::Org, "org-2", "A"), (Scope::Org, "org-1", "B")]
        {
            assert!(matches!(k.open(scope, owner, name, &nonce, &ct), SecretState::Unreadable));
        }
        assert!(matches!(key().open(Scope::Org, "org-1", "A", &nonce, &ct), SecretState::Unreadable), "another key");
        let mut tampered = ct.clone();
        tampered[0] ^= 1;
        assert!(matches!(k.open(Scope::Org, "org-1", "A", &nonce, &tampered), SecretState::Unreadable));
        assert!(matches!(k.open(Scope::Org, "org-1", "A", &nonce[..11], &ct), SecretState::Unreadable));
    }

    #[test]
    fn aad_separates_fields_unambiguously() {
        assert_ne!(associated_data(Scope::Org, "a\0b", "c"), associated_data(Scope::Org, "a", "b\0c"));
    }

    #[test]
    fn key_file_is_created_0600_and_reused() {
        let dir = std::env::temp_dir().join(format!("tollgate-key-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let k1 = MasterKey::load(None, &dir).unwrap();
        let k2 = MasterKey::load(None, &dir).unwrap();
        assert_eq!(k1.0.expose_secret(), k2.0.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(MASTER_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(format!("{k1:?}").contains("redacted"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn env_key_must_be_32_bytes_of_base64() {
        let dir = std::env::temp_dir();
        assert!(matches!(MasterKey::load(Some("short"), &dir), Err(MasterKeyError::BadEnv)));
        let ok = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(MasterKey::load(Some(&ok), &dir).is_ok());
        let long = base64::engine::general_purpose::STANDARD.encode([7u8; 33]);
        assert!(MasterKey::load(Some(&long), &dir).is_err());
    }

    #[test]
    fn token_hashes_compare_by_value() {
        assert_eq!(TokenHash::of("a"), TokenHash::of("a"));
        assert_ne!(TokenHash::of("a"), TokenHash::of("b"));
        assert_eq!(TokenHash::from_bytes(TokenHash::of("a").as_bytes()), Some(TokenHash::of("a")));
        assert_eq!(TokenHash::from_bytes(&[0; 31]), None);
    }
}
