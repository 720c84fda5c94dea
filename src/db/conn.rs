//! Connections and the pool: a scheme-dispatching r2d2 manager (so the backend's own
//! connection error reaches the operator), SQLite pragmas per connection, and `Db::run`.

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, CustomizeConnection, ManageConnection, Pool};
use diesel::{Connection, PgConnection, SqliteConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{DbBackend, backend_of, sqlite_path};
use crate::domain::audit::ChainKey;

#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

pub struct Manager {
    url: String,
    backend: DbBackend,
}

/// How long a connection that just served a closure without error is taken to be alive
/// without the check-out `SELECT 1`. Under load a connection comes back to the pool
/// within milliseconds, so the check was a quarter of a sign-in's round trips to
/// PostgreSQL; a connection idle for longer (or whose last use failed) is still checked.
/// A server that goes away inside the window fails that connection's next use with a
/// 503 (`DbError::is_unavailable`) and sends its next check-out through the check,
/// which replaces it — the same failure a check-out check cannot prevent either when
/// the server goes away just after it; after a restart shorter than the window, each
/// connection used just before it fails once.
const TRUSTED_FOR: Duration = Duration::from_secs(2);

/// A pooled connection and when it last served a closure without error.
pub struct Pooled {
    conn: AnyConnection,
    trusted_until: Option<Instant>,
}

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<Pooled, Self::Error> {
        let conn = match self.backend {
            DbBackend::Postgres => {
                PgConnection::establish(&self.url).map(AnyConnection::Postgresql)
            }
            DbBackend::Sqlite => {
                SqliteConnection::establish(sqlite_path(&self.url)).map(AnyConnection::Sqlite)
            }
        }?;
        Ok(Pooled {
            conn,
            trusted_until: None,
        })
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), Self::Error> {
        if pooled.trusted_until.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        pooled
            .conn
            .batch_execute("SELECT 1")
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        match &mut pooled.conn {
            AnyConnection::Postgresql(c) => r2d2::R2D2Connection::is_broken(c),
            AnyConnection::Sqlite(c) => r2d2::R2D2Connection::is_broken(c),
        }
    }
}

impl Pooled {
    /// Runs `f` on the connection, trusting it for a while if `f` succeeded and not at
    /// all if it failed (whatever the failure: a closure's error type says nothing
    /// about the connection, so any error sends the next check-out through the check).
    fn run<T, E>(&mut self, f: impl FnOnce(&mut AnyConnection) -> Result<T, E>) -> Result<T, E> {
        self.trusted_until = None;
        let result = f(&mut self.conn);
        if result.is_ok() {
            self.trusted_until = Some(Instant::now() + TRUSTED_FOR);
        }
        result
    }
}

