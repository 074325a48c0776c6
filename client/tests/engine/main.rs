//! The engine against the real server: the server binary on a free port with a fresh database, a
//! proxy that can cut or freeze the network, and engines driven as the desktop app drives them.
//! One binary, one module per promise.

#![allow(unreachable_pub, missing_docs)]

mod harness;

mod answers;
mod chaos;
mod connection;
mod crash;
mod disk;
mod integrity;
mod powercut;
mod reconcile;
mod sessions;
mod sign_in;
mod tls;
