//! Integration tests: the real server binary on port 0 with a fresh database, driven over HTTP and
//! the live socket. One binary, one module per area of the contract.

#![allow(unreachable_pub, missing_docs)]

mod helpers;

mod accommodations;
mod accounts;
mod answers;
mod backup;
mod cluster;
mod console;
mod durability;
mod evaluations;
mod limits;
mod live;
mod matrix;
mod openapi;
mod powercut;
mod proctoring;
mod single_session;
mod tls;
