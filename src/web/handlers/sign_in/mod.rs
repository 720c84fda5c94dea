//! Pages for visitors who are not signed in yet, or are confirming it is still them:
//! sign-in (password, second step, passkeys, step-up), sign-out, registration, email
//! verification, password reset and the first-start setup link.

pub mod app_context;
pub mod login;
pub mod logout;
pub mod passkey;
pub mod password_reset;
pub mod register;
pub mod second_step;
pub mod setup;
pub mod step_up;
pub mod verify_email;

use crate::web::views::FormError;

/// The field of the account form (/register, /setup: ids `email`, `password`,
/// `display_name`) a refusal is about, so the page can point at it.
pub(crate) fn account_form_error(e: crate::auth::accounts::AccountError) -> FormError {
    use crate::auth::accounts::AccountError as E;
    let field = match &e {
        E::Email(_) | E::DomainNotAllowed(_) | E::Exists => Some("email"),
        E::Password(_) => Some("password"),
        E::Name(_) => Some("display_name"),
        _ => None,
    };
    match field {
        Some(f) => FormError::on(f, e.to_string()),
        None => FormError::form(e.to_string()),
    }
}
