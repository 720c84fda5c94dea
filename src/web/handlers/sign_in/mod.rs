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
