//! The system of record: schema, migrations and one transaction per command, on embedded
//! SQLite (WAL, the default) or PostgreSQL. This is the only crate that writes SQL.
//!
//! A command is a function of an open [`db::Tx`] and the [`Keyring`]; [`Store::write`] runs
//! it in one atomic unit of work. On SQLite one writer thread groups many commands into one
//! commit (each in its own savepoint, every caller answered after the group is durable); on
//! PostgreSQL each command is its own transaction, retried on a serialization failure.

pub mod audience;
pub mod audit;
pub mod catalogue;
pub mod coupons;
pub mod db;
pub mod events;
pub mod history;
pub mod idempotency;
pub mod keyring;
pub mod keys;
pub mod legacy;
pub mod loyalty;
pub mod members;
mod migrate;
pub use migrate::schema_fingerprint;
pub mod orders;
pub mod outbox;
pub mod points;
pub mod returns;
pub mod segments;
pub mod stock;
pub mod tags;
pub mod tiers;
pub mod webhooks;

use db::{DbError, Dialect, Pool, Tx};
pub use keyring::Keyring;
use ronghe_domain::DomainError;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's mistake or a refused command: a 4xx.
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Key(#[from] keyring::KeyError),
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// A data folder holding `ronghe.db` (and, without `RONGHE_MASTER_KEY`, `master.key`).
    Sqlite(PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub location: Location,
    /// The master key as 64 hex characters; required on PostgreSQL.
    pub master_key: Option<String>,
    /// On PostgreSQL: use (and create) this schema instead of the default search path.
    pub pg_schema: Option<String>,
    /// Connections for readers (SQLite) or for everything (PostgreSQL).
    pub pool_size: usize,
}

impl StoreOptions {
    pub fn new(location: Location) -> Self {
        StoreOptions { location, master_key: None, pg_schema: None, pool_size: 8 }
    }
}

type Job = Box<dyn FnOnce(&mut dyn Tx) -> (bool, Box<dyn FnOnce(Result<(), DbError>) + Send>) + Send>;

enum Backend {
    Sqlite {
        writer: Mutex<mpsc::Sender<Job>>,
        readers: Pool<rusqlite::Connection>,
        /// Dropped with the store, which stops the checkpoint thread.
        _checkpointer: mpsc::Sender<()>,
    },
    Postgres {
        pool: Pool<db::PgConn>,
    },
}

use std::sync::Mutex;

struct Inner {
    backend: Backend,
    keyring: Arc<Keyring>,
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.dialect())
    }
}

/// How many commands the SQLite writer folds into one commit at most.
const GROUP_MAX: usize = 512;

impl Store {
    /// Open (and migrate) the store. Blocking: call it before serving, or in `spawn_blocking`.
    pub fn open(opts: &StoreOptions) -> Result<Store> {
        match &opts.location {
            Location::Sqlite(dir) => Self::open_sqlite(dir, opts),
            Location::Postgres(url) => Self::open_postgres(url, opts),
        }
    }

