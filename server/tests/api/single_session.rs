//! Tests: single_session.
use crate::helpers::*;
