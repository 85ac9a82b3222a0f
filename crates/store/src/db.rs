//! The thin SQL layer under every command: a [`Tx`] that runs parameterised SQL on SQLite or
//! PostgreSQL alike, a small connection pool, and the SQLite writer thread with group commit.
//!
//! SQL is written once with PostgreSQL's `$1` placeholders; on SQLite they become `?1`.
//! Booleans are stored as integers and times as Unix milliseconds, so the same statements
//! read and write the same values on both backends.

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use std::sync::{Condvar, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A failure of the database itself (not of the user's input).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unique constraint violated: {0}")]
    UniqueViolation(String),
    /// A serialization failure or deadlock: the whole transaction may be retried.
    #[error("transaction must be retried: {0}")]
    Retry(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                DbError::UniqueViolation(e.to_string())
            }
            _ => DbError::Other(e.to_string()),
        }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        // postgres::Error displays as "db error": spell out the server's message and code.
        let text = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => match std::error::Error::source(&e) {
                Some(s) => format!("{e}: {s}"),
                None => e.to_string(),
            },
        };
        match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => DbError::UniqueViolation(text),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
                DbError::Retry(text)
            }
            _ => DbError::Other(text),
        }
    }
}

/// A SQL value crossing the boundary in either direction.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v as i64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Build a parameter slice: `vals![id, 3i64, None::<String>]`.
#[macro_export]
macro_rules! vals {
    ($($v:expr),* $(,)?) => { &[$($crate::db::Value::from($v)),*][..] };
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, DbError> {
        self.0.get(i).ok_or_else(|| DbError::Other(format!("no column {i}")))
    }
    pub fn i64(&self, i: usize) -> Result<i64, DbError> {
        match self.at(i)? {
            Value::Int(v) => Ok(*v),
            v => Err(DbError::Other(format!("column {i}: expected an integer, got {v:?}"))),
        }
    }
    pub fn opt_i64(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.i64(i).map(Some),
        }
    }
    pub fn f64(&self, i: usize) -> Result<f64, DbError> {
        match self.at(i)? {
            Value::Real(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            v => Err(DbError::Other(format!("column {i}: expected a number, got {v:?}"))),
        }
    }
    /// A text column, borrowed.
    pub fn str(&self, i: usize) -> Result<&str, DbError> {
        match self.at(i)? {
            Value::Text(v) => Ok(v),
            v => Err(DbError::Other(format!("column {i}: expected text, got {v:?}"))),
        }
    }
    pub fn string(&self, i: usize) -> Result<String, DbError> {
        match self.at(i)? {
            Value::Text(v) => Ok(v.clone()),
            v => Err(DbError::Other(format!("column {i}: expected text, got {v:?}"))),
        }
    }
    pub fn opt_string(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.string(i).map(Some),
        }
    }
    pub fn blob(&self, i: usize) -> Result<Vec<u8>, DbError> {
        match self.at(i)? {
            Value::Blob(v) => Ok(v.clone()),
            v => Err(DbError::Other(format!("column {i}: expected bytes, got {v:?}"))),
        }
    }
    pub fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.blob(i).map(Some),
        }
    }
}

/// One open transaction. Every command of the store is a function of `&mut dyn Tx`.
pub trait Tx {
    fn dialect(&self) -> Dialect;
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;

    fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Stream the rows to `each` without holding them all (scans of millions of rows).
    fn query_each(&mut self, sql: &str, params: &[Value], each: &mut dyn FnMut(&Row)) -> Result<(), DbError> {
        for r in self.query(sql, params)? {
            each(&r);
        }
        Ok(())
    }

