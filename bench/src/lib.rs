//! `invigil-bench`: a load generator that plays students over the real protocol against
//! invigil-server and against peer servers (`bench/peers/`), and reports what it measured.
//!
//! # Layout
//!
//! ```text
//! main.rs    parse the command line; `run` conducts, `worker` plays a share of the students
//! run        the conductor: people, scenarios (idle, fan-out, invalidation, answers, storm,
//!            polling), results
//! seed       accounts in the database, sign-ins and evaluations through the API
//! servers    the servers under test as processes: start, stop, kill, restart
//! fleet      the worker processes: spawn, split the students, command and gather
//! worker     one worker: a task per student, commands from stdin, replies on stdout
//! student    one student's socket: handshake per flavor, frames read through a small probe
//! wire       the conductor–worker messages (JSON lines)
//! procfs     memory, CPU time, open files and listen-queue counters from /proc
//! clock      the monotonic clock every process shares
//! stats      percentiles and medians
//! report     results.json and the Markdown report
//! ```
//!
//! A measurement never trusts one process's view of another: the conductor stamps a trigger
//! with the machine's monotonic clock and each worker stamps each receipt with the same clock.

pub mod clock;
pub mod fleet;
pub mod procfs;
pub mod report;
pub mod run;
pub mod seed;
pub mod servers;
pub mod stats;
pub mod student;
pub mod wire;
pub mod worker;
