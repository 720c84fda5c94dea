//! A refusal of what a form sent, shown the same way on every form (WCAG 3.3.1):
//! "Error: " before the page title, a summary at the top that links to the field,
//! and the message next to that field, which is marked invalid and points at it.
//! The markup lives in `templates/_form_errors.html`.

/// The one error a form answer carries, if any.
#[derive(Default)]
pub struct FormError(Option<Refusal>);

struct Refusal {
    message: String,
    /// The id of the input the message is about; `None` when the refusal is about the
    /// whole form (too many attempts, a disabled account), which no field can fix.
    field: Option<&'static str>,
}

impl FormError {
    pub fn none() -> Self {
        Self(None)
    }

    /// A message about the input with id `field`.
    pub fn on(field: &'static str, message: impl Into<String>) -> Self {
        Self(Some(Refusal {
            message: message.into(),
            field: Some(field),
        }))
    }

    /// A message about the form as a whole.
    pub fn form(message: impl Into<String>) -> Self {
        Self(Some(Refusal {
            message: message.into(),
            field: None,
        }))
    }

    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    pub fn message(&self) -> Option<&str> {
        self.0.as_ref().map(|r| r.message.as_str())
    }

    /// The id of the field the summary links to.
    pub fn field(&self) -> Option<&'static str> {
        self.0.as_ref().and_then(|r| r.field)
    }

    /// Whether the input with id `field` is the one in error.
    pub fn invalid(&self, field: &str) -> bool {
        self.field() == Some(field)
    }

    /// The message when it is about the input with id `field`.
    pub fn about(&self, field: &str) -> Option<&str> {
        if self.invalid(field) {
            self.message()
        } else {
            None
        }
    }
}
