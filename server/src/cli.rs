//! Administration from a terminal, for scripts: `invigil-server users …` and
//! `invigil-server evaluations …` run one task against the database named by `--database` (the
//! same store code as the server), print the result on stdout, and exit non-zero on any error.
//!
//! A server running on the same database keeps serving; what a command changes is seen by its next
//! requests, but its open live connections hear of it only when they reconnect (a revocation from
//! here ends a session for every later request, not an open socket: use the console for that).

use crate::auth::hashing::Hashing;
use crate::config::DatabaseUrl;
use crate::domain::{OverrideReason, Password, Username, display_name, new_id};
use crate::files;
use crate::http::users::{ImportFailure, import_roster, reset};
use crate::live::event::Bus;
use crate::store::{self, NewAccount, Store};
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use invigil_protocol::{InvalidationReason, Role, User};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `invigil-server users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users, one a line: username, role, live sessions, display name (tab-separated).
    List {
        /// Only users with this role.
        #[arg(long)]
        role: Option<RoleArg>,
    },
    /// Create one user.
    Create {
        /// The sign-in name.
        username: String,
        /// What the user may do.
        #[arg(long, value_enum, default_value = "student")]
        role: RoleArg,
        /// The name shown (the username when absent).
        #[arg(long)]
        display_name: Option<String>,
        /// How the password is given.
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Create the students of a CSV file with the columns username,display_name,password (`-`
    /// reads standard input). All or nothing: any faulty line is reported and nothing is created.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Set a new password; every session of the user ends too, unless --keep-sessions.
    ResetPassword {
        /// Whose password.
        username: String,
        /// How the new password is given.
        #[command(flatten)]
        password: PasswordArgs,
        /// Leave the user's sessions alive.
        #[arg(long)]
        keep_sessions: bool,
    },
    /// End every session of a user.
    Revoke {
        /// Whose sessions.
        username: String,
    },
}

/// `invigil-server evaluations …`
#[derive(Debug, Subcommand)]
pub enum EvaluationsCommand {
    /// List evaluations, one a line: id, phase, owner, end time, title (tab-separated).
    List,
    /// Write the answers of an evaluation as CSV (one row per participant and question).
    ExportAnswers {
        /// The evaluation's id.
        id: String,
        /// Where to write (standard output when absent).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Write the audit log of an evaluation as CSV.
    ExportAudit {
        /// The evaluation's id.
        id: String,
        /// Where to write (standard output when absent).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Unblock a blocked student, with a note for the audit log.
    Unblock {
        /// The evaluation's id.
        id: String,
        /// The student.
        username: String,
        /// Why (written to the audit log).
        #[arg(long)]
        note: Option<String>,
        /// Who acts: the evaluation's owner or an admin (named in the audit log).
        #[arg(long = "as", value_name = "USERNAME")]
        actor: String,
    },
    /// Import an answers file exported by the desktop app into an evaluation.
    ImportAnswers {
        /// The evaluation's id.
        id: String,
        /// The file (`-` reads standard input).
        file: PathBuf,
        /// Who acts: the evaluation's owner or an admin (named in the audit log and the answers'
        /// source).
        #[arg(long = "as", value_name = "USERNAME")]
        actor: String,
        /// Import although the student is blocked or has handed in, for this reason (written
        /// to the audit log).
        #[arg(long = "override", value_name = "REASON")]
        overriding: Option<String>,
    },
}

/// A role on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Sits evaluations.
    Student,
    /// Creates and runs evaluations.
    Professor,
    /// Manages users and every evaluation.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Student => Role::Student,
            RoleArg::Professor => Role::Professor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// How a password is given: `--password` (visible to other local users in the process list),
/// `--password-stdin` (the first line of standard input), or neither: a random one is made and
/// printed.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct PasswordArgs {
    /// The password (visible in the process list: prefer --password-stdin).
    #[arg(long)]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordArgs {
    /// The password, and whether it was generated (and so must be printed).
    fn resolve(&self) -> anyhow::Result<(String, bool)> {
        if let Some(p) = &self.password {
            return Ok((p.clone(), false));
        }
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("while reading the password from standard input")?;
            let password = line.trim_end_matches(['\r', '\n']).to_owned();
            return Ok((password, false));
        }
        Ok((crate::auth::new_token()[..16].to_owned(), true))
    }
}

/// Who acts for the `users` commands: the command line itself, as an admin. It is never written
/// anywhere (password resets and revocations record no actor).
fn command_line_admin() -> User {
    User {
        id: String::new(),
        username: "command-line".into(),
        display_name: "invigil-server command line".into(),
        role: Role::Admin,
    }
}

async fn open(database: &DatabaseUrl) -> anyhow::Result<Arc<dyn Store>> {
    // Nobody listens to this process's events: the bus's receiving end is dropped.
    let (bus, _) = Bus::new();
    store::open(database, bus, Duration::from_secs(5)).await
}

fn read_input(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("while reading standard input")?;
        Ok(bytes)
    } else {
        std::fs::read(file).with_context(|| format!("while reading {}", file.display()))
    }
}

fn write_output(output: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("while writing {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
            Ok(())
        }
    }
}

/// Runs a `users` command.
pub async fn users(database: &DatabaseUrl, command: UsersCommand) -> anyhow::Result<()> {
    let store = open(database).await?;
    let result = run_users(store.as_ref(), command).await;
    store.close().await;
    result
}

async fn run_users(store: &dyn Store, command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::List { role } => {
            let wanted = role.map(Role::from);
            let mut out = String::new();
            for u in store.users().await? {
                if wanted.is_none_or(|r| r == u.user.role) {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\n",
                        u.user.username,
                        u.user.role.as_str(),
                        u.active_sessions,
                        u.user.display_name
                    ));
                }
            }
            write_output(None, &out)
        }
        UsersCommand::Create {
            username,
            role,
            display_name: name,
            password,
        } => {
            let (password, generated) = password.resolve()?;
            let username = Username::parse(&username)?;
            let password = Password::parse(password)?;
            let account = NewAccount {
                id: new_id(),
                display_name: display_name(name, &username)?,
                username: username.as_str().to_owned(),
                role: role.into(),
                password_hash: Hashing::per_cpu()
                    .hash(password.expose().to_owned())
                    .await?,
            };
            let user = store.create_account(account).await?;
            println!("created {} ({})", user.username, user.role.as_str());
            if generated {
                println!("password: {}", password.expose());
            }
            Ok(())
        }
        UsersCommand::Import { file } => {
            let bytes = read_input(&file)?;
            let text = String::from_utf8(bytes).context("the file is not UTF-8 text")?;
            match import_roster(store, &Hashing::per_cpu(), &text).await {
                Ok(created) => {
                    for user in &created {
                        println!("created {}", user.username);
                    }
                    println!("{} students created", created.len());
                    Ok(())
                }
                Err(ImportFailure::Lines(refused)) => {
                    for e in &refused.0 {
                        eprintln!("{}:{}: {}", file.display(), e.line, e.message);
                    }
                    bail!("{}", refused.message())
                }
                Err(ImportFailure::Other(e)) => Err(e.into()),
            }
        }
        UsersCommand::ResetPassword {
            username,
            password,
            keep_sessions,
        } => {
            let (password, generated) = password.resolve()?;
            let shown = generated.then(|| password.clone());
            let done = reset(
                store,
                &Hashing::per_cpu(),
                &username,
                password,
                !keep_sessions,
                &command_line_admin(),
            )
            .await?;
            println!(
                "password of {} reset; {} sessions ended",
                done.username, done.revoked_sessions
            );
            if let Some(p) = shown {
                println!("password: {p}");
            }
            Ok(())
        }
        UsersCommand::Revoke { username } => {
            let account = store
                .account(&username)
                .await?
                .with_context(|| format!("there is no user `{username}`"))?;
            let count = store
                .revoke_user(
                    &account.user,
                    InvalidationReason::RevokedByAdmin,
                    &command_line_admin(),
                )
                .await?;
            println!("{count} sessions of {username} ended");
            Ok(())
        }
    }
}

/// Runs an `evaluations` command.
pub async fn evaluations(
    database: &DatabaseUrl,
    command: EvaluationsCommand,
) -> anyhow::Result<()> {
    let store = open(database).await?;
    let result = run_evaluations(store.as_ref(), command).await;
    store.close().await;
    result
}

/// The actor named by `--as`: the evaluation's owner or an admin.
async fn actor(store: &dyn Store, username: &str, evaluation_id: &str) -> anyhow::Result<User> {
    let user = store
        .account(username)
        .await?
        .with_context(|| format!("there is no user `{username}`"))?
        .user;
    let record = store
        .evaluation(evaluation_id)
        .await?
        .with_context(|| format!("there is no evaluation `{evaluation_id}`"))?;
    if user.role != Role::Admin && user.id != record.owner_id {
        bail!("`{username}` is neither the owner of this evaluation nor an admin");
    }
    Ok(user)
}

async fn run_evaluations(store: &dyn Store, command: EvaluationsCommand) -> anyhow::Result<()> {
    let find = |id: String| async move {
        store
            .evaluation(&id)
            .await?
            .with_context(|| format!("there is no evaluation `{id}`"))
    };
    match command {
        EvaluationsCommand::List => {
            let mut out = String::new();
            for e in store.evaluations().await? {
                let ends = e
                    .ends_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "-".into());
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    e.id, e.phase, e.owner, ends, e.title
                ));
            }
            write_output(None, &out)
        }
        EvaluationsCommand::ExportAnswers { id, output } => {
            let record = find(id.clone()).await?;
            let participants = store.participants(&id).await?;
            let records = store.answer_records(&id, None).await?;
            let csv = files::answers_csv(&record.evaluation, &participants, &records)?;
            write_output(output.as_deref(), &csv)
        }
        EvaluationsCommand::ExportAudit { id, output } => {
            find(id.clone()).await?;
            let csv = files::audit_csv(&store.audit(&id).await?)?;
            write_output(output.as_deref(), &csv)
        }
        EvaluationsCommand::Unblock {
            id,
            username,
            note,
            actor: who,
        } => {
            let actor = actor(store, &who, &id).await?;
            let p = store.unblock(&id, &username, note, &actor).await?;
            println!("{} is {} again", p.username, p.status.as_str());
            Ok(())
        }
        EvaluationsCommand::ImportAnswers {
            id,
            file,
            actor: who,
            overriding,
        } => {
            let actor = actor(store, &who, &id).await?;
            let overriding = overriding
                .as_deref()
                .map(OverrideReason::parse)
                .transpose()?;
            let bytes = read_input(&file)?;
            let (mut import, mut skipped) = files::parse_device_export(&bytes, &id)?;
            import.overriding = overriding;
            let mut report = store.import_answers(&id, import, &actor).await?;
            skipped.append(&mut report.skipped);
            for s in &report.stored {
                let late = if s.late { " (late)" } else { "" };
                println!("stored {} revision {}{late}", s.question_id, s.revision);
            }
            for s in &skipped {
                println!(
                    "skipped {} revision {}: {}",
                    s.question_id, s.revision, s.reason
                );
            }
            println!(
                "{} answers of {} stored, {} skipped",
                report.stored.len(),
                report.username,
                skipped.len()
            );
            Ok(())
        }
    }
}
