//! The kinds of configuration value: how each is read from the environment and from
//! the file, its default, and the checks it must pass.
//!
//! Numbers are read as `i128` (wide enough for every integer a person can type into a
//! variable or TOML can hold), checked against the key's declared range, and only then
//! converted with `try_from`: nothing is truncated or wrapped, so `4294967296` for a
//! `u32` key is an error naming the key and its range, never 0.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use crate::domain::access::rule::{Rule, RuleSpec, check_all};
use crate::domain::forward::cookie_domain::CookieDomain;
use url::Url;

use super::{DbBackend, backend_of};

/// What earlier keys decided that later keys' defaults depend on (the data directory
/// holds the database and the secret key unless they are set).
#[derive(Debug, Clone)]
pub struct Ctx {
    pub data_dir: PathBuf,
}

impl Default for Ctx {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DataDir::DEFAULT),
        }
    }
}

/// One kind of value. `Raw` is what the operator wrote (the `FileConfig` field), `Out`
/// the checked value (the `Config` field).
pub trait Kind {
    type Raw;
    type Out;
    /// A value from an environment variable, already trimmed.
    fn read_env(&self, v: &str) -> Result<Self::Raw, String>;
    /// A value from the TOML file.
    fn read_toml(&self, v: toml::Value) -> Result<Self::Raw, String>;
    /// The value (or, when unset, the default) checked and converted.
    fn finish(&self, raw: Option<Self::Raw>, ctx: &mut Ctx) -> Result<Self::Out, String>;
    /// The allowed range, for numbers.
    fn range(&self) -> Option<(i128, i128)> {
        None
    }
    /// The default as an operator would write it, when it is a fixed value.
    fn default_text(&self) -> Option<String> {
        None
    }
}

fn type_name(v: &toml::Value) -> &'static str {
    v.type_str()
}

fn expect_string(v: toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s),
        other => Err(format!("expected a string, found {}", type_name(&other))),
    }
}

/// The readers of a kind whose raw value is the text as written.
macro_rules! text_readers {
    () => {
        fn read_env(&self, v: &str) -> Result<String, String> {
            Ok(v.to_string())
        }

        fn read_toml(&self, v: toml::Value) -> Result<String, String> {
            expect_string(v)
        }
    };
}

/// Where a number's default comes from.
#[derive(Debug, Clone, Copy)]
pub enum NumDefault<T> {
    Fixed(T),
    /// Computed at start (e.g. the number of cores), then brought into the range.
    Computed(fn() -> T),
}

/// A whole number of type `T` within an inclusive range.
#[derive(Debug, Clone)]
pub struct Num<T> {
    default: NumDefault<T>,
    range: RangeInclusive<T>,
}

impl<T: Copy> Num<T> {
    pub const fn new(default: T, range: RangeInclusive<T>) -> Self {
        Self {
            default: NumDefault::Fixed(default),
            range,
        }
    }

    pub const fn computed(default: fn() -> T, range: RangeInclusive<T>) -> Self {
        Self {
            default: NumDefault::Computed(default),
            range,
        }
    }
}

/// The numeric types a key may have: every one converts to and from `i128` without
/// loss inside its own range.
pub trait Whole: Copy + Ord + Display + TryFrom<i128> + TryInto<i128> {}
impl<T: Copy + Ord + Display + TryFrom<i128> + TryInto<i128>> Whole for T {}

fn wide<T: Whole>(v: T) -> i128 {
    // Every `Whole` type used here (up to 64 bits) fits in i128.
    v.try_into().unwrap_or(i128::MAX)
}

impl<T: Whole> Num<T> {
    fn allowed(&self) -> String {
        format!("allowed: {} to {}", self.range.start(), self.range.end())
    }

    /// The range check, then the conversion; both errors name the range.
    fn check(&self, n: i128) -> Result<T, String> {
        let (lo, hi) = (wide(*self.range.start()), wide(*self.range.end()));
        if n < lo || n > hi {
            return Err(format!("{n} is out of range ({})", self.allowed()));
        }
        T::try_from(n).map_err(|_| format!("{n} is out of range ({})", self.allowed()))
    }
}

impl<T: Whole> Kind for Num<T> {
    type Raw = T;
    type Out = T;

    fn read_env(&self, v: &str) -> Result<T, String> {
        let n = v
            .parse::<i128>()
            .map_err(|_| format!("{v:?} is not a whole number ({})", self.allowed()))?;
        self.check(n)
    }

    fn read_toml(&self, v: toml::Value) -> Result<T, String> {
        match v {
            toml::Value::Integer(n) => self.check(i128::from(n)),
            other => Err(format!(
                "expected a whole number, found {} ({})",
                type_name(&other),
                self.allowed()
            )),
        }
    }

