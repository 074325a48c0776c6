//! Tests: durability.
use crate::helpers::*;
