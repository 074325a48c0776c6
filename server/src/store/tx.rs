//! The narrow interface every engine implements, so that each contract operation is written once.
//!
//! An operation sees a [`Tx`]: fetch rows, execute a statement, lock a user, a participation or
//! an evaluation. It writes its SQL once, with PostgreSQL's `$n` placeholders; on SQLite they are
//! rewritten in one place into anonymous ones (see [`positional`] for why). Values go in as
//! [`Arg`]s and come back out of a [`Row`] decoded by the engine's own driver, so a column's type
//! is checked as strictly as in engine-specific code. The few fragments of SQL the engines spell
//! differently are [`Dialect`]'s.
//!
//! An [`Engine`] runs operations: in a transaction of its own choosing (SQLite: the writer's next
//! group commit, PostgreSQL: a pooled transaction run again on a deadlock or a serialization
//! failure), publishing the events an operation collected once it is committed. Everything else an
//! engine does is its own: SQLite's writer thread, PostgreSQL's pool, retries, LISTEN/NOTIFY and
//! node beats, and each engine's group commit of answer saves.
//!
//! Locks: on PostgreSQL they are row locks held to the end of the transaction, taken in the same
//! order by every operation (user, then evaluation, then participation) so that nodes never act
//! on the same old state; on SQLite they are nothing, because the single writer already runs each
//! operation's read-check-write inside its own transaction.

use super::{ConnectionChange, Counted, NewAnswer, Session, SignInAttempt};
use crate::error::{Error, Result};
use crate::live::event::Event;
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use invigil_protocol::{SaveAck, User};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Postgres, Row as _, Sqlite};

/// A value bound to a placeholder. `None` binds a typed NULL (PostgreSQL needs its type).
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text.
    Text(Option<String>),
    /// A 64-bit integer (times, revisions, counts).
    Int(Option<i64>),
    /// A boolean (SQLite stores it as 0 or 1).
    Bool(Option<bool>),
    /// Bytes (content digests).
    Bytes(Option<Vec<u8>>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Arg::Bytes(Some(v.to_vec()))
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(Some(v))
    }
}

/// The values of a statement's placeholders, `$1` first.
pub type Args = Vec<Arg>;

/// The arguments of a statement: `args![a, b]` is `vec![Arg::from(a), Arg::from(b)]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::tx::Arg::from($value)),*]
    };
}
pub(crate) use args;

/// A row fetched by either engine, decoded by that engine's driver.
pub enum Row {
    /// From SQLite.
    Sqlite(SqliteRow),
    /// From PostgreSQL.
    Postgres(PgRow),
}

/// A Rust type both drivers decode a column into.
pub trait Column:
    for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}

impl<T> Column for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

impl Row {
    /// The column `name`, decoded.
    pub fn get<T: Column>(&self, name: &str) -> Result<T> {
        Ok(match self {
            Row::Sqlite(row) => row.try_get(name)?,
            Row::Postgres(row) => row.try_get(name)?,
        })
    }

    /// The first column, decoded (a scalar query's value).
    pub fn first<T: Column>(&self) -> Result<T> {
        Ok(match self {
            Row::Sqlite(row) => row.try_get(0)?,
            Row::Postgres(row) => row.try_get(0)?,
        })
    }
}

/// A row a transaction locks until it ends.
#[derive(Debug, Clone, Copy)]
pub enum Lock<'a> {
    /// A user (by id): their sign-ins, revocations and connection changes run one at a time.
    User(&'a str),
    /// An evaluation (by id): changes to it run one at a time.
    Evaluation(&'a str),
    /// A participation (evaluation id, user id), if it exists: saves, submits, blocks and
    /// unblocks of it run one at a time.
    Participation(&'a str, &'a str),
}

/// Which engine a statement runs on, for the few fragments the two spell differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// A table of the elements of the JSON array of strings bound to `param`, in order, as a
    /// `FROM` item named `alias` with the columns `value` (the string) and `key` (its position):
    /// a whole list of ids in one bound value, whatever its length.
    pub fn json_list(self, param: &str, alias: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_each({param}) AS {alias}"),
            Dialect::Postgres => format!(
                "json_array_elements_text(CAST({param} AS json)) WITH ORDINALITY AS {alias} (value, key)"
            ),
        }
    }
}