    fn finish(&self, raw: Option<T>, _: &mut Ctx) -> Result<T, String> {
        match (raw, self.default) {
            (Some(v), _) => self.check(wide(v)),
            (None, NumDefault::Fixed(d)) => self.check(wide(d)),
            (None, NumDefault::Computed(f)) => {
                Ok(f().clamp(*self.range.start(), *self.range.end()))
            }
        }
    }

    fn range(&self) -> Option<(i128, i128)> {
        Some((wide(*self.range.start()), wide(*self.range.end())))
    }

    fn default_text(&self) -> Option<String> {
        match self.default {
            NumDefault::Fixed(d) => Some(d.to_string()),
            NumDefault::Computed(_) => None,
        }
    }
}

/// The number of cores, the default for work that runs one per core.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off` in the environment).
#[derive(Debug, Clone, Copy)]
pub struct Flag(pub bool);

impl Kind for Flag {
    type Raw = bool;
    type Out = bool;

    fn read_env(&self, v: &str) -> Result<bool, String> {
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }

    fn read_toml(&self, v: toml::Value) -> Result<bool, String> {
        match v {
            toml::Value::Boolean(b) => Ok(b),
            other => Err(format!(
                "expected true or false, found {}",
                type_name(&other)
            )),
        }
    }

    fn finish(&self, raw: Option<bool>, _: &mut Ctx) -> Result<bool, String> {
        Ok(raw.unwrap_or(self.0))
    }

    fn default_text(&self) -> Option<String> {
        Some(self.0.to_string())
    }
}

/// A string with a default, and a check it must pass.
#[derive(Debug, Clone, Copy)]
pub struct Text {
    default: &'static str,
    check: fn(&str) -> Result<(), String>,
}

impl Text {
    pub const fn new(default: &'static str) -> Self {
        Self {
            default,
            check: |_| Ok(()),
        }
    }

    pub const fn checked(default: &'static str, check: fn(&str) -> Result<(), String>) -> Self {
        Self { default, check }
    }
}

impl Kind for Text {
    type Raw = String;
    type Out = String;

    text_readers!();

    fn finish(&self, raw: Option<String>, _: &mut Ctx) -> Result<String, String> {
        let v = raw.unwrap_or_else(|| self.default.to_string());
        (self.check)(&v)?;
        Ok(v)
    }

    fn default_text(&self) -> Option<String> {
        Some(self.default.to_string())
    }
}

/// `host:port` (an IP address, or a name resolved when binding).
pub fn listen_address(v: &str) -> Result<(), String> {
    if v.parse::<SocketAddr>().is_err() && !v.contains(':') {
        return Err("expected host:port".into());
    }
    Ok(())
}

/// One of a fixed set of words.
pub fn signing_alg(v: &str) -> Result<(), String> {
    match v {
        "RS256" | "ES256" | "EdDSA" => Ok(()),
        _ => Err("expected RS256, ES256 or EdDSA".into()),
    }
}

/// A string that is unset by default; an empty value also means unset.
#[derive(Debug, Clone, Copy)]
pub struct Unset;

impl Kind for Unset {
    type Raw = String;
    type Out = Option<String>;

    text_readers!();

    fn finish(&self, raw: Option<String>, _: &mut Ctx) -> Result<Option<String>, String> {
        Ok(raw.filter(|s| !s.is_empty()))
    }
}

/// The public URL: http(s) with a host.
#[derive(Debug, Clone, Copy)]
pub struct PublicUrl(pub &'static str);

impl Kind for PublicUrl {
    type Raw = String;
    type Out = Url;

    text_readers!();

    fn finish(&self, raw: Option<String>, _: &mut Ctx) -> Result<Url, String> {
        let url = Url::parse(raw.as_deref().unwrap_or(self.0)).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("expected an http(s) URL with a host".into());
        }
        Ok(url)
    }

    fn default_text(&self) -> Option<String> {
        Some(self.0.to_string())
    }
}

/// The data directory; later keys default to files inside it.
#[derive(Debug, Clone, Copy)]
pub struct DataDir;

impl DataDir {
    pub const DEFAULT: &'static str = "./data";
}

impl Kind for DataDir {
    type Raw = String;
    type Out = PathBuf;

    text_readers!();

    fn finish(&self, raw: Option<String>, ctx: &mut Ctx) -> Result<PathBuf, String> {
        let dir = PathBuf::from(raw.as_deref().unwrap_or(Self::DEFAULT));
        ctx.data_dir = dir.clone();
        Ok(dir)
    }

    fn default_text(&self) -> Option<String> {
        Some(Self::DEFAULT.to_string())
    }
}

