//! Tests: accounts.
use crate::helpers::*;
