//! Keys for personal data at rest.
//!
//! - The **master key** (32 bytes) comes from `RONGHE_MASTER_KEY` (64 hex characters) or, on
//!   SQLite only, from `master.key` in the data folder, created with mode 0600 on first start.
//!   Its fingerprint is kept in the database; a node with another key refuses to start.
//! - Every member has its own **data key**, stored wrapped (AES-256-GCM) by the master key.
//!   Personal fields are sealed with it, bound to the member and field by the associated
//!   data. Erasure deletes the data key, so copies of old ciphertext in freed pages or the
//!   WAL stay unreadable.
//! - **Blind indexes** (HMAC-SHA-256 under a key derived from the master key) let identities
//!   be looked up without storing them in plaintext.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Config(String),
    #[error("personal data could not be decrypted (wrong master key or damaged data)")]
    Decrypt,
}

pub struct Keyring {
    wrap: Aes256Gcm,
    blind_key: [u8; 32],
    qr_key: [u8; 32],
    idempotency: Aes256Gcm,
    traits: Aes256Gcm,
    fingerprint: String,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(fingerprint {})", self.fingerprint)
    }
}

/// A member's data key, unwrapped for the duration of one command.
pub struct DataKey(Aes256Gcm);

const NONCE: usize = 12;

fn derive(master: &[u8; 32], label: &str) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("HMAC takes any key length");
    m.update(b"ronghe/");
    m.update(label.as_bytes());
    m.finalize().into_bytes().into()
}

fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE];
    // thread_rng is a CSPRNG seeded from the OS: no system call per nonce.
    rand::thread_rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(NONCE + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
    if sealed.len() < NONCE {
        return Err(KeyError::Decrypt);
    }
    let (nonce, ct) = sealed.split_at(NONCE);
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad }).map_err(|_| KeyError::Decrypt)
}

fn aad(member_id: &str, field: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(member_id.len() + field.len() + 1);
    a.extend_from_slice(member_id.as_bytes());
    a.push(0);
    a.extend_from_slice(field.as_bytes());
    a
}

impl Keyring {
    pub fn from_master(master: [u8; 32]) -> Keyring {
        let fp = derive(&master, "fingerprint");
        Keyring {
            wrap: Aes256Gcm::new((&derive(&master, "wrap")).into()),
            blind_key: derive(&master, "blind-index"),
            qr_key: derive(&master, "member-qr"),
            idempotency: Aes256Gcm::new((&derive(&master, "idempotency")).into()),
            traits: Aes256Gcm::new((&derive(&master, "event-traits")).into()),
            fingerprint: hex::encode(&fp[..16]),
        }
    }

    /// Parse `RONGHE_MASTER_KEY`: 64 hex characters.
    pub fn parse_master(text: &str) -> Result<[u8; 32], KeyError> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| KeyError::Config("RONGHE_MASTER_KEY must be 64 hex characters (32 bytes)".into()))?;
        bytes.try_into().map_err(|_| KeyError::Config("RONGHE_MASTER_KEY must be 64 hex characters (32 bytes)".into()))
    }

    /// Read `master.key` in the data folder, creating it (mode 0600) if it does not exist.
    pub fn load_or_create_file(dir: &Path) -> Result<[u8; 32], KeyError> {
        let path = dir.join("master.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse_master(&text)
                .map_err(|_| KeyError::Config(format!("{} is not a valid key (64 hex characters)", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_private(&path, &hex::encode(key))
                    .map_err(|e| KeyError::Config(format!("cannot write {}: {e}", path.display())))?;
                Ok(key)
            }
            Err(e) => Err(KeyError::Config(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// A short fingerprint of the master key, safe to store and compare across nodes.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn qr_key(&self) -> &[u8] {
        &self.qr_key
    }

    /// The blind index of an identity (its canonical bytes).
    pub fn blind(&self, canonical: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.blind_key).expect("HMAC takes any key length");
        m.update(canonical);
        m.finalize().into_bytes().to_vec()
    }

    /// A fresh data key for a member, and its wrapped form to store.
    pub fn new_data_key(&self, member_id: &str) -> (DataKey, Vec<u8>) {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let wrapped = seal_with(&self.wrap, &aad(member_id, "data-key"), &raw);
        (DataKey(Aes256Gcm::new((&raw).into())), wrapped)
    }

    pub fn unwrap_data_key(&self, member_id: &str, wrapped: &[u8]) -> Result<DataKey, KeyError> {
        let raw = open_with(&self.wrap, &aad(member_id, "data-key"), wrapped)?;
        let raw: [u8; 32] = raw.try_into().map_err(|_| KeyError::Decrypt)?;
        Ok(DataKey(Aes256Gcm::new((&raw).into())))
    }

    /// Stored idempotent responses may hold personal data: sealed under a derived key.
    pub fn seal_response(&self, scope: &[u8], body: &[u8]) -> Vec<u8> {
        seal_with(&self.idempotency, scope, body)
    }

    pub fn open_response(&self, scope: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        open_with(&self.idempotency, scope, sealed)
    }

    /// Seal the traits of a behaviour event (personal data), bound to its message id.
    pub fn seal_traits(&self, message_id: &str, traits: &[u8]) -> Vec<u8> {
        seal_with(&self.traits, message_id.as_bytes(), traits)
    }

    pub fn open_traits(&self, message_id: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        open_with(&self.traits, message_id.as_bytes(), sealed)
    }
}

impl DataKey {
    pub fn seal(&self, member_id: &str, field: &str, plaintext: &str) -> Vec<u8> {
        seal_with(&self.0, &aad(member_id, field), plaintext.as_bytes())
    }

    pub fn open(&self, member_id: &str, field: &str, sealed: &[u8]) -> Result<String, KeyError> {
        String::from_utf8(open_with(&self.0, &aad(member_id, field), sealed)?).map_err(|_| KeyError::Decrypt)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_round_trip_is_bound_to_member_and_field() {
        let k = Keyring::from_master([1u8; 32]);
        let (dk, wrapped) = k.new_data_key("m_1");
        let sealed = dk.seal("m_1", "name", "王小明");
        assert!(!sealed.windows(3).any(|w| w == "王".as_bytes()));
        let dk2 = k.unwrap_data_key("m_1", &wrapped).unwrap();
        assert_eq!(dk2.open("m_1", "name", &sealed).unwrap(), "王小明");
        assert!(dk2.open("m_2", "name", &sealed).is_err(), "bound to the member");
        assert!(dk2.open("m_1", "city", &sealed).is_err(), "bound to the field");
        assert!(k.unwrap_data_key("m_2", &wrapped).is_err());
        assert!(Keyring::from_master([2u8; 32]).unwrap_data_key("m_1", &wrapped).is_err());
    }

    #[test]
    fn blind_index_is_keyed_and_deterministic() {
        let a = Keyring::from_master([1u8; 32]);
        let b = Keyring::from_master([2u8; 32]);
        assert_eq!(a.blind(b"phone\0\0+8613800138000"), a.blind(b"phone\0\0+8613800138000"));
        assert_ne!(a.blind(b"phone\0\0+8613800138000"), b.blind(b"phone\0\0+8613800138000"));
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = Keyring::load_or_create_file(dir.path()).unwrap();
        let k2 = Keyring::load_or_create_file(dir.path()).unwrap();
        assert_eq!(k1, k2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
