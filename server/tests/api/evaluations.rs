//! Tests: evaluations.
use crate::helpers::*;
