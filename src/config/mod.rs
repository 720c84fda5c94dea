//! Configuration: an optional TOML file, then environment variables on top.
//!
//! Every key has a default that serves a single machine, so nothing is required to start.
//! Each key is declared once, in `keys.rs`: its file key, environment variable, type,
//! default, allowed range (numbers) and documentation. Unknown keys are an error at
//! start-up, named, in the file and among `PORTCULLIS_*` variables alike: a typo must not
//! silently fall back to a default. A number outside its key's range is an error naming
//! the key and the range, never truncated or clamped.
//!
//! This module is a leaf: it imports nothing from the crate but `domain`.

mod keys;
mod parse;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use keys::{Config, FileConfig, KeyInfo, keys};

/// Variables with the prefix that are not configuration keys but are still legitimate.
const ENV_ALLOWED_EXTRA: &[&str] = &["PORTCULLIS_CONFIG"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config file {path}: unknown key {key}")]
    UnknownFileKey { path: String, key: String },
    #[error("config file {path}: invalid value for {key}: {message}")]
    FileValue {
        path: String,
        key: String,
        message: String,
    },
    #[error("unknown configuration variable {0}")]
    UnknownEnv(String),
    #[error("invalid value for {key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbBackend {
    Sqlite,
    Postgres,
}

/// Picks the backend from the URL scheme. Unknown schemes are refused with a clear
/// message instead of falling through to SQLite (which would create a stray file).
pub fn backend_of(url: &str) -> Result<DbBackend, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DbBackend::Postgres)
    } else if url.starts_with("sqlite://") || url.starts_with("sqlite:") {
        Ok(DbBackend::Sqlite)
    } else {
        Err(format!(
            "unsupported database URL scheme in {:?}: use sqlite://PATH or postgres://…",
            url.split(':').next().unwrap_or("")
        ))
    }
}

/// The file path inside a `sqlite://` URL.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

impl Config {
    /// Loads the file (if any) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(path, &env)
    }

    /// Same as `load`, with the environment passed in (tests build configs without
    /// touching the process environment).
    pub fn load_from(path: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let path = path.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(k, _)| k == "PORTCULLIS_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        let mut file = match &path {
            Some(p) => FileConfig::read(p)?,
            None => FileConfig::default(),
        };
        file.apply_env(env)?;
        file.validate()
    }

    pub fn backend(&self) -> DbBackend {
        backend_of(&self.database_url).unwrap_or(DbBackend::Sqlite)
    }

    /// Cookies are `Secure` (and `__Host-` prefixed) exactly when users reach us over https.
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The public URL without a trailing slash, for building absolute links.
    pub fn base_url(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_string()
    }

    /// The origin (`scheme://host[:port]`) that browsers send in `Origin`.
    pub fn origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// Every origin our pages are served on: the public URL's, and the sign-in address
    /// of each cookie domain that has one.
    pub fn origins(&self) -> Vec<String> {
        let mut all = vec![self.origin()];
        all.extend(
            self.cookie_domains
                .iter()
                .filter_map(|d| d.portal.as_ref())
                .map(|p| p.origin().ascii_serialization()),
        );
        all
    }

    /// The session cookie's name. Over https it carries a prefix browsers enforce:
    /// `__Host-` (this host only, no `Domain`) unless it is written for parent domains,
    /// then `__Secure-` (which allows `Domain` and still demands `Secure`).
    pub fn session_cookie_name(&self) -> &'static str {
        match (self.is_https(), self.cookie_domains.is_empty()) {
            (true, true) => "__Host-portcullis",
            (true, false) => "__Secure-portcullis",
            (false, _) => "portcullis",
        }
    }
}

impl FileConfig {
    /// Reads a TOML file; an unknown key or a value of the wrong type or out of range is
    /// an error naming the key.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let shown = || path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown(),
            source,
        })?;
        let table = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Parse {
                path: shown(),
                message: e.to_string(),
            })?;
        let mut file = FileConfig::default();
        for (key, value) in table {
            match file.set_from_toml(&key, value) {
                Ok(true) => {}
                Ok(false) => return Err(ConfigError::UnknownFileKey { path: shown(), key }),
                Err(message) => {
                    return Err(ConfigError::FileValue {
                        path: shown(),
                        key,
                        message,
                    });
                }
            }
        }
        Ok(file)
    }

    /// Environment variables override the file. An unknown `PORTCULLIS_*` variable, or
    /// a value that does not parse or is out of range, is an error naming the variable.
    pub fn apply_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        for (name, value) in env {
            match self.set_from_env(name, value.trim()) {
                Ok(true) => {}
                Ok(false) => {
                    if name.starts_with("PORTCULLIS_")
                        && !ENV_ALLOWED_EXTRA.contains(&name.as_str())
                    {
                        return Err(ConfigError::UnknownEnv(name.clone()));
                    }
                }
                Err(message) => return Err(invalid(name, message)),
            }
        }
        Ok(())
    }

    /// Fills defaults and checks every value (ranges included: values set directly in
    /// Rust are checked as strictly as those read from the file or the environment).
    pub fn validate(self) -> Result<Config, ConfigError> {
        let config = self.check_each()?;
        keys::check_together(&config)?;
        Ok(config)
    }
}