/// A transaction (or, for reads, a connection) as operations see it.
#[async_trait]
pub trait Tx: Send {
    /// The engine's dialect.
    fn dialect(&self) -> Dialect;
    /// Every row of a query.
    async fn fetch_all(&mut self, sql: &str, args: Args) -> Result<Vec<Row>>;
    /// The first row of a query, if any.
    async fn fetch_optional(&mut self, sql: &str, args: Args) -> Result<Option<Row>>;
    /// Runs a statement; returns how many rows it changed.
    async fn execute(&mut self, sql: &str, args: Args) -> Result<u64>;
    /// Locks a row until the transaction ends (nothing on an engine with one writer).
    async fn lock(&mut self, what: Lock<'_>) -> Result<()>;
}

impl dyn Tx + '_ {
    /// The one row a query must return.
    pub async fn fetch_one(&mut self, sql: &str, args: Args) -> Result<Row> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or_else(|| Error::internal(format!("a query returned no row: {sql}")))
    }

    /// The first column of every row.
    pub async fn scalars<T: Column>(&mut self, sql: &str, args: Args) -> Result<Vec<T>> {
        self.fetch_all(sql, args)
            .await?
            .iter()
            .map(Row::first)
            .collect()
    }
}

/// The database's error of a failed statement, if that is what failed.
fn database_error(error: &Error) -> Option<&(dyn sqlx::error::DatabaseError + 'static)> {
    let Error::Internal(e) = error else {
        return None;
    };
    e.downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
}

/// Whether a statement failed on a unique constraint (a name taken, a row inserted twice).
pub fn is_unique_violation(error: &Error) -> bool {
    database_error(error).is_some_and(|d| d.is_unique_violation())
}

/// A deadlock or a serialization failure (PostgreSQL): the transaction can simply run again.
pub fn is_retryable(error: &Error) -> bool {
    database_error(error)
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40001" || code == "40P01")
}

/// Binds `args` to a query of either driver.
macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
                Arg::Bytes(v) => query.bind(v),
            };
        }
        query
    }};
}

/// The statement's `$n` placeholders made anonymous `?`s, in the order they appear, with the
/// arguments put in that order (repeated where a placeholder is): the one place where SQLite's
/// SQL differs from PostgreSQL's.
///
/// SQLite binds `$n` by number, but sqlx asks SQLite for every placeholder's name when it binds,
/// and SQLite finds a name by walking the statement's list of names: binding a statement of n
/// named placeholders costs n² steps. A run of a thousand saves binds eight thousand: a run took
/// most of a second that way, against a few milliseconds with anonymous placeholders, which have
/// no name to look up.
fn positional(sql: &str, args: Args) -> Result<(String, Args)> {
    let mut text = String::with_capacity(sql.len());
    let mut ordered = Vec::with_capacity(args.len());
    let mut quoted = false;
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        let digits = sql[i + c.len_utf8()..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if c != '$' || quoted || digits == 0 {
            text.push(c);
            continue;
        }
        let number: usize = sql[i + 1..i + 1 + digits]
            .parse()
            .map_err(Error::internal)?;
        let arg = number
            .checked_sub(1)
            .and_then(|n| args.get(n))
            .ok_or_else(|| Error::internal(format!("${number} has no argument: {sql}")))?;
        ordered.push(arg.clone());
        text.push('?');
        for _ in 0..digits {
            chars.next();
        }
    }
    Ok((text, ordered))
}

#[async_trait]
impl Tx for SqliteConnection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn fetch_all(&mut self, sql: &str, args: Args) -> Result<Vec<Row>> {
        let (sql, args) = positional(sql, args)?;
        let rows = bind_all!(sqlx::query(&sql), args).fetch_all(self).await?;
        Ok(rows.into_iter().map(Row::Sqlite).collect())
    }

    async fn fetch_optional(&mut self, sql: &str, args: Args) -> Result<Option<Row>> {
        let (sql, args) = positional(sql, args)?;
        let row = bind_all!(sqlx::query(&sql), args)
            .fetch_optional(self)
            .await?;
        Ok(row.map(Row::Sqlite))
    }

    async fn execute(&mut self, sql: &str, args: Args) -> Result<u64> {
        let (sql, args) = positional(sql, args)?;
        let done = bind_all!(sqlx::query(&sql), args).execute(self).await?;
        Ok(done.rows_affected())
    }

    async fn lock(&mut self, _what: Lock<'_>) -> Result<()> {
        // The writer runs one operation at a time inside its transaction: nothing can change
        // between an operation's read and its write.
        Ok(())
    }
}

#[async_trait]
impl Tx for PgConnection {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn fetch_all(&mut self, sql: &str, args: Args) -> Result<Vec<Row>> {
        let rows = bind_all!(sqlx::query(sql), args).fetch_all(self).await?;
        Ok(rows.into_iter().map(Row::Postgres).collect())
    }

    async fn fetch_optional(&mut self, sql: &str, args: Args) -> Result<Option<Row>> {
        let row = bind_all!(sqlx::query(sql), args)
            .fetch_optional(self)
            .await?;
        Ok(row.map(Row::Postgres))
    }

