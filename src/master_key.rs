//! The master key: 32 random bytes in a file (mode 0600), created on first start and
//! shared by every instance. Purpose-specific keys are derived from it with HKDF-SHA256,
//! so one secret file serves cookies, CSRF and encryption at rest without reuse.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Reads the key file, or creates it (0600) when it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = STANDARD
                    .decode(text.trim())
                    .map_err(|e| anyhow::anyhow!("{}: not base64: {e}", path.display()))?;
                let arr: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("{}: the key must be 32 bytes", path.display()))?;
                Ok(Self(arr))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    crate::files::create_private_dir(parent)?;
                }
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                match opts.open(path) {
                    Ok(mut f) => {
                        f.write_all(STANDARD.encode(key).as_bytes())?;
                        f.write_all(b"\n")?;
                        tracing::info!(path = %path.display(), "created a new secret key file");
                        Ok(Self(key))
                    }
                    // Another process (a second instance, the CLI) created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
                }
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key for one purpose; different `purpose` strings give independent keys.
    pub fn derive<const N: usize>(&self, purpose: &str) -> [u8; N] {
        let hk = Hkdf::<Sha256>::new(Some(b"portcullis"), &self.0);
        let mut out = [0u8; N];
        // N is at most 255*32 bytes for every use here; expand cannot fail below that.
        hk.expand(purpose.as_bytes(), &mut out)
            .unwrap_or_else(|_| unreachable!("HKDF output length is a small constant"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_with_mode_0600_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/secret.key");
        let a = MasterKey::load_or_create(&p).unwrap();
        let b = MasterKey::load_or_create(&p).unwrap();
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn derived_keys_differ_by_purpose() {
        let k = MasterKey::from_bytes([7; 32]);
        let a: [u8; 32] = k.derive("csrf");
        let b: [u8; 32] = k.derive("cookie");
        assert_ne!(a, b);
    }
}

/// Encryption at rest (XChaCha20-Poly1305) with a key derived from the master key.
/// The associated data binds a ciphertext to its owner: a secret copied onto another
/// user's row does not decrypt.
#[derive(Clone)]
pub struct Sealer {
    cipher: chacha20poly1305::XChaCha20Poly1305,
}

impl Sealer {
    pub fn new(master: &MasterKey, purpose: &str) -> Self {
        use chacha20poly1305::KeyInit;
        let key: [u8; 32] = master.derive(purpose);
        Self {
            cipher: chacha20poly1305::XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// base64(nonce ‖ ciphertext).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        use chacha20poly1305::aead::{Aead, AeadCore, Payload};
        let nonce = chacha20poly1305::XChaCha20Poly1305::generate_nonce(&mut rand::rngs::OsRng);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        use chacha20poly1305::aead::{Aead, Payload};
        let raw = STANDARD.decode(sealed).ok()?;
        if raw.len() < 24 {
            return None;
        }
        let (nonce, ct) = raw.split_at(24);
        self.cipher
            .decrypt(nonce.into(), Payload { msg: ct, aad })
            .ok()
    }
}

#[cfg(test)]
mod sealer_tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_owner_and_key() {
        let k = MasterKey::from_bytes([3; 32]);
        let s = Sealer::new(&k, "totp");
        let sealed = s.seal(b"secret", b"user-1");
        assert_eq!(s.open(&sealed, b"user-1").unwrap(), b"secret");
        assert!(s.open(&sealed, b"user-2").is_none());
        assert!(Sealer::new(&k, "other").open(&sealed, b"user-1").is_none());
        assert!(!sealed.contains("secret"));
    }
}
