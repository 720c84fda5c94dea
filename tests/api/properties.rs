//! A property test of the sign-in state machine: random interleavings of sign-ins (the
//! password step, its second step, the password alone, a passkey) with what ends or
//! changes an account (disable, enable, password reset, removal of the second factors,
//! role change, revocation), on the real application through its pages where that is
//! cheap. After every step the sessions the registry holds are compared with a model:
//! none for a disabled account, none admitted from a sign-in that began before the
//! account's latest password reset, and an unchanged account's pending second step
//! does get in (so the property cannot hold by refusing everything).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis::auth::accounts::admin::Actor;
use portcullis::auth::accounts::links::RESET;
use portcullis::auth::audit::AuditCtx;
use portcullis::auth::sign_in::gate::{self, Entrant, Proof};
use portcullis::db::DbError;
use portcullis::db::repo::tokens;
use proptest::prelude::*;
use proptest::test_runner::{
    Config as RunnerConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use reqwest::StatusCode;

use crate::helpers::*;
use crate::mfa::{enrol, hotp};

/// One step of a random run. `Finish(i)` and the like pick among what is open at the
/// time (modulo its count), so every generated sequence is runnable and shrinks well.
#[derive(Clone, Copy)]
enum Step {
    /// The password step; with an authenticator app enrolled it leaves a pending second
    /// step (without one it is a password-only sign-in).
    Password,
    /// Finishes pending sign-in number `i` with a code.
    Finish(usize),
    /// Enrols an authenticator app from a fresh password-only sign-in.
    Enrol,
    /// The gate with a passkey: the account's own credential (`true`, one it never had
    /// or that was removed when `false`).
    Passkey(bool),
    Disable,
    Enable,
    /// The owner resets the password through the reset link.
    PasswordReset,
    /// An administrator removes every second factor.
    RemoveFactors,
    /// An administrator gives or takes the `admin` role.
    Role(bool),
    /// An administrator ends every session.
    Revoke,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Password => write!(f, "password step"),
            Step::Finish(i) => write!(f, "finish pending #{i}"),
            Step::Enrol => write!(f, "enrol an authenticator app"),
            Step::Passkey(own) => write!(
                f,
                "passkey ({})",
                if *own { "own" } else { "unknown/removed" }
            ),
            Step::Disable => write!(f, "admin disables"),
            Step::Enable => write!(f, "admin enables"),
            Step::PasswordReset => write!(f, "password reset"),
            Step::RemoveFactors => write!(f, "admin removes second factors"),
            Step::Role(give) => write!(
                f,
                "admin {} role admin",
                if *give { "gives" } else { "takes" }
            ),
            Step::Revoke => write!(f, "admin revokes sessions"),
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => Just(Step::Password),
        5 => (0..4usize).prop_map(Step::Finish),
        2 => Just(Step::Enrol),
        2 => any::<bool>().prop_map(Step::Passkey),
        2 => Just(Step::Disable),
        2 => Just(Step::Enable),
        2 => Just(Step::PasswordReset),
        1 => Just(Step::RemoveFactors),
        1 => any::<bool>().prop_map(Step::Role),
        1 => Just(Step::Revoke),
    ]
}

/// A password step waiting for its code, with what the account was when it began.
struct Pending {
    browser: Browser,
    csrf: String,
    password_epoch: u32,
    factor_epoch: u32,
    /// Disabled (and perhaps enabled again) since it began: the outcome may go either
    /// way once the account is enabled again, as the gate compares credentials only.
    disabled_meanwhile: bool,
}

/// What the test believes about the account.
struct Model {
    uid: String,
    email: String,
    password: String,
    disabled: bool,
    /// Bumped by every password reset.
    password_epoch: u32,
    /// Bumped whenever the second factors change (enrolment, removal).
    factor_epoch: u32,
    /// The authenticator secret, its last used time step, and unspent recovery codes.
    totp: Option<(Vec<u8>, u64, Vec<String>)>,
    /// The passkey credential id the account holds, if any.
    passkey: Option<String>,
    pending: Vec<Pending>,
    /// Every session id the registry may hold, with the password epoch its sign-in
    /// began in.
    sessions: HashMap<String, u32>,
    admitted_pending_steps: usize,
}

