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
    /// `TOLLGATE_MASTER_KEYS` is not a list of base64 encodings of 32 bytes.
    #[error("TOLLGATE_MASTER_KEYS must list the base64 encodings of 32-byte keys, separated by commas, oldest first")]
    BadList,
    /// The same key is listed twice.
    #[error("a master key is listed twice (key id {0})")]
    Duplicate(String),
    /// Both `TOLLGATE_MASTER_KEYS` and `TOLLGATE_MASTER_KEY` are set.
    #[error("set TOLLGATE_MASTER_KEYS or TOLLGATE_MASTER_KEY, not both")]
    Both,
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

    /// The key's id: the first 8 bytes of a domain-separated SHA-256 of the key, in hex. It
    /// names the key in each ciphertext's row and in logs; it reveals nothing of the key.
    pub fn id(&self) -> KeyId {
        let mut h = Sha256::new();
        h.update(b"tollgate/master-key-id/v1");
        h.update(self.0.expose_secret());
        let digest = h.finalize();
        KeyId(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
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

/// The id of a master key (16 hex digits), stored with each ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The configured master keys, oldest first: the newest (last) encrypts, every one decrypts.
/// Never empty; no key twice. Key material is never printed.
pub struct MasterKeys {
    keys: Vec<(KeyId, MasterKey)>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys").field("ids", &self.ids()).finish()
    }
}

impl From<MasterKey> for MasterKeys {
    fn from(key: MasterKey) -> Self {
        Self { keys: vec![(key.id(), key)] }
    }
}

impl MasterKeys {
    /// `keys`, oldest first.
    ///
    /// # Errors
    /// [`MasterKeyError::BadList`] when empty, [`MasterKeyError::Duplicate`] when a key is
    /// listed twice.
    pub fn new(keys: Vec<MasterKey>) -> Result<Self, MasterKeyError> {
        let mut out: Vec<(KeyId, MasterKey)> = Vec::with_capacity(keys.len());
        for key in keys {
            let id = key.id();
            if out.iter().any(|(other, _)| *other == id) {
                return Err(MasterKeyError::Duplicate(id.0));
            }
            out.push((id, key));
        }
        if out.is_empty() {
            return Err(MasterKeyError::BadList);
        }
        Ok(Self { keys: out })
    }

    /// Parses base64 keys separated by commas or whitespace (newlines included), oldest
    /// first; lines starting with `#` are comments.
    ///
    /// # Errors
    /// [`MasterKeyError::BadList`] when an item is not base64 of 32 bytes or there is none;
    /// [`MasterKeyError::Duplicate`].
    pub fn parse_list(text: &str) -> Result<Self, MasterKeyError> {
        let keys = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|item| !item.is_empty())
            .map(|item| MasterKey::from_base64(item).ok_or(MasterKeyError::BadList))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// The keys of the configuration: `TOLLGATE_MASTER_KEYS` (`list`), else
    /// `TOLLGATE_MASTER_KEY` (`single`), else the key file in `data_dir` (one key per line,
    /// oldest first; created with one new key, mode 0600, on first start).
    ///
    /// # Errors
    /// [`MasterKeyError::Both`] when both variables are set; otherwise as
    /// [`MasterKeys::parse_list`] and [`MasterKey::load`].
    pub fn load(list: Option<&str>, single: Option<&str>, data_dir: &Path) -> Result<Self, MasterKeyError> {
        match (list, single) {
            (Some(_), Some(_)) => Err(MasterKeyError::Both),
            (Some(list), None) => Self::parse_list(list),
            (None, Some(_)) => MasterKey::load(single, data_dir).map(Self::from),
            (None, None) => {
                let path = data_dir.join(MASTER_KEY_FILE);
                match std::fs::read_to_string(&path) {
                    Ok(text) => Self::parse_list(&text).map_err(|e| match e {
                        MasterKeyError::BadList => MasterKeyError::BadFile(path.display().to_string()),
                        e => e,
                    }),
                    // Not there (created now) or unreadable (the error names it).
                    Err(_) => MasterKey::load(None, data_dir).map(Self::from),
                }
            }
        }
    }

    /// The id of the key new ciphertexts use (the newest).
    pub fn current(&self) -> &KeyId {
        // Never empty (checked by every constructor).
        &self.keys[self.keys.len() - 1].0
    }

    /// The ids of every key, oldest first.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|(id, _)| id.clone()).collect()
    }

    /// Encrypts `value` for the row with the newest key: (key id, nonce, ciphertext).
    pub(crate) fn seal(
        &self,
        scope: Scope,
        owner: &str,
        name: &str,
        value: &SecretValue,
    ) -> Option<(KeyId, Vec<u8>, Vec<u8>)> {
        let (id, key) = self.keys.last()?;
        let (nonce, ct) = key.seal(scope, owner, name, value)?;
        Some((id.clone(), nonce, ct))
    }

    /// Decrypts a row's value with the key its id names. A row without an id (written before
    /// key ids existed) is tried with every key, newest first: AES-GCM authenticates, so only
    /// the right key opens it. An unknown id, or nothing that authenticates, is `Unreadable`.
    pub(crate) fn open(
        &self,
        scope: Scope,
        owner: &str,
        name: &str,
        key_id: Option<&str>,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> SecretState {
        let candidates = self.keys.iter().rev().filter(|(id, _)| key_id.is_none_or(|k| k == id.as_str()));
        for (_, key) in candidates {
            if let state @ SecretState::Value(_) = key.open(scope, owner, name, nonce, ciphertext) {
                return state;
            }
        }
        SecretState::Unreadable
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

    fn opened(state: SecretState) -> Option<String> {
        match state {
            SecretState::Value(v) => Some(v.expose().to_owned()),
            SecretState::Unreadable => None,
        }
    }

    #[test]
    fn the_newest_key_encrypts_and_every_key_decrypts() {
        let b64 = |k: &MasterKey| base64::engine::general_purpose::STANDARD.encode(k.0.expose_secret());
        let (old, new) = (key(), key());
        let (old_b64, new_b64) = (b64(&old), b64(&new));
        let v = SecretValue::parse("sk-rotated").unwrap();
        let only_old = MasterKeys::from(old);
        let (old_id, n1, c1) = only_old.seal(Scope::Org, "o", "A", &v).unwrap();
        let both = MasterKeys::parse_list(&format!("{old_b64}, {new_b64}")).unwrap();
        assert_eq!(both.ids(), [old_id.clone(), new.id()]);
        assert_eq!(both.current(), &new.id());
        let (new_id, n2, c2) = both.seal(Scope::Org, "o", "A", &v).unwrap();
        assert_eq!(new_id, new.id());
        // Under its id, and without one (a row from before key ids): both open.
        assert_eq!(
            opened(both.open(Scope::Org, "o", "A", Some(old_id.as_str()), &n1, &c1)).as_deref(),
            Some("sk-rotated")
        );
        assert_eq!(opened(both.open(Scope::Org, "o", "A", None, &n1, &c1)).as_deref(), Some("sk-rotated"));
        assert_eq!(
            opened(both.open(Scope::Org, "o", "A", Some(new_id.as_str()), &n2, &c2)).as_deref(),
            Some("sk-rotated")
        );
        // The wrong id, an unknown id, or a configuration without the key: unreadable.
        assert_eq!(opened(both.open(Scope::Org, "o", "A", Some(new_id.as_str()), &n1, &c1)), None);
        assert_eq!(opened(both.open(Scope::Org, "o", "A", Some("0000000000000000"), &n1, &c1)), None);
        let only_new = MasterKeys::parse_list(&new_b64).unwrap();
        assert_eq!(opened(only_new.open(Scope::Org, "o", "A", None, &n1, &c1)), None);
        assert!(!format!("{both:?}").contains(&new_b64), "Debug shows ids only");
    }

    #[test]
    fn key_lists_are_checked() {
        let a = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let b = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
        assert!(matches!(MasterKeys::parse_list(""), Err(MasterKeyError::BadList)));
        assert!(matches!(MasterKeys::parse_list(&format!("{a},short")), Err(MasterKeyError::BadList)));
        assert!(matches!(MasterKeys::parse_list(&format!("{a},{a}")), Err(MasterKeyError::Duplicate(_))));
        let file = MasterKeys::parse_list(&format!("# rotated 2026-12\n{a}\n\n{b}\n")).unwrap();
        assert_eq!(file.ids().len(), 2);
        let dir = std::env::temp_dir();
        assert!(matches!(MasterKeys::load(Some(&a), Some(&b), &dir), Err(MasterKeyError::Both)));
        assert_eq!(MasterKeys::load(None, Some(&b), &dir).unwrap().ids(), [MasterKey::from_base64(&b).unwrap().id()]);
        let err = MasterKeys::parse_list(&format!("{a},{a}")).unwrap_err().to_string();
        assert!(!err.contains(&a), "no key material in errors: {err}");
    }

    #[test]
    fn a_key_file_may_list_several_keys() {
        let dir = std::env::temp_dir().join(format!("tollgate-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let created = MasterKeys::load(None, None, &dir).unwrap();
        assert_eq!(created.ids().len(), 1, "first start: one new key");
        let again = MasterKeys::load(None, None, &dir).unwrap();
        assert_eq!(again.ids(), created.ids());
        let mut text = std::fs::read_to_string(dir.join(MASTER_KEY_FILE)).unwrap();
        let added = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        text.push_str(&format!("\n{added}\n"));
        std::fs::write(dir.join(MASTER_KEY_FILE), text).unwrap();
        let rotated = MasterKeys::load(None, None, &dir).unwrap();
        assert_eq!(rotated.ids()[0], created.ids()[0]);
        assert_eq!(rotated.current(), &MasterKey::from_base64(&added).unwrap().id());
        std::fs::write(dir.join(MASTER_KEY_FILE), "garbage").unwrap();
        assert!(matches!(MasterKeys::load(None, None, &dir), Err(MasterKeyError::BadFile(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn token_hashes_compare_by_value() {
        assert_eq!(TokenHash::of("a"), TokenHash::of("a"));
        assert_ne!(TokenHash::of("a"), TokenHash::of("b"));
        assert_eq!(TokenHash::from_bytes(TokenHash::of("a").as_bytes()), Some(TokenHash::of("a")));
        assert_eq!(TokenHash::from_bytes(&[0; 31]), None);
    }
}