    async fn execute(&mut self, sql: &str, args: Args) -> Result<u64> {
        let done = bind_all!(sqlx::query(sql), args).execute(self).await?;
        Ok(done.rows_affected())
    }

    async fn lock(&mut self, what: Lock<'_>) -> Result<()> {
        // FOR NO KEY UPDATE: it keeps other writers of the row out without blocking the inserts
        // of rows that refer to it (answers, sessions, audit entries).
        match what {
            Lock::User(id) => {
                self.execute(
                    "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
                    args![id],
                )
                .await?;
            }
            Lock::Evaluation(id) => {
                let found = self
                    .fetch_optional(
                        "SELECT 1 FROM evaluations WHERE id = $1 FOR NO KEY UPDATE",
                        args![id],
                    )
                    .await?;
                if found.is_none() {
                    return Err(Error::not_found(format!("There is no evaluation `{id}`.")));
                }
            }
            Lock::Participation(evaluation_id, user_id) => {
                self.execute(
                    "SELECT 1 FROM participations WHERE evaluation_id = $1 AND user_id = $2
                     FOR NO KEY UPDATE",
                    args![evaluation_id, user_id],
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// A write operation: it runs in a transaction with its arguments, collecting the events its
/// commit publishes. A plain function (no captures), so that an engine may run it again.
pub type Write<A, T> =
    for<'c> fn(&'c mut dyn Tx, &'c mut Vec<Event>, &'c A) -> BoxFuture<'c, Result<T>>;

/// A read: it runs on a connection of the engine's, seeing committed data.
pub type Read<A, T> = for<'c> fn(&'c mut dyn Tx, &'c A) -> BoxFuture<'c, Result<T>>;

/// How an engine runs operations, and what is truly its own. The contract's operations are
/// written once over it: [`crate::store::Store`] is implemented for every engine.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Runs `op` in a transaction; once it is committed, publishes its events (in commit order)
    /// and answers. A refusal rolls the operation back, and publishes nothing.
    async fn write<A, T>(&self, args: A, op: Write<A, T>) -> Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static;

    /// Runs `op` on a connection for reads.
    async fn read<A, T>(&self, args: &A, op: Read<A, T>) -> Result<T>
    where
        A: Send + Sync + ?Sized,
        T: Send + 'static;

    /// Stores a save durably, or refuses it with the contract's code: each engine groups the
    /// saves that arrive together into one commit its own way.
    async fn save_answer(&self, student: &User, answer: NewAnswer) -> Result<SaveAck>;

    /// Notes a student's connection opening or closing: a single node records its hub's
    /// transitions, a cluster every connection.
    async fn presence(&self, session: &Session, change: ConnectionChange) -> Result<()>;

    /// See [`crate::store::Store::socket_opened`].
    async fn socket_opened(&self, _session_id: &str, _node: &str, _connection: u64) -> Result<()> {
        Ok(())
    }

    /// See [`crate::store::Store::count_sign_in`].
    async fn count_sign_in(&self, _attempt: &SignInAttempt<'_>) -> Result<Option<Counted>> {
        Ok(None)
    }

    /// See [`crate::store::Store::uncount_sign_in`].
    async fn uncount_sign_in(&self, _id: i64) -> Result<()> {
        Ok(())
    }

    /// See [`crate::store::Store::barrier`].
    async fn barrier(&self) -> Result<()>;

    /// See [`crate::store::Store::close`].
    async fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(args: &Args) -> Vec<String> {
        args.iter()
            .map(|a| match a {
                Arg::Text(v) => v.clone().unwrap_or_default(),
                Arg::Int(v) => v.unwrap_or_default().to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn placeholders_become_anonymous_in_the_order_they_appear_with_their_values_repeated() {
        let (sql, ordered) = positional(
            "SELECT $2, $10 FROM t WHERE a = $1 AND b = '$1' AND c = $2",
            args!["one", "two", 3, 4, 5, 6, 7, 8, 9, "ten"],
        )
        .unwrap();
        assert_eq!(sql, "SELECT ?, ? FROM t WHERE a = ? AND b = '$1' AND c = ?");
        assert_eq!(texts(&ordered), ["two", "ten", "one", "two"]);
    }

    #[test]
    fn a_placeholder_without_its_argument_is_an_error_not_a_wrong_binding() {
        assert!(positional("SELECT $3", args!["one", "two"]).is_err());
        assert!(positional("SELECT $0", args!["one"]).is_err());
        let (sql, ordered) = positional("SELECT 'a$' || $ || x$y", args![]).unwrap();
        assert_eq!(sql, "SELECT 'a$' || $ || x$y");
        assert!(ordered.is_empty());
    }
}
