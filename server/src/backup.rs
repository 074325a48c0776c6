//! `invigil-server backup` and `invigil-server restore`: a consistent copy of a live SQLite
//! database taken while the server goes on saving answers, and putting such a copy back.
//!
//! **Backup.** `VACUUM INTO` runs in one read transaction on a connection of its own. In WAL mode a
//! reader never blocks the writer, so saves go on being committed and acknowledged while the copy
//! is written, and the copy holds exactly the database as it was when the read began: every answer
//! acknowledged before the backup started (an acknowledgement follows its commit) is in it. SQLite
//! does not fsync what `VACUUM INTO` writes, so the copy goes to a temporary file beside the
//! destination, is checked (`PRAGMA integrity_check`), flushed, and only then renamed over the
//! destination: an interrupted backup never leaves a half-written file under the backup's name.
//!
//! **Restore.** The copy is checked first (a readable invigil database whose migrations this
//! binary knows). The database it replaces must not be open anywhere: a server keeps a shared lock
//! on its file for as long as it runs (WAL mode), and leaving WAL mode needs the file to itself,
//! so the switch is the test; it fails at once, without waiting, while any process holds the
//! database. The switch also folds the old write-ahead log into the old file and deletes it, so
//! no stale `-wal` file is left to be replayed into the restored copy. The copy then replaces the
//! file by an atomic rename, with the owner and mode of the file it replaces (or of its folder for
//! a new database), so that a server running as its own user can still write it.
//!
//! PostgreSQL has its own tools for both (`pg_dump`, `pg_restore`): on a PostgreSQL URL these
//! commands say how to use them.
//!
//! (SQLite's online backup API is not reachable through sqlx without `unsafe`, which the
//! workspace forbids; `VACUUM INTO` gives the same consistent snapshot and also compacts.)

use crate::config::DatabaseUrl;
use anyhow::{Context as _, bail};
use clap::Args;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteLockingMode};
use sqlx::{ConnectOptions as _, Connection as _};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `invigil-server backup FILE`
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (replaced, once the new copy is complete, if it exists).
    pub file: PathBuf,
}

/// `invigil-server restore FILE`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to put in place of the database.
    pub file: PathBuf,
}

/// Writes a consistent copy of the live database to `args.file` and prints what it holds.
pub async fn backup(database: &DatabaseUrl, args: BackupArgs) -> anyhow::Result<()> {
    let path = match database {
        DatabaseUrl::Sqlite(path) => Path::new(path),
        DatabaseUrl::Postgres(_) => bail!(
            "backup copies SQLite databases; for PostgreSQL use pg_dump, which also takes a \
             consistent snapshot without stopping saves:\n  \
             pg_dump --format=custom --file={} \"$INVIGIL_DATABASE_URL\"",
            args.file.display()
        ),
    };
    if !path.is_file() {
        bail!("there is no database at {}", path.display());
    }
    refuse_database_files(path, &args.file, "write the backup over")?;
    let partial = Partial::create(&args.file)?;

    let mut source = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("while opening the database {}", path.display()))?;
    sqlx::query("VACUUM INTO ?1")
        .bind(partial.path_str()?)
        .execute(&mut source)
        .await
        .with_context(|| format!("while copying {}", path.display()))?;
    source.close().await?;

    let tables = check(&partial.path)
        .await
        .context("the copy just written does not read back")?;
    let bytes = partial.persist()?;
    println!(
        "backed up {} to {} ({bytes} bytes, integrity ok)",
        path.display(),
        args.file.display()
    );
    print_tables(&tables);
    Ok(())
}

