//! Signing in: the password step, the one gate every way into a session passes
//! through, and anonymous passkey ceremonies. Step-up (confirming it is still you)
//! goes through the same gate.

pub mod gate;
pub mod passkey_ceremony;
pub mod password_step;
