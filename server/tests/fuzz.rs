//! Fuzzing, as property tests: what a hostile client can hand the server's parsers — a client
//! frame on the socket, a roster CSV, a desktop answers file, a JSON request body — is thrown at
//! them as random and as almost-valid input. None may panic, every refusal is the contract's
//! error, and memory stays bounded by the input (the process's peak resident memory is read
//! before and after).
//!
//! `cargo fuzz` needs a nightly compiler, which CI does not have (one stable toolchain), so these
//! are `proptest` properties. `PROPTEST_CASES` sets how many inputs each one tries (256 by
//! default; CI runs more).

#![allow(missing_docs)]

use invigil_protocol::{
    AccessList, CreateEvaluation, ErrorCode, LoginRequest, SaveAnswer, ServerMessage,
};
use invigil_server::files::{MAX_LINE_ERRORS, MAX_ROSTER_LINES, parse_device_export, parse_roster};
use invigil_server::http::ApiJson;
use invigil_server::live::ws::{MAX_ERROR_MESSAGE_BYTES, decode};
use proptest::prelude::*;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    // The environment's PROPTEST_CASES, else 256.
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// JSON values of any shape, a few levels deep, with the contract's names sprinkled in.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("ANSWER_SAVE"),
            Just("HEARTBEAT"),
            Just("evaluation_id"),
            Just("revision")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("evaluation_id".to_owned()),
                    Just("question_id".to_owned()),
                    Just("revision".to_owned()),
                    Just("content".to_owned()),
                    "[a-z_]{1,12}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text that is mostly a client frame: a valid `ANSWER_SAVE` or `HEARTBEAT`, damaged or not.