static NEXT_USER: AtomicUsize = AtomicUsize::new(0);

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

async fn sids(app: &TestApp, uid: &str) -> Vec<String> {
    app.state
        .sessions
        .list(uid)
        .await
        .expect("sessions")
        .into_iter()
        .map(|s| s.sid)
        .collect()
}

/// Runs `f` (which may create at most one session) and records the session it made,
/// with the epoch its sign-in began in. Returns whether one was made.
async fn record_new(app: &TestApp, m: &mut Model, began: u32, before: &[String]) -> Option<String> {
    let after = sids(app, &m.uid).await;
    let new: Vec<_> = after.into_iter().filter(|s| !before.contains(s)).collect();
    assert!(new.len() <= 1, "one step made several sessions: {new:?}");
    let sid = new.into_iter().next()?;
    m.sessions.insert(sid.clone(), began);
    Some(sid)
}

/// The next code the authenticator may give (a step not used yet, within the window
/// the server accepts), or a recovery code when the window is spent.
fn next_code(app: &TestApp, totp: &mut (Vec<u8>, u64, Vec<String>)) -> Option<String> {
    let now = app.clock.now() as u64 / 30;
    let candidate = (totp.1 + 1).max(now.saturating_sub(1));
    if candidate <= now + 1 {
        totp.1 = candidate;
        return Some(hotp(&totp.0, candidate, 6));
    }
    totp.2.pop()
}