    /// ` FOR UPDATE` on PostgreSQL (row locks under READ COMMITTED); nothing on SQLite,
    /// whose single writer already serialises every write.
    fn for_update(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

// ---------- SQLite ----------

pub(crate) struct SqliteTx<'a>(pub &'a rusqlite::Connection);

fn sqlite_sql(sql: &str) -> std::borrow::Cow<'_, str> {
    if sql.contains('$') { std::borrow::Cow::Owned(sql.replace('$', "?")) } else { std::borrow::Cow::Borrowed(sql) }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut stmt = self.0.prepare_cached(&sqlite_sql(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }

    fn query_each(&mut self, sql: &str, params: &[Value], each: &mut dyn FnMut(&Row)) -> Result<(), DbError> {
        let mut stmt = self.0.prepare_cached(&sqlite_sql(sql))?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut row = Row(Vec::with_capacity(n));
        while let Some(r) = rows.next()? {
            row.0.clear();
            for i in 0..n {
                row.0.push(sqlite_value(r.get_ref(i)?));
            }
            each(&row);
        }
        Ok(())
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.0.prepare_cached(&sqlite_sql(sql))?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                vals.push(sqlite_value(r.get_ref(i)?));
            }
            out.push(Row(vals));
        }
        Ok(out)
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(v) => Value::Int(v),
        ValueRef::Real(v) => Value::Real(v),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

// ---------- PostgreSQL ----------

/// A pooled PostgreSQL connection with its prepared statements: each SQL text is prepared
/// once per connection, which saves a round trip and a plan per statement.
pub(crate) struct PgConn {
    pub client: postgres::Client,
    pub statements: std::collections::HashMap<String, postgres::Statement>,
}

/// A PostgreSQL transaction; `writable` is false for read-only ones, which take no row locks.
pub(crate) struct PgTx<'a, 'b> {
    pub tx: &'a mut postgres::Transaction<'b>,
    pub statements: &'a mut std::collections::HashMap<String, postgres::Statement>,
    pub writable: bool,
}

impl PgTx<'_, '_> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql)?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT2 => (*i as i16).to_sql(ty, out),
                Type::INT4 => (*i as i32).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Real(f) => f.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn pg_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn pg_row(row: &postgres::Row) -> Result<Row, DbError> {
    let mut vals = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let ty = col.type_();
        let v = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?.map(|v| Value::Int(v.into()))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?.map(|v| Value::Int(v.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?.map(|v| Value::Int(v.into()))
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)?.map(Value::Real)
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob)
        } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::NAME || *ty == Type::BPCHAR {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else {
            return Err(DbError::Other(format!("column {} has unsupported type {ty}", col.name())));
        };
        vals.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(vals))
}

impl Tx for PgTx<'_, '_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let st = self.statement(sql)?;
        Ok(self.tx.execute(&st, &pg_params(params))?)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let st = self.statement(sql)?;
        self.tx.query(&st, &pg_params(params))?.iter().map(pg_row).collect()
    }

    fn query_each(&mut self, sql: &str, params: &[Value], each: &mut dyn FnMut(&Row)) -> Result<(), DbError> {
        use postgres::fallible_iterator::FallibleIterator;
        let st = self.statement(sql)?;
        let mut rows = self.tx.query_raw(&st, pg_params(params))?;
        while let Some(r) = rows.next()? {
            each(&pg_row(&r)?);
        }
        Ok(())
    }

    fn for_update(&self) -> &'static str {
        if self.writable { " FOR UPDATE" } else { "" }
    }
}

// ---------- pool ----------

type Connect<C> = Box<dyn Fn() -> Result<C, DbError> + Send + Sync>;

/// A small blocking pool: connections are made on demand up to `max` and reused.
pub(crate) struct Pool<C: Send + 'static> {
    idle: Mutex<(Vec<C>, usize)>,
    freed: Condvar,
    max: usize,
    connect: Connect<C>,
    healthy: fn(&C) -> bool,
}

pub(crate) struct Pooled<'a, C: Send + 'static> {
    pool: &'a Pool<C>,
    conn: Option<C>,
}

impl<C: Send + 'static> std::ops::Deref for Pooled<'_, C> {
    type Target = C;
    fn deref(&self) -> &C {
        self.conn.as_ref().expect("present until drop")
    }
}
impl<C: Send + 'static> std::ops::DerefMut for Pooled<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("present until drop")
    }
}

impl<C: Send + 'static> Drop for Pooled<'_, C> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            let mut g = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if (self.pool.healthy)(&c) {
                g.0.push(c);
            } else {
                g.1 -= 1;
            }
            self.pool.freed.notify_one();
        }
    }
}

impl<C: Send + 'static> Drop for Pool<C> {
    fn drop(&mut self) {
        // A PostgreSQL client closes itself by blocking on its own runtime, which panics on an
        // async worker thread: let a plain thread drop the idle connections.
        let idle = std::mem::take(&mut self.idle.get_mut().unwrap_or_else(|e| e.into_inner()).0);
        if !idle.is_empty() {
            let _ = std::thread::Builder::new().name("ronghe-pool-close".into()).spawn(move || drop(idle));
        }
    }
}

impl<C: Send + 'static> Pool<C> {
    pub fn new(max: usize, connect: Connect<C>, healthy: fn(&C) -> bool) -> Self {
        Pool { idle: Mutex::new((Vec::new(), 0)), freed: Condvar::new(), max, connect, healthy }
    }

    pub fn get(&self) -> Result<Pooled<'_, C>, DbError> {
        let mut g = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(c) = g.0.pop() {
                return Ok(Pooled { pool: self, conn: Some(c) });
            }
            if g.1 < self.max {
                g.1 += 1;
                drop(g);
                return match (self.connect)() {
                    Ok(c) => Ok(Pooled { pool: self, conn: Some(c) }),
                    Err(e) => {
                        self.idle.lock().unwrap_or_else(|e| e.into_inner()).1 -= 1;
                        Err(e)
                    }
                };
            }
            g = self.freed.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}
