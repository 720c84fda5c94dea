//! The rule shared by the names of groups and service accounts: 1 to 64 lower-case
//! letters `a-z`, digits and a few marks (which marks depends on the [`Kind`]),
//! starting with a letter or digit, surrounding spaces trimmed.

/// The longest name.
pub const NAME_MAX: usize = 64;

/// What a name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Also `.`: a group name is never `.` or `..` since it must start with a letter or
    /// digit.
    Group,
    /// No `.`, so that `NAME@service.invalid` is a valid address.
    ServiceAccount,
}

/// What is wrong with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Empty,
    TooLong,
    BadCharacter,
}

/// Why a name is refused, with a message for the person who typed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameError {
    pub kind: Kind,
    pub fault: Fault,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Group => "group",
            Kind::ServiceAccount => "service account",
        }
    }

    /// The marks allowed besides letters and digits, and how a message lists them.
    fn marks(self) -> (&'static [char], &'static str) {
        match self {
            Kind::Group => (&['-', '_', '.'], "'-', '_' and '.'"),
            Kind::ServiceAccount => (&['-', '_'], "'-' and '_'"),
        }
    }
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let noun = self.kind.noun();
        match self.fault {
            Fault::Empty => write!(f, "A {noun} needs a name."),
            Fault::TooLong => write!(f, "A {noun} name is at most {NAME_MAX} characters."),
            Fault::BadCharacter => write!(
                f,
                "A {noun} name starts with a lower-case letter or a digit and uses only \
                 lower-case letters a-z, digits, {}.",
                self.kind.marks().1
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// The name `raw` (trimmed) if it is a valid name of `kind`.
pub fn check(kind: Kind, raw: &str) -> Result<String, NameError> {
    let refuse = |fault| Err(NameError { kind, fault });
    let name = raw.trim();
    if name.is_empty() {
        return refuse(Fault::Empty);
    }
    if name.len() > NAME_MAX {
        return refuse(Fault::TooLong);
    }
    let marks = kind.marks().0;
    let first_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || marks.contains(&c));
    if !first_ok || !rest_ok {
        return refuse(Fault::BadCharacter);
    }
    Ok(name.to_string())
}