async fn apply(app: &TestApp, m: &mut Model, s: Step) -> Result<(), TestCaseError> {
    let st = &app.state;
    let ctx = AuditCtx::cli();
    match s {
        Step::Password => {
            let b = app.browser();
            let before = sids(app, &m.uid).await;
            let p = b.login(&m.email, &m.password).await;
            match (m.disabled, m.totp.is_some(), p.location().as_deref()) {
                (true, _, _) => {
                    if p.status == StatusCode::SEE_OTHER {
                        return Err(fail(format!(
                            "a disabled account passed the password step to {:?}",
                            p.location()
                        )));
                    }
                }
                (false, true, Some("/login/mfa")) => {
                    let csrf = b.get("/login/mfa").await.csrf();
                    m.pending.push(Pending {
                        browser: b,
                        csrf,
                        password_epoch: m.password_epoch,
                        factor_epoch: m.factor_epoch,
                        disabled_meanwhile: false,
                    });
                }
                (false, false, Some("/account")) => {
                    record_new(app, m, m.password_epoch, &before)
                        .await
                        .ok_or_else(|| fail("a password-only sign-in wrote no session"))?;
                }
                (d, t, l) => {
                    return Err(fail(format!(
                        "password step (disabled {d}, app {t}) answered {} {l:?}",
                        p.status
                    )));
                }
            }
        }
        Step::Finish(i) => {
            if m.pending.is_empty() {
                return Ok(());
            }
            let p = m.pending.remove(i % m.pending.len());
            let code = match m.totp.as_mut().and_then(|t| next_code(app, t)) {
                Some(c) => c,
                None => "000000".into(),
            };
            let before = sids(app, &m.uid).await;
            let r = p
                .browser
                .post("/login/mfa", &[("csrf_token", &p.csrf), ("code", &code)])
                .await;
            let admitted = record_new(app, m, p.password_epoch, &before).await;
            let unchanged =
                p.password_epoch == m.password_epoch && p.factor_epoch == m.factor_epoch;
            let must_get_in = unchanged && !m.disabled && !p.disabled_meanwhile && m.totp.is_some();
            let may_get_in = unchanged && !m.disabled && m.totp.is_some();
            if must_get_in {
                if admitted.is_none() || r.location().as_deref() != Some("/account") {
                    return Err(fail(format!(
                        "an unchanged account's second step did not get in: {} {:?}",
                        r.status,
                        r.location()
                    )));
                }
                m.admitted_pending_steps += 1;
            } else if admitted.is_some() && !may_get_in {
                return Err(fail("a second step got in after the account changed"));
            }
        }
        Step::Enrol => {
            if m.disabled || m.totp.is_some() {
                return Ok(());
            }
            let b = app.browser();
            let before = sids(app, &m.uid).await;
            let p = b.login(&m.email, &m.password).await;
            if p.location().as_deref() != Some("/account") {
                return Err(fail(format!("sign-in to enrol answered {}", p.status)));
            }
            record_new(app, m, m.password_epoch, &before)
                .await
                .ok_or_else(|| fail("a password-only sign-in wrote no session"))?;
            let (secret, codes) = enrol(app, &b).await;
            let used = app.clock.now() as u64 / 30;
            m.totp = Some((secret, used, codes));
            m.factor_epoch += 1;
            // A passkey beside the app, as the security-keys page would store one.
            let id = format!("cred-{}", uuid::Uuid::new_v4().simple());
            let (u, cid, now) = (m.uid.clone(), id.clone(), app.clock.now());
            app.db
                .run_sync(move |c| {
                    let row = portcullis::db::repo::webauthn::StoredCredential {
                        id: cid,
                        user_id: u,
                        kind: portcullis::auth::mfa::webauthn::KIND_PASSKEY.into(),
                        name: "proptest passkey".into(),
                        credential: "{}".into(),
                        created_at: now,
                        last_used_at: None,
                    };
                    portcullis::db::repo::webauthn::insert(c, &row).map_err(DbError::from)
                })
                .expect("passkey row");
            m.passkey = Some(id);
            m.factor_epoch += 1;
        }
        Step::Passkey(own) => {
            let id = match (&m.passkey, own) {
                (Some(id), true) => id.clone(),
                _ => "cred-never-registered".into(),
            };
            let before = sids(app, &m.uid).await;
            let who = Entrant {
                user_id: &m.uid,
                ip: "192.0.2.7",
                user_agent: "proptest",
            };
            let got = gate::admit(
                &app.db,
                &st.sessions,
                &st.clock,
                who,
                Proof::Passkey { credential_id: &id },
                &ctx,
            )
            .await
            .expect("gate");
            let should = !m.disabled && own && m.passkey.is_some();
            if got.is_some() != should {
                return Err(fail(format!(
                    "passkey admission gave {got:?}, expected {should}"
                )));
            }
            record_new(app, m, m.password_epoch, &before).await;
        }
        Step::Disable | Step::Enable => {
            let disable = matches!(s, Step::Disable);
            st.admin
                .set_disabled(&Actor::Operator, &m.uid, disable, &ctx)
                .await
                .map_err(|e| fail(format!("set_disabled: {e}")))?;
            m.disabled = disable;
            if disable {
                m.sessions.clear();
                for p in &mut m.pending {
                    p.disabled_meanwhile = true;
                }
            }
        }
        Step::PasswordReset => {
            // The link /password/forgot mails, then the reset page as the owner uses it.
            if m.disabled {
                return Ok(());
            }
            let token = portcullis::domain::tokens::generate();
            let (u, h, now) = (
                m.uid.clone(),
                portcullis::domain::tokens::hash(&token),
                app.clock.now(),
            );
            app.db
                .run_sync(move |c| {
                    tokens::insert(c, &h, RESET, Some(&u), "", now, now + 3600)
                        .map_err(DbError::from)
                })
                .expect("reset token");
            let b = app.browser();
            let page = b.get(&format!("/password/reset?token={token}")).await;
            let new_password = format!("a fresh passphrase number {}", m.password_epoch + 1);
            let r = b
                .post(
                    "/password/reset",
                    &[
                        ("csrf_token", &page.csrf()),
                        ("token", &token),
                        ("new_password", &new_password),
                    ],
                )
                .await;
            if r.location().as_deref() != Some("/login?reset=1") {
                return Err(fail(format!("reset answered {} {}", r.status, r.body)));
            }
            m.password = new_password;
            m.password_epoch += 1;
            m.sessions.clear();
        }
        Step::RemoveFactors => {
            st.admin
                .reset_second_factors(&Actor::Operator, &m.uid, &ctx)
                .await
                .map_err(|e| fail(format!("reset_second_factors: {e}")))?;
            if m.totp.take().is_some() | m.passkey.take().is_some() {
                m.factor_epoch += 1;
            }
        }
        Step::Role(give) => {
            st.admin
                .set_role(&Actor::Operator, &m.uid, "admin", give, &ctx)
                .await
                .map_err(|e| fail(format!("set_role: {e}")))?;
        }
        Step::Revoke => {
            st.admin
                .revoke_sessions(&Actor::Operator, &m.uid, &ctx)
                .await
                .map_err(|e| fail(format!("revoke_sessions: {e}")))?;
            m.sessions.clear();
        }
    }
    Ok(())
}

