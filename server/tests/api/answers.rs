//! Tests: answers.
use crate::helpers::*;
