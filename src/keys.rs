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
                    std::fs::create_dir_all(parent)?;
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