    fn open_sqlite(dir: &std::path::Path, opts: &StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
        let master = match &opts.master_key {
            Some(k) => Keyring::parse_master(k)?,
            None => Keyring::load_or_create_file(dir)?,
        };
        let keyring = Arc::new(Keyring::from_master(master));
        let path = dir.join("ronghe.db");
        let open = move |path: &std::path::Path, writer: bool| -> Result<rusqlite::Connection, DbError> {
            let c = rusqlite::Connection::open(path)?;
            // secure_delete overwrites freed content, so erased data does not linger in pages.
            c.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;
                 PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;
                 PRAGMA mmap_size = 17179869184; PRAGMA cache_size = -32768;",
            )?;
            if !writer {
                c.execute_batch("PRAGMA query_only = ON;")?;
            }
            c.set_prepared_statement_cache_capacity(256);
            Ok(c)
        };
        let mut wconn = open(&path, true)?;
        // Checkpoints run on their own thread, so that the writer never stalls copying the WAL.
        wconn.execute_batch("PRAGMA wal_autocheckpoint = 0;").map_err(DbError::from)?;
        migrate::sqlite(&mut wconn)?;
        check_fingerprint(&mut db::SqliteTx(&wconn), &keyring)?;

        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ronghe-sqlite-writer".into())
            .spawn({
                let wal = dir.join("ronghe.db-wal");
                move || sqlite_writer(wconn, rx, wal)
            })
            .map_err(|e| Error::Config(format!("cannot start the writer thread: {e}")))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let cconn = open(&path, true)?;
        std::thread::Builder::new()
            .name("ronghe-sqlite-checkpoint".into())
            .spawn(move || sqlite_checkpointer(cconn, stopped))
            .map_err(|e| Error::Config(format!("cannot start the checkpoint thread: {e}")))?;
        let rpath = path.clone();
        let readers = Pool::new(opts.pool_size.max(1), Box::new(move || open(&rpath, false)), |_| true);
        Ok(Store {
            inner: Arc::new(Inner {
                backend: Backend::Sqlite { writer: Mutex::new(tx), readers, _checkpointer: stop },
                keyring,
            }),
        })
    }

    fn open_postgres(url: &str, opts: &StoreOptions) -> Result<Store> {
        let master = match &opts.master_key {
            Some(k) => Keyring::parse_master(k)?,
            None => {
                return Err(Error::Config(
                    "RONGHE_MASTER_KEY is required with PostgreSQL: every node must share one master key".into(),
                ));
            }
        };
        let keyring = Arc::new(Keyring::from_master(master));
        let mut config: postgres::Config =
            url.parse().map_err(|e| Error::Config(format!("invalid database URL: {e}")))?;
        if let Some(schema) = &opts.pg_schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::Config("schema names are letters, digits and _".into()));
            }
            let mut c = config.connect(postgres::NoTls).map_err(DbError::from)?;
            c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).map_err(DbError::from)?;
            config.options(&format!("-c search_path={schema}"));
        }
        let connect_cfg = config.clone();
        let pool = Pool::new(
            opts.pool_size.max(2),
            Box::new(move || {
                let client = connect_cfg.connect(postgres::NoTls).map_err(DbError::from)?;
                Ok(db::PgConn { client, statements: Default::default() })
            }),
            |c: &db::PgConn| !c.client.is_closed(),
        );
        {
            let mut c = pool.get()?;
            let db::PgConn { client, statements } = &mut *c;
            migrate::postgres(client)?;
            let mut t = client.transaction().map_err(DbError::from)?;
            check_fingerprint(&mut db::PgTx { tx: &mut t, statements, writable: true }, &keyring)?;
            t.commit().map_err(DbError::from)?;
        }
        Ok(Store { inner: Arc::new(Inner { backend: Backend::Postgres { pool }, keyring }) })
    }

    pub fn dialect(&self) -> Dialect {
        match self.inner.backend {
            Backend::Sqlite { .. } => Dialect::Sqlite,
            Backend::Postgres { .. } => Dialect::Postgres,
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// Run a command in one atomic unit of work. The closure may run more than once on
    /// PostgreSQL (a retried serialization failure), so it must not have side effects
    /// outside the transaction.
    pub async fn write<R, F>(&self, f: F) -> Result<R>
    where
        F: Fn(&mut dyn Tx, &Keyring) -> Result<R> + Send + Sync + 'static,
        R: Send + 'static,
    {
        match &self.inner.backend {
            Backend::Sqlite { writer, .. } => {
                let (reply, answer) = tokio::sync::oneshot::channel::<Result<R>>();
                let keyring = self.inner.keyring.clone();
                let job: Job = Box::new(move |tx| {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(tx, &keyring)))
                        .unwrap_or_else(|_| Err(Error::Db(DbError::Other("a command panicked".into()))));
                    let ok = result.is_ok();
                    let done: Box<dyn FnOnce(Result<(), DbError>) + Send> = Box::new(move |commit| {
                        let _ = reply.send(match commit {
                            Ok(()) => result,
                            Err(e) => Err(e.into()),
                        });
                    });
                    (ok, done)
                });
                writer
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .send(job)
                    .map_err(|_| Error::Db(DbError::Other("the writer thread has stopped".into())))?;
                answer.await.map_err(|_| Error::Db(DbError::Other("the writer thread dropped a command".into())))?
            }
            Backend::Postgres { .. } => {
                let this = self.clone();
                tokio::task::spawn_blocking(move || this.write_blocking_pg(&f))
                    .await
                    .map_err(|e| Error::Db(DbError::Other(format!("command task failed: {e}"))))?
            }
        }
    }

    fn write_blocking_pg<R>(&self, f: &dyn Fn(&mut dyn Tx, &Keyring) -> Result<R>) -> Result<R> {
        let Backend::Postgres { pool } = &self.inner.backend else { unreachable!("postgres only") };
        let mut conn = pool.get()?;
        let db::PgConn { client, statements } = &mut *conn;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut t = client.transaction().map_err(DbError::from)?;
            let result = f(&mut db::PgTx { tx: &mut t, statements, writable: true }, &self.inner.keyring);
            match result {
                Ok(r) => match t.commit() {
                    Ok(()) => return Ok(r),
                    Err(e) => match DbError::from(e) {
                        DbError::Retry(_) | DbError::UniqueViolation(_) if attempt < 5 => continue,
                        e => return Err(e.into()),
                    },
                },
                // A concurrent command got there first: run again, it will see the other's effects.
                Err(Error::Db(DbError::Retry(_) | DbError::UniqueViolation(_))) if attempt < 5 => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Run a read-only query on a reader connection.
    pub async fn read<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut dyn Tx, &Keyring) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_blocking(f))
            .await
            .map_err(|e| Error::Db(DbError::Other(format!("query task failed: {e}"))))?
    }

    /// [`Store::read`] for point reads that take microseconds (lookups, one member): on
    /// SQLite they run on the calling thread, which saves two thread hand-offs per request;
    /// on PostgreSQL, whose reads wait on the network, they go to a blocking thread.
    pub async fn read_short<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut dyn Tx, &Keyring) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        match self.inner.backend {
            Backend::Sqlite { .. } => self.read_blocking(f),
            Backend::Postgres { .. } => self.read(f).await,
        }
    }

    pub fn read_blocking<R>(&self, f: impl FnOnce(&mut dyn Tx, &Keyring) -> Result<R>) -> Result<R> {
        match &self.inner.backend {
            Backend::Sqlite { readers, .. } => {
                let c = readers.get()?;
                // One read transaction, so that multi-statement reads see one snapshot.
                c.execute_batch("BEGIN").map_err(DbError::from)?;
                let r = f(&mut db::SqliteTx(&c), &self.inner.keyring);
                c.execute_batch("COMMIT").map_err(DbError::from)?;
                r
            }
            Backend::Postgres { pool } => {
                let mut c = pool.get()?;
                let db::PgConn { client, statements } = &mut *c;
                let mut t = client.build_transaction().read_only(true).start().map_err(DbError::from)?;
                let r = f(&mut db::PgTx { tx: &mut t, statements, writable: false }, &self.inner.keyring);
                t.commit().map_err(DbError::from)?;
                r
            }
        }
    }
}