/// Per-connection SQLite settings: SQLite turns foreign keys off on every new connection.
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<Pooled, diesel::ConnectionError> for SqlitePragmas {
    fn on_acquire(&self, pooled: &mut Pooled) -> Result<(), diesel::ConnectionError> {
        if let AnyConnection::Sqlite(c) = &mut pooled.conn {
            c.batch_execute("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            // Only if our busy handler could not be installed: SQLite's own is slower
            // under contention but far better than none.
            if !super::sqlite_busy::installed() {
                c.batch_execute("PRAGMA busy_timeout = 5000;")
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Pool(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("database task failed: {0}")]
    Blocking(String),
}

impl DbError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, DbError::Query(diesel::result::Error::NotFound))
    }

    /// The database could not be reached: no connection from the pool, or the one in
    /// hand was lost (the server stopped or restarted mid-use). A 503, not a 500.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        matches!(
            self,
            DbError::Pool(_)
                | DbError::Query(E::DatabaseError(
                    K::ClosedConnection | K::UnableToSendCommand,
                    _
                ))
        )
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Bytes SQLite may keep across every connection before recycling cached pages. The
/// pages that matter stay hot within it (the rightmost leaves the audit log appends
/// to, the small account and session tables); the 2 MiB this was before filled with
/// pages written once under a token flood, 1 MiB more of the server's peak.
const SQLITE_HEAP_LIMIT: i64 = 1 << 20;

#[derive(Clone)]
pub struct Db {
    // Dropped before `workers` (declaration order): the last handle first closes the
    // pool's idle connections, then waits for the worker threads.
    pool: Pool<Manager>,
    backend: DbBackend,
    chain_key: Option<Arc<ChainKey>>,
    // Only held: its drop is what matters.
    _workers: Arc<Workers>,
}

/// r2d2 opens every connection on its worker threads, also in the background to keep
/// `min_idle` connections after a check-out, and a connection that one of them opens
/// after the pool is gone is closed there too. A process that exits meanwhile runs
/// libpq's and OpenSSL's exit handlers while that thread is inside them: over TLS the
/// process died of SIGSEGV after printing its answer (diesel-rs/diesel#3441). So the
/// pool's threads are ours, and when the last `Db` handle goes (every command, and the
/// server, drops its handles before the process exits: `main.rs`), the drop waits until
/// each thread has finished what it was doing. Bounded: a connection attempt that hangs
/// longer than `DRAIN_TIMEOUT` is left behind.
struct Workers {
    threads: Arc<scheduled_thread_pool::ScheduledThreadPool>,
}

const WORKER_THREADS: usize = 3;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl Workers {
    fn new() -> Self {
        Self {
            threads: Arc::new(
                scheduled_thread_pool::ScheduledThreadPool::builder()
                    .num_threads(WORKER_THREADS)
                    .thread_name_pattern("r2d2-worker-{}")
                    .build(),
            ),
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // One job per thread, each held at a barrier until all are running: then every
        // thread has finished its previous job. (Jobs that r2d2 scheduled for later find
        // the pool gone and return without touching a connection.)
        let gate = Arc::new(std::sync::Barrier::new(WORKER_THREADS));
        let (done, arrived) = std::sync::mpsc::channel();
        for _ in 0..WORKER_THREADS {
            let (gate, done) = (gate.clone(), done.clone());
            self.threads.execute(move || {
                gate.wait();
                let _ = done.send(());
            });
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        for _ in 0..WORKER_THREADS {
            let left = deadline.saturating_duration_since(Instant::now());
            if arrived.recv_timeout(left).is_err() {
                tracing::warn!("a database pool thread is still busy; not waiting for it");
                return;
            }
        }
    }
}

impl Db {
    /// Opens the pool and checks one connection, so a wrong URL or a stopped server is
    /// reported at start with the backend's own message.
    pub fn connect(url: &str) -> Result<Self, DbError> {
        let backend = backend_of(url).map_err(DbError::Pool)?;
        if backend == DbBackend::Sqlite {
            let path = std::path::Path::new(sqlite_path(url));
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                crate::files::create_private_dir(parent).map_err(|e| {
                    DbError::Pool(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            // Every connection waits up to 5 s for another's write lock, in short steps
            // (`sqlite_busy`); no `PRAGMA busy_timeout`, which would replace that.
            super::sqlite_busy::install_for_new_connections();
            // WAL persists in the file; readers then never block the writer.
            let mut c = SqliteConnection::establish(sqlite_path(url))
                .map_err(|e| DbError::Pool(e.to_string()))?;
            c.batch_execute("PRAGMA journal_mode = WAL;")?;
            // One bound on SQLite's memory for the whole process (this pragma is not per
            // connection): past it, page caches recycle their pages instead of growing.
            // Otherwise each pooled connection keeps up to 2 MB of pages it once wrote
            // (audit inserts under a token flood filled them all); the kernel's file
            // cache serves a page again at the cost of a copy.
            c.batch_execute(&format!("PRAGMA soft_heap_limit = {SQLITE_HEAP_LIMIT};"))?;
        }
        let max = match backend {
            DbBackend::Sqlite => 8,
            DbBackend::Postgres => 16,
        };
        let workers = Arc::new(Workers::new());
        let pool = Pool::builder()
            .thread_pool(workers.threads.clone())
            .max_size(max)
            .min_idle(Some(1))
            .connection_timeout(std::time::Duration::from_secs(5))
            .connection_customizer(Box::new(SqlitePragmas))
            .build(Manager {
                url: url.to_string(),
                backend,
            })
            .map_err(|e| DbError::Pool(e.to_string()))?;
        Ok(Self {
            pool,
            backend,
            chain_key: None,
            _workers: workers,
        })
    }

    /// The audit chain's key, for every closure this handle runs (see `chain_key`).
    pub fn with_chain_key(mut self, key: ChainKey) -> Self {
        self.chain_key = Some(Arc::new(key));
        self
    }

    /// Connections open and idle (for /metrics).
    pub fn pool_state(&self) -> r2d2::State {
        self.pool.state()
    }

    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    /// Synchronous access, for the CLI and start-up.
    pub fn run_sync<T, E>(&self, f: impl FnOnce(&mut AnyConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| E::from(DbError::Pool(e.to_string())))?;
        with_chain_key(self.chain_key.clone(), || {
            with_after_success(|| conn.run(f))
        })
    }

    /// The most connections the pool opens.
    pub fn max_connections(&self) -> u32 {
        self.pool.max_size()
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<T, E>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let key = self.chain_key.clone();
        match tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .get()
                .map_err(|e| E::from(DbError::Pool(e.to_string())))?;
            with_chain_key(key, || with_after_success(|| conn.run(f)))
        })
        .await
        {
            Ok(r) => r,
            Err(e) => Err(E::from(DbError::Blocking(e.to_string()))),
        }
    }

    /// Used by `/readyz`.
    pub async fn ping(&self) -> bool {
        self.run(|c| c.batch_execute("SELECT 1").map_err(DbError::from))
            .await
            .is_ok()
    }
}

thread_local! {
    static AFTER_SUCCESS: std::cell::RefCell<Vec<Box<dyn FnOnce()>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Asks for `f` to run once the closure `Db::run` is running has returned `Ok` (its
/// transaction committed), and not at all if it fails. For what must follow a commit and
/// cannot be forgotten by a caller: the outbox wakes the mail worker this way whenever a
/// message is queued. Outside a `Db` closure `f` runs at once.
pub fn after_success(f: impl FnOnce() + 'static) {
    let inside = AFTER_SUCCESS.with(|h| {
        h.try_borrow_mut()
            .map(|mut h| h.push(Box::new(f)))
            .map_err(|_| ())
    });
    debug_assert!(inside.is_ok(), "after_success is not re-entrant");
}

fn with_after_success<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    // Hooks of an earlier closure that panicked on this thread must not run now.
    AFTER_SUCCESS.with(|h| h.borrow_mut().clear());
    let result = f();
    let hooks = AFTER_SUCCESS.with(|h| std::mem::take(&mut *h.borrow_mut()));
    if result.is_ok() {
        for hook in hooks {
            hook();
        }
    }
    result
}

thread_local! {
    static CHAIN_KEY: std::cell::RefCell<Option<Arc<ChainKey>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with the handle's audit chain key in reach of `chain_key`. The key travels
/// with the pool rather than through every audited function's arguments: every closure
/// run through a `Db` (each audited write, on every path) chains with it, and a new path
/// cannot forget to pass it.
fn with_chain_key<T>(key: Option<Arc<ChainKey>>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Arc<ChainKey>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = self.0.take();
            CHAIN_KEY.with(|k| *k.borrow_mut() = old);
        }
    }
    let _restore = Restore(CHAIN_KEY.with(|k| k.replace(key)));
    f()
}

/// The audit chain key of the `Db` whose closure runs on this thread; `None` outside
/// one, or for a handle opened without the master key.
pub fn chain_key() -> Option<Arc<ChainKey>> {
    CHAIN_KEY.with(|k| k.borrow().clone())
}

/// Serialises transactions that must see each other's writes (one winner across
/// instances). On PostgreSQL a transaction-scoped advisory lock; SQLite already allows
/// a single writer at a time, and every caller writes before it reads.
pub fn serialize(conn: &mut AnyConnection, key: i64) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    if let AnyConnection::Postgresql(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(key)
            .execute(pg)?;
    }
    Ok(())
}

/// Advisory-lock keys, one per serialised operation.
pub mod locks {
    pub const FIRST_ADMIN: i64 = 0x706f_7274_0001;
    /// Appends to the audit hash chain: one writer at a time across instances.
    pub const AUDIT_CHAIN: i64 = 0x706f_7274_0002;
    /// Creating the OIDC signing key: one key, whichever instance comes first.
    pub const SIGNING_KEY: i64 = 0x706f_7274_0003;
    /// Every admin write on a user (`auth::accounts::admin::target`): the last-admin rule must
    /// see the other admin's concurrent demotion or disabling, on any instance.
    pub const ADMIN_SET: i64 = 0x706f_7274_0a01;
    /// Every change to groups (`auth::access::groups`): two moves at once on two
    /// instances must not each pass the cycle check and together close a loop.
    pub const GROUP_TREE: i64 = 0x706f_7274_0a02;
}

/// Runs `f` in a write transaction, or directly when the caller already opened one.
pub fn ensure_write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    // Inside the caller's transaction `f` is part of it, on both backends: a savepoint
    // on PostgreSQL would cost two more statements in every audited change, and an
    // error in `f` aborts the caller's transaction anyway (every caller passes it on).
    let depth = match conn {
        AnyConnection::Postgresql(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?
        }
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?
        }
    };
    if depth.is_some() {
        f(conn)
    } else {
        write_transaction(conn, f)
    }
}

/// A transaction that will write. On SQLite it starts with `BEGIN IMMEDIATE`, taking
/// the write lock up front: a deferred transaction that reads and then writes fails at
/// once with SQLITE_BUSY when another connection wrote meanwhile (the busy timeout does
/// not apply to that upgrade). PostgreSQL uses an ordinary transaction.
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    if !matches!(conn, AnyConnection::Sqlite(_)) {
        return conn.transaction(f);
    }
    fn inner(conn: &mut AnyConnection) -> &mut SqliteConnection {
        match conn {
            AnyConnection::Sqlite(c) => c,
            AnyConnection::Postgresql(_) => unreachable!("checked above"),
        }
    }
    AnsiTransactionManager::begin_transaction_sql(inner(conn), "BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(v) => {
            if let Err(e) = AnsiTransactionManager::commit_transaction(inner(conn)) {
                let _ = AnsiTransactionManager::rollback_transaction(inner(conn));
                return Err(e.into());
            }
            Ok(v)
        }
        Err(e) => {
            let _ = AnsiTransactionManager::rollback_transaction(inner(conn));
            Err(e)
        }
    }
}