/// Replaces the database with the backup `args.file`, refusing while anything has it open.
pub async fn restore(database: &DatabaseUrl, args: RestoreArgs) -> anyhow::Result<()> {
    let path = match database {
        DatabaseUrl::Sqlite(path) => Path::new(path),
        DatabaseUrl::Postgres(_) => bail!(
            "restore replaces SQLite databases; for PostgreSQL stop every node, then use \
             pg_restore:\n  \
             pg_restore --clean --if-exists --no-owner --dbname=\"$INVIGIL_DATABASE_URL\" {}",
            args.file.display()
        ),
    };
    if !args.file.is_file() {
        bail!("there is no backup at {}", args.file.display());
    }
    refuse_database_files(path, &args.file, "restore a database onto")?;
    let tables = check(&args.file)
        .await
        .with_context(|| format!("{} is not a usable backup", args.file.display()))?;
    check_migrations(&args.file).await?;

    if path.exists() {
        take_over(path).await?;
    }
    // Nothing may be left of the old database's log beside the restored file.
    for suffix in ["-wal", "-shm", "-journal"] {
        remove_if_present(&with_suffix(path, suffix))?;
    }
    let partial = Partial::create(path)?;
    copy_into(&args.file, &partial.path)?;
    #[cfg(unix)]
    give_ownership(path, &partial.path)?;
    partial.persist()?;
    println!(
        "restored {} to {}; start the server on it",
        args.file.display(),
        path.display()
    );
    print_tables(&tables);
    Ok(())
}

/// Refuses a `file` that is the database itself or one of its companion files.
fn refuse_database_files(database: &Path, file: &Path, action: &str) -> anyhow::Result<()> {
    // Compared by their folders' real paths, so that files that do not exist yet (a `-wal` file
    // while no server runs) are recognised too.
    let resolve = |path: &Path| -> Option<PathBuf> {
        Some(fs::canonicalize(parent(path)).ok()?.join(path.file_name()?))
    };
    let (Some(database), Some(file)) = (resolve(database), resolve(file)) else {
        return Ok(());
    };
    let companions = ["", "-wal", "-shm", "-journal"].map(|s| with_suffix(&database, s));
    if companions.contains(&file) {
        bail!(
            "will not {action} the database itself or its log ({})",
            file.display()
        );
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("while removing {}", path.display())),
    }
}

/// Opens `path` read-only and checks it whole; returns the row count of each table.
async fn check(path: &Path) -> anyhow::Result<Vec<(String, i64)>> {
    let mut conn = read_only(path).await?;
    let verdict: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .context("while checking its integrity")?;
    if verdict != ["ok"] {
        bail!("its integrity check failed: {}", verdict.join("; "));
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table'
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {quoted}"))
            .fetch_one(&mut conn)
            .await?;
        tables.push((name, rows));
    }
    conn.close().await?;
    Ok(tables)
}

async fn read_only(path: &Path) -> anyhow::Result<SqliteConnection> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("while opening {}", path.display()))
}

/// Refuses a copy that is not an invigil database, or that a newer server has migrated: this
/// server would not know its schema. An older one is fine: the server migrates it when it opens.
async fn check_migrations(path: &Path) -> anyhow::Result<()> {
    let mut conn = read_only(path).await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .with_context(|| {
                format!(
                    "{} is not an invigil database (it has no migration table)",
                    path.display()
                )
            })?;
    conn.close().await?;
    let known: Vec<i64> = sqlx::migrate!("./migrations/sqlite")
        .iter()
        .map(|m| m.version)
        .collect();
    if let Some(unknown) = applied.iter().find(|v| !known.contains(v)) {
        bail!(
            "{} was written by a newer invigil-server (migration {unknown} is unknown to this \
             one): restore it with that version",
            path.display()
        );
    }
    Ok(())
}

/// Makes sure nothing has the database at `path` open, and leaves it with no write-ahead log.
///
/// Leaving WAL mode needs an exclusive lock on the file, which SQLite does not wait for, and every
/// connection to a WAL database (a server's included, even idle) holds a shared lock on it for as
/// long as it is open. A file SQLite cannot read at all (the usual reason to restore) has no
/// connection to fear once the lock is ours: only a busy or locked answer means "in use".
async fn take_over(path: &Path) -> anyhow::Result<()> {
    let attempt = async {
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .locking_mode(SqliteLockingMode::Exclusive)
            .busy_timeout(Duration::from_millis(500))
            .connect()
            .await?;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = DELETE")
            .fetch_one(&mut conn)
            .await?;
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        Ok::<_, sqlx::Error>(mode)
    };
    match attempt.await {
        Ok(mode) if mode.eq_ignore_ascii_case("delete") => Ok(()),
        Ok(mode) => bail!(
            "{} stayed in journal mode {mode}: another process has it open",
            path.display()
        ),
        Err(e) if is_busy(&e) => bail!(
            "{} is in use (a server, or another process, has it open): stop the server first; \
             nothing was changed",
            path.display()
        ),
        Err(e) => {
            eprintln!(
                "the current database at {} cannot be read ({e}); replacing it",
                path.display()
            );
            Ok(())
        }
    }
}