/// A path that defaults to a file in the data directory.
#[derive(Debug, Clone, Copy)]
pub struct InDataDir(pub &'static str);

impl Kind for InDataDir {
    type Raw = String;
    type Out = PathBuf;

    text_readers!();

    fn finish(&self, raw: Option<String>, ctx: &mut Ctx) -> Result<PathBuf, String> {
        Ok(raw
            .map(PathBuf::from)
            .unwrap_or_else(|| ctx.data_dir.join(self.0)))
    }
}

/// A database URL (`sqlite://…` or `postgres://…`); the default is a SQLite file in the
/// data directory.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseUrl(pub &'static str);

impl Kind for DatabaseUrl {
    type Raw = String;
    type Out = String;

    text_readers!();

    fn finish(&self, raw: Option<String>, ctx: &mut Ctx) -> Result<String, String> {
        let url =
            raw.unwrap_or_else(|| format!("sqlite://{}", ctx.data_dir.join(self.0).display()));
        let _: DbBackend = backend_of(&url)?;
        Ok(url)
    }
}

/// A list: comma-separated in the environment, an array of strings in the file. Each
/// entry is checked and converted by `item`, which may also drop it (`Ok(None)`).
#[derive(Debug, Clone, Copy)]
pub struct List<T> {
    item: fn(&str) -> Result<Option<T>, String>,
}

impl<T> List<T> {
    pub const fn of(item: fn(&str) -> Result<Option<T>, String>) -> Self {
        Self { item }
    }
}

impl<T> Kind for List<T> {
    type Raw = Vec<String>;
    type Out = Vec<T>;

    fn read_env(&self, v: &str) -> Result<Vec<String>, String> {
        Ok(v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }

    fn read_toml(&self, v: toml::Value) -> Result<Vec<String>, String> {
        match v {
            toml::Value::Array(items) => items.into_iter().map(expect_string).collect(),
            other => Err(format!(
                "expected an array of strings, found {}",
                type_name(&other)
            )),
        }
    }

    fn finish(&self, raw: Option<Vec<String>>, _: &mut Ctx) -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        for entry in raw.unwrap_or_default() {
            if let Some(v) = (self.item)(&entry)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn default_text(&self) -> Option<String> {
        Some(String::new())
    }
}

/// An email domain, lower case, without a leading `@`.
pub fn email_domain(d: &str) -> Result<Option<String>, String> {
    let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
    Ok(Some(d).filter(|d| !d.is_empty()))
}

/// A domain name with an optional `:port`, normalised as forward auth compares them.
pub fn forward_domain(d: &str) -> Result<Option<String>, String> {
    if d.trim().is_empty() {
        return Ok(None);
    }
    crate::domain::forward::normalize_domain(d)
        .map(Some)
        .ok_or_else(|| format!("{d} is not a domain name (with an optional :port)"))
}

/// A session cookie domain, `example.com` or `example.org=https://auth.example.org`.
pub fn cookie_domain(d: &str) -> Result<Option<CookieDomain>, String> {
    if d.trim().is_empty() {
        return Ok(None);
    }
    CookieDomain::parse(d).map(Some)
}

/// An IP address.
pub fn ip_address(p: &str) -> Result<Option<IpAddr>, String> {
    p.parse::<IpAddr>()
        .map(Some)
        .map_err(|_| format!("{p} is not an IP address"))
}

/// What forward auth does where no access rule matches.
pub fn access_default(v: &str) -> Result<(), String> {
    match v {
        "deny" | "one_factor" | "two_factor" => Ok(()),
        _ => Err("expected deny, one_factor or two_factor".into()),
    }
}

/// Access rules: `[[access_rule]]` tables in the file, a JSON array of the same
/// objects in the environment. Each is checked here, so a bad rule stops the start
/// with its name and field, not the first request it would have decided.
#[derive(Debug, Clone, Copy)]
pub struct AccessRules;

impl Kind for AccessRules {
    type Raw = Vec<RuleSpec>;
    type Out = Vec<Rule>;

    fn read_env(&self, v: &str) -> Result<Vec<RuleSpec>, String> {
        if v.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_str(v).map_err(|e| format!("expected a JSON array of rules: {e}"))
    }

    fn read_toml(&self, v: toml::Value) -> Result<Vec<RuleSpec>, String> {
        match v {
            toml::Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    item.try_into::<RuleSpec>()
                        .map_err(|e| format!("rule {}: {}", i + 1, e.message()))
                })
                .collect(),
            other => Err(format!(
                "expected [[access_rule]] tables, found {}",
                type_name(&other)
            )),
        }
    }

    fn finish(&self, raw: Option<Vec<RuleSpec>>, _: &mut Ctx) -> Result<Vec<Rule>, String> {
        check_all(raw.unwrap_or_default())
    }

    fn default_text(&self) -> Option<String> {
        Some(String::new())
    }
}