/// A trivial query: the store answers.
pub fn ping(tx: &mut dyn Tx) -> Result<()> {
    tx.query_one("SELECT 1", &[])?;
    Ok(())
}

fn check_fingerprint(tx: &mut dyn Tx, keyring: &Keyring) -> Result<()> {
    let fp = keyring.fingerprint();
    match tx.query_one("SELECT value FROM meta WHERE key = 'key_fingerprint'", &[])? {
        Some(row) if row.string(0)? != fp => Err(Error::Config(
            "this database was written with another master key (RONGHE_MASTER_KEY): refusing to start; \
             every node must use the same key"
                .into(),
        )),
        Some(_) => Ok(()),
        None => {
            tx.exec("INSERT INTO meta (key, value) VALUES ('key_fingerprint', $1)", vals![fp])?;
            Ok(())
        }
    }
}

/// The SQLite writer: takes every command waiting, runs each in a savepoint inside one
/// transaction, commits once, then answers them all.
/// Above this size the writer folds the WAL in itself. The checkpoint thread's passive
/// checkpoints cannot finish while writes never pause (a bulk load, a long peak of events),
/// and a WAL that is never restarted grows without bound — 12 GB in minutes was seen.
const WAL_LIMIT_BYTES: u64 = 256 << 20;

fn sqlite_writer(conn: rusqlite::Connection, rx: mpsc::Receiver<Job>, wal: std::path::PathBuf) {
    let mut checked = std::time::Instant::now();
    while let Ok(first) = rx.recv() {
        let due = checked.elapsed() >= std::time::Duration::from_millis(100);
        if due {
            checked = std::time::Instant::now();
        }
        if due && std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT_BYTES) {
            // TRUNCATE copies every frame and empties the file; it waits for readers, so only
            // briefly here (a long read, such as an index build, just postpones it).
            let _ = conn.busy_timeout(std::time::Duration::from_millis(50));
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "checkpoint of a large WAL postponed");
            }
            let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
        }
        let mut batch = vec![first];
        while batch.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut done = Vec::with_capacity(batch.len());
        let begin = conn.execute_batch("BEGIN IMMEDIATE").map_err(DbError::from);
        if let Err(e) = begin {
            tracing::error!(error = %e, "cannot begin a write transaction");
            for job in batch {
                let mut failing = FailingTx;
                let (_, d) = job(&mut failing);
                d(Err(DbError::Other(e.to_string())));
            }
            continue;
        }
        for job in batch {
            let sp = conn.execute_batch("SAVEPOINT cmd");
            let (ok, d) = job(&mut db::SqliteTx(&conn));
            let end = if ok && sp.is_ok() {
                conn.execute_batch("RELEASE cmd")
            } else {
                conn.execute_batch("ROLLBACK TO cmd; RELEASE cmd")
            };
            if let Err(e) = end {
                tracing::error!(error = %e, "savepoint failed");
            }
            done.push(d);
        }
        let commit = conn.execute_batch("COMMIT").map_err(DbError::from);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for d in done {
            d(match &commit {
                Ok(()) => Ok(()),
                Err(e) => Err(DbError::Other(format!("commit failed: {e}"))),
            });
        }
    }
}

/// Copies committed WAL frames into the database file every 100 ms (PASSIVE: never blocks
/// the writer or readers); the writer reuses the WAL from its start once all is copied.
fn sqlite_checkpointer(conn: rusqlite::Connection, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(std::time::Duration::from_millis(100)) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "checkpoint failed");
        }
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// Stands in for a transaction that could not begin: every statement fails.
struct FailingTx;

impl Tx for FailingTx {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn exec(&mut self, _: &str, _: &[db::Value]) -> Result<u64, DbError> {
        Err(DbError::Other("no transaction".into()))
    }
    fn query(&mut self, _: &str, _: &[db::Value]) -> Result<Vec<db::Row>, DbError> {
        Err(DbError::Other("no transaction".into()))
    }
}