/// Whether SQLite answered `SQLITE_BUSY` or `SQLITE_LOCKED` (in any of their extended forms).
fn is_busy(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(e) = error else {
        return false;
    };
    e.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

fn copy_into(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut source =
        fs::File::open(from).with_context(|| format!("while opening {}", from.display()))?;
    let mut target = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(to)
        .with_context(|| format!("while opening {}", to.display()))?;
    std::io::copy(&mut source, &mut target)
        .with_context(|| format!("while copying {} to {}", from.display(), to.display()))?;
    target.flush()?;
    Ok(())
}

/// Gives `new` the owner and mode of the database at `database` or, when there is none yet, the
/// owner of its folder: the server may run as a user of its own while an operator restores as
/// root, and a file it cannot write would fail every save.
#[cfg(unix)]
fn give_ownership(database: &Path, new: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let (owner, mode) = match fs::metadata(database) {
        Ok(old) => (old, None),
        Err(_) => (
            fs::metadata(parent(database)).context("while reading its folder")?,
            Some(0o600),
        ),
    };
    let mode = mode.unwrap_or(owner.mode() & 0o7777);
    fs::set_permissions(new, fs::Permissions::from_mode(mode))?;
    let current = fs::metadata(new)?;
    if (current.uid(), current.gid()) != (owner.uid(), owner.gid()) {
        std::os::unix::fs::chown(new, Some(owner.uid()), Some(owner.gid())).with_context(|| {
            format!(
                "the restored file must belong to user {} and group {}, as {} does: run restore \
                 as that user or as root",
                owner.uid(),
                owner.gid(),
                database.display()
            )
        })?;
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn print_tables(tables: &[(String, i64)]) {
    for (name, rows) in tables {
        println!("{name}\t{rows}");
    }
}

/// A file being written beside its destination, readable by its owner alone (a backup holds
/// password and session hashes); removed unless [`Partial::persist`] renames it into place.
struct Partial {
    path: PathBuf,
    destination: PathBuf,
    done: bool,
}

impl Partial {
    fn create(destination: &Path) -> anyhow::Result<Self> {
        let name = destination
            .file_name()
            .with_context(|| format!("{} names no file", destination.display()))?;
        let mut partial_name = std::ffi::OsString::from(".");
        partial_name.push(name);
        partial_name.push(format!(".partial-{}", std::process::id()));
        let path = parent(destination).join(partial_name);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)
            .with_context(|| format!("while creating {}", path.display()))?;
        Ok(Self {
            path,
            destination: destination.to_owned(),
            done: false,
        })
    }

    fn path_str(&self) -> anyhow::Result<&str> {
        self.path
            .to_str()
            .with_context(|| format!("{} is not valid UTF-8", self.path.display()))
    }

    /// Flushes the file to disk, renames it over the destination and flushes the folder; returns
    /// its size.
    fn persist(mut self) -> anyhow::Result<u64> {
        let file = fs::File::open(&self.path)?;
        file.sync_all()
            .with_context(|| format!("while flushing {}", self.path.display()))?;
        let bytes = file.metadata()?.len();
        fs::rename(&self.path, &self.destination).with_context(|| {
            format!(
                "while moving {} to {}",
                self.path.display(),
                self.destination.display()
            )
        })?;
        self.done = true;
        #[cfg(unix)]
        fs::File::open(parent(&self.destination))?.sync_all()?;
        Ok(bytes)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}