/// The invariant, read from the session registry.
async fn check(app: &TestApp, m: &Model) -> Result<(), TestCaseError> {
    let live = sids(app, &m.uid).await;
    if m.disabled && !live.is_empty() {
        return Err(fail(format!(
            "{} session(s) of a disabled account",
            live.len()
        )));
    }
    for sid in &live {
        match m.sessions.get(sid) {
            None => {
                return Err(fail(format!(
                    "a session nobody signed in for (or that should have ended): {sid}"
                )));
            }
            Some(e) if *e != m.password_epoch => {
                return Err(fail(format!(
                    "a session from a sign-in that began before the latest password reset (epoch {e} < {})",
                    m.password_epoch
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

async fn run(app: &TestApp, steps: &[Step]) -> Result<usize, TestCaseError> {
    let n = NEXT_USER.fetch_add(1, Ordering::Relaxed);
    let email = format!("prop{n}@example.com");
    let uid = app.create_user(&email, &[]).await;
    let mut m = Model {
        uid,
        email,
        password: PASSWORD.into(),
        disabled: false,
        password_epoch: 0,
        factor_epoch: 0,
        totp: None,
        passkey: None,
        pending: Vec::new(),
        sessions: HashMap::new(),
        admitted_pending_steps: 0,
    };
    for (i, s) in steps.iter().enumerate() {
        apply(app, &mut m, *s)
            .await
            .map_err(|e| fail(format!("at step {i} ({s:?}): {e}")))?;
        check(app, &m)
            .await
            .map_err(|e| fail(format!("after step {i} ({s:?}): {e}")))?;
    }
    Ok(m.admitted_pending_steps)
}

#[test]
fn no_session_outlives_a_disable_or_predates_a_password_reset() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(spawn_app_with(Options {
        file: portcullis::config::FileConfig {
            login_attempts_per_ip_per_minute: Some(100_000),
            ..Default::default()
        },
    }));
    // An administrator who stays, so the last-admin rule never stands in the way.
    rt.block_on(app.create_user("standing-admin@example.com", &["admin"]));
    // The plain path first: an unchanged account's second step gets in.
    let plain = [Step::Enrol, Step::Password, Step::Finish(0)];
    assert_eq!(
        rt.block_on(run(&app, &plain)).map_err(|e| e.to_string()),
        Ok(1)
    );
    // Then random runs; a failure prints the shrunk sequence.
    // A fixed seed so a failure reproduces; PROP_SEED=<n> explores other sequences.
    let seed: u64 = std::env::var("PROP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5157_a7e5);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases: 32,
            failure_persistence: None,
            max_shrink_iters: 200,
            ..RunnerConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let admitted = std::sync::Mutex::new(0usize);
    // Each run starts enrolled, so pending second steps are common.
    let strategy = proptest::collection::vec(step(), 1..25).prop_map(|mut v| {
        v.insert(0, Step::Enrol);
        v
    });
    let result = runner.run(&strategy, |steps| {
        let n = rt.block_on(run(&app, &steps))?;
        *admitted.lock().unwrap() += n;
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, steps)) => {
            panic!("{why}\nminimal sequence (PROP_SEED={seed}): {steps:#?}")
        }
        Err(e) => panic!("{e}"),
    }
    assert!(
        *admitted.lock().unwrap() > 0,
        "no pending second step ever got in: the property holds vacuously"
    );
}