fn client_frame() -> impl Strategy<Value = String> {
    let save = (".{0,20}", ".{0,20}", any::<u64>(), ".{0,200}").prop_map(|(e, q, r, c)| {
        json!({"type": "ANSWER_SAVE", "evaluation_id": e, "question_id": q, "revision": r, "content": c})
            .to_string()
    });
    let valid = prop_oneof![Just(r#"{"type":"HEARTBEAT"}"#.to_owned()), save];
    prop_oneof![
        valid.clone(),
        (valid, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(text, at, byte)| {
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            String::from_utf8_lossy(&bytes).into_owned()
        }),
        json_value().prop_map(|v| v.to_string()),
        ".{0,300}",
    ]
}

/// A roster: a header of known and unknown columns, then lines of fields with quotes, commas and
/// line breaks in them.
fn roster() -> impl Strategy<Value = String> {
    let header = prop::sample::subsequence(
        vec![
            "username",
            "password",
            "display_name",
            "Username",
            "email",
            "",
        ],
        0..=5,
    )
    .prop_shuffle()
    .prop_map(|cols| cols.join(","));
    let field = prop_oneof![
        "[a-z0-9._@-]{0,12}",
        "\"[^\"]{0,10}\"",
        "\"[a-z]{0,4}\"\"[a-z ,]{0,4}\"",
        ".{0,16}",
        Just(String::new()),
    ];
    let line = prop::collection::vec(field, 0..5).prop_map(|f| f.join(","));
    let ending = prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("")];
    (
        prop::option::of(Just("\u{feff}")),
        header,
        prop::collection::vec((line, ending), 0..40),
    )
        .prop_map(|(bom, header, lines)| {
            let mut text = String::from(bom.unwrap_or_default());
            text.push_str(&header);
            text.push('\n');
            for (line, end) in lines {
                text.push_str(&line);
                text.push_str(end);
            }
            text
        })
}

/// An answers file: the right format or not, answers of this evaluation and others, revisions and
/// contents of any size, fields missing or of the wrong type.
fn answers_file() -> impl Strategy<Value = Vec<u8>> {
    let answer = (
        prop_oneof![Just("e1".to_owned()), Just("e2".to_owned()), ".{0,6}"],
        prop_oneof![Just("q1".to_owned()), Just("q2".to_owned()), ".{0,6}"],
        prop_oneof![any::<u64>().prop_map(|n| json!(n)), json_value()],
        prop_oneof![".{0,50}".prop_map(|s| json!(s)), json_value()],
        prop_oneof![
            Just(json!("2026-11-22T09:00:00.000Z")),
            ".{0,30}".prop_map(|s| json!(s))
        ],
    )
        .prop_map(|(e, q, r, c, t)| {
            json!({"evaluation_id": e, "question_id": q, "revision": r, "content": c, "edited_at": t})
        });
    let file = (
        prop_oneof![Just("invigil-answers-export".to_owned()), ".{0,10}"],
        prop_oneof![Just(json!(1)), json_value()],
        prop::collection::vec(prop_oneof![answer, json_value()], 0..30),
    )
        .prop_map(|(format, version, answers)| {
            json!({"format": format, "version": version, "username": "alice", "device": "pc",
                   "answers": answers})
            .to_string()
            .into_bytes()
        });
    prop_oneof![
        4 => file,
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ]
}

/// Peak resident memory of this process so far (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Runs a property with the suite's configuration, panicking on a failure (with its minimal case).
fn check<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = proptest::test_runner::TestRunner::new(config());
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

fn error_message(frame: &ServerMessage) -> Option<(&ErrorCode, &str)> {
    match frame {
        ServerMessage::Error { code, message } => Some((code, message)),
        _ => None,
    }
}

/// Every target in one test, one after the other, so that the peak memory read around them is
/// theirs alone.
#[test]
fn no_parser_panics_every_refusal_is_a_contract_error_and_memory_stays_bounded() {
    let before = peak_rss();

    // A client frame on the socket: a client message, or an ERROR frame of at most 256 bytes.
    check(client_frame(), |text| {
        if let Err(refusal) = decode(&text) {
            let (code, message) = error_message(&refusal).expect("an ERROR frame");
            prop_assert_eq!(*code, ErrorCode::BadRequest);
            prop_assert!(message.len() <= MAX_ERROR_MESSAGE_BYTES);
        }
        Ok(())
    });

    // A roster: its lines or its faulty lines, never more than the limits.
    check(roster(), |text| {
        match parse_roster(&text) {
            Ok(lines) => {
                prop_assert!(!lines.is_empty() && lines.len() <= MAX_ROSTER_LINES);
                prop_assert!(lines.iter().all(|l| l.line >= 2));
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty() && errors.len() <= MAX_LINE_ERRORS + 1);
            }
        }
        Ok(())
    });

    // An answers file: at most one answer per question is kept, none of another evaluation, and
    // every answer is kept or skipped; anything else is a 400.
    check(answers_file(), |bytes| {
        match parse_device_export(&bytes, "e1") {
            Ok((import, skipped)) => {
                let mut questions: Vec<&str> = import
                    .answers
                    .iter()
                    .map(|a| a.question_id.as_str())
                    .collect();
                questions.sort_unstable();
                let before = questions.len();
                questions.dedup();
                prop_assert_eq!(before, questions.len());
                prop_assert!(skipped.iter().all(|s| s.reason.len() < 1000));
            }
            Err(e) => prop_assert_eq!(e.code(), ErrorCode::BadRequest),
        }
        Ok(())
    });

    // A JSON body: read into the contract's request types, or 400 `bad_request`.
    check(
        prop_oneof![
            json_value().prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..200),
            ".{0,100}".prop_map(String::into_bytes),
        ],
        |bytes| {
            for result in [
                ApiJson::<LoginRequest>::parse(&bytes).map(drop),
                ApiJson::<CreateEvaluation>::parse(&bytes).map(drop),
                ApiJson::<AccessList>::parse(&bytes).map(drop),
                ApiJson::<SaveAnswer>::parse(&bytes).map(drop),
            ] {
                if let Err(e) = result {
                    prop_assert_eq!(e.code(), ErrorCode::BadRequest);
                }
            }
            Ok(())
        },
    );

    // The worst inputs of their size, once each: deep nesting, a file of distinct questions, a
    // roster of one huge field, and of every line faulty.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(decode(&deep).is_err());
    assert!(ApiJson::<LoginRequest>::parse(deep.as_bytes()).is_err());
    let many: Vec<Value> = (0..40_000)
        .map(|i| {
            json!({"evaluation_id": "e1", "question_id": format!("q{i}"), "revision": 1,
                        "content": "", "edited_at": "2026-11-22T09:00:00.000Z"})
        })
        .collect();
    let file = json!({"format": "invigil-answers-export", "version": 1, "username": "a",
                      "answers": many})
    .to_string();
    let (import, _) = parse_device_export(file.as_bytes(), "e1").unwrap();
    assert_eq!(import.answers.len(), 40_000);
    let huge_field = format!("username,password\na,{}\n", "p".repeat(3 << 20));
    assert!(
        parse_roster(&huge_field).is_err(),
        "a 3 MiB password is refused"
    );
    let faulty = "username,password\n".to_owned() + &"bad name,pw\n".repeat(200_000);
    assert_eq!(
        parse_roster(&faulty).unwrap_err().len(),
        MAX_LINE_ERRORS + 1
    );

    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 256 << 20,
        "parsing inputs of at most a few MiB raised peak memory by {grown} bytes"
    );
}
