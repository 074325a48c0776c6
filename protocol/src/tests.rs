//! Every wire type against the JSON that the protocol (`docs/PROTOCOL.md`) writes down.
//!
//! Each type is read from a JSON literal written as in the contract and compared with the expected
//! Rust value, and the Rust value is written and compared, as a `serde_json::Value` (so key order
//! does not matter), with the same literal.

use super::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt::Debug;
use time::macros::datetime;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Reads `json` into `T` (both from a `Value` and from its text, as it arrives on the wire),
/// checks it equals `expected`, then writes `expected` and checks it equals `json`.
fn assert_reads_and_writes<T>(json: Value, expected: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let from_value: T = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("could not read {json} as the expected type: {e}"));
    assert_eq!(&from_value, expected, "reading {json} from a value");
    let from_text: T = serde_json::from_str(&json.to_string())
        .unwrap_or_else(|e| panic!("could not read the text {json}: {e}"));
    assert_eq!(&from_text, expected, "reading {json} from text");
    let written = serde_json::to_value(expected).expect("the value serializes");
    assert_eq!(written, json, "writing {expected:?}");
}

/// Reads `json` into `T`, panicking with the JSON when that fails.
fn read<T: DeserializeOwned>(json: Value) -> T {
    serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("could not read {json} as the expected type: {e}"))
}

/// Checks that `json` does NOT read as `T`.
fn assert_rejected<T: DeserializeOwned + Debug>(json: Value) {
    let text = json.to_string();
    let result: Result<T, _> = serde_json::from_str(&text);
    assert!(
        result.is_err(),
        "{text} should be rejected but read as {result:?}"
    );
}

/// Checks that a fieldless enum value is written as `name` and that `name` reads back as it.
fn assert_named<T>(value: T, name: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    assert_reads_and_writes(json!(name), &value);
}

/// 2026-11-22T09:00:00.000Z, the contract's example time.
fn nine_o_clock() -> Timestamp {
    Timestamp::from_datetime(datetime!(2026-11-22 09:00:00 UTC))
}

/// 2026-11-22T11:00:00.000Z, the contract's example `ends_at`.
fn eleven_o_clock() -> Timestamp {
    Timestamp::from_datetime(datetime!(2026-11-22 11:00:00 UTC))
}

fn student_user() -> User {
    User {
        id: "u1".into(),
        username: "alice".into(),
        display_name: "Alice Martin".into(),
        role: Role::Student,
    }
}

fn student_user_json() -> Value {
    json!({"id": "u1", "username": "alice", "display_name": "Alice Martin", "role": "student"})
}

fn text_question() -> Question {
    Question {
        id: "q1".into(),
        prompt: "Explain quicksort".into(),
        kind: QuestionKind::Text,
    }
}

fn running_evaluation() -> Evaluation {
    Evaluation {
        id: "e1".into(),
        title: "Algorithms midterm".into(),
        phase: Phase::InProgress,
        ends_at: Some(eleven_o_clock()),
        access: Access::List,
        owner: "prof1".into(),
        questions: vec![text_question()],
        proctoring: Proctoring::default(),
    }
}

fn running_evaluation_json() -> Value {
    json!({
        "id": "e1", "title": "Algorithms midterm", "phase": "in_progress",
        "ends_at": "2026-11-22T11:00:00.000Z", "access": "list", "owner": "prof1",
        "questions": [{"id": "q1", "prompt": "Explain quicksort", "kind": "text"}],
        "proctoring": {"fullscreen": false, "report_focus": false, "block_clipboard": false, "single_display": false, "brief_ms": 2000}
    })
}

fn joined_participation() -> Participation {
    Participation {
        evaluation_id: "e1".into(),
        username: "alice".into(),
        status: ParticipationStatus::InProgress,
        blocked_reason: None,
        access: true,
        proctoring_exempt: SettingSet::default(),
    }
}

fn joined_participation_json() -> Value {
    json!({
        "evaluation_id": "e1", "username": "alice", "status": "in_progress",
        "blocked_reason": null, "access": true
    })
}

fn connected_participant() -> Participant {
    Participant {
        username: "alice".into(),
        display_name: "Alice Martin".into(),
        status: ParticipationStatus::InProgress,
        blocked_reason: None,
        connected: true,
        last_seen: Some(nine_o_clock()),
        answered: 2,
        disconnected_since: None,
        late_answers: 0,
        integrity: IntegritySummary::default(),
        proctoring_exempt: SettingSet::default(),
    }
}

fn connected_participant_json() -> Value {
    json!({
        "username": "alice", "display_name": "Alice Martin", "status": "in_progress",
        "blocked_reason": null, "connected": true, "last_seen": "2026-11-22T09:00:00.000Z",
        "answered": 2, "disconnected_since": null, "late_answers": 0, "integrity": {"events": 0, "focus_lost": 0, "brief": 0, "away_ms": 0, "longest_away_ms": 0, "last": null, "capabilities": null}
    })
}

// ---------------------------------------------------------------------------------------------
// Timestamp
// ---------------------------------------------------------------------------------------------

#[test]
fn timestamp_writes_utc_with_three_millisecond_digits_and_a_z() {
    let at = Timestamp::from_datetime(datetime!(2026-11-22 09:00:00.5 UTC));
    assert_eq!(at.to_string(), "2026-11-22T09:00:00.500Z");
    assert_eq!(
        serde_json::to_value(nine_o_clock()).unwrap(),
        json!("2026-11-22T09:00:00.000Z")
    );
}

#[test]
fn timestamp_reads_and_writes_the_contract_format_unchanged() {
    assert_reads_and_writes(json!("2026-11-22T09:00:00.000Z"), &nine_o_clock());
    let with_millis = Timestamp::from_datetime(datetime!(2026-11-22 09:00:00.123 UTC));
    assert_reads_and_writes(json!("2026-11-22T09:00:00.123Z"), &with_millis);
}

#[test]
fn timestamp_reads_an_offset_and_converts_it_to_utc() {
    let plus_two: Timestamp = read(json!("2026-11-22T11:00:00.000+02:00"));
    assert_eq!(plus_two, nine_o_clock());
    assert_eq!(plus_two.to_string(), "2026-11-22T09:00:00.000Z");
    assert_eq!(plus_two.datetime().offset(), time::UtcOffset::UTC);

    let minus_five_thirty: Timestamp = read(json!("2026-11-22T03:30:00.000-05:30"));
    assert_eq!(minus_five_thirty, nine_o_clock());

    let across_midnight: Timestamp = read(json!("2026-11-23T01:00:00.000+02:00"));
    assert_eq!(across_midnight.to_string(), "2026-11-22T23:00:00.000Z");
}

#[test]
fn timestamp_drops_precision_below_a_millisecond_and_adds_missing_milliseconds() {
    let nanos: Timestamp = read(json!("2026-11-22T09:00:00.123456789Z"));
    assert_eq!(nanos.to_string(), "2026-11-22T09:00:00.123Z");
    assert_eq!(
        nanos,
        Timestamp::from_datetime(datetime!(2026-11-22 09:00:00.123 UTC))
    );

    let whole_seconds: Timestamp = read(json!("2026-11-22T09:00:00Z"));
    assert_eq!(whole_seconds, nine_o_clock());
    assert_eq!(whole_seconds.to_string(), "2026-11-22T09:00:00.000Z");

    let from_nanos = Timestamp::from_datetime(datetime!(2026-11-22 09:00:00.999_999_999 UTC));
    assert_eq!(from_nanos.to_string(), "2026-11-22T09:00:00.999Z");
}

#[test]
fn timestamp_rejects_garbage_with_an_error() {
    for garbage in [
        "",
        "yesterday",
        "2026-11-22",
        "09:00:00.000Z",
        "2026-11-22 09:00:00",
        "2026-11-22T09:00:00.000",
        "2026-13-01T09:00:00.000Z",
        "2026-11-31T09:00:00.000Z",
        "2026-11-22T25:00:00.000Z",
        "1764000000000",
    ] {
        assert!(
            Timestamp::parse(garbage).is_err(),
            "`{garbage}` should not parse"
        );
        let error = serde_json::from_value::<Timestamp>(json!(garbage))
            .expect_err("garbage must not read as a timestamp");
        assert!(
            error.to_string().contains("is not an RFC 3339 time"),
            "the error names the problem: {error}"
        );
    }
    assert_rejected::<Timestamp>(json!(1_764_000_000_000_i64));
    assert_rejected::<Timestamp>(json!(null));
    assert_rejected::<Timestamp>(json!({"at": "2026-11-22T09:00:00.000Z"}));
}

#[test]
fn timestamp_round_trips_through_unix_milliseconds() {
    let at = Timestamp::from_datetime(datetime!(2026-11-22 09:00:00.123 UTC));
    let ms = at.unix_ms();
    assert_eq!(ms % 1000, 123);
    assert_eq!(Timestamp::from_unix_ms(ms), Some(at));
    assert_eq!(
        Timestamp::from_unix_ms(0).unwrap().to_string(),
        "1970-01-01T00:00:00.000Z"
    );
}

#[test]
fn timestamp_now_has_millisecond_precision_in_utc() {
    let now = Timestamp::now();
    assert_eq!(now.datetime().nanosecond() % 1_000_000, 0);
    assert_eq!(now.datetime().offset(), time::UtcOffset::UTC);
    let text = now.to_string();
    assert_eq!(Timestamp::parse(&text).unwrap(), now);
}

// ---------------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------------

#[test]
fn role_names_are_student_professor_and_admin() {
    for (role, name) in [
        (Role::Student, "student"),
        (Role::Professor, "professor"),
        (Role::Admin, "admin"),
    ] {
        assert_named(role, name);
        assert_eq!(role.as_str(), name);
    }
    assert_rejected::<Role>(json!("teacher"));
    assert_rejected::<Role>(json!("Student"));
}

#[test]
fn user_reads_and_writes_the_contract_json() {
    assert_reads_and_writes(student_user_json(), &student_user());
    let admin = User {
        id: "u9".into(),
        username: "root".into(),
        display_name: "Root".into(),
        role: Role::Admin,
    };
    assert_reads_and_writes(
        json!({"id": "u9", "username": "root", "display_name": "Root", "role": "admin"}),
        &admin,
    );
}

#[test]
fn create_user_reads_and_writes_the_contract_json_with_a_display_name() {
    let expected = CreateUser {
        username: "prof1".into(),
        password: "s3cret".into(),
        role: Role::Professor,
        display_name: Some("Prof. One".into()),
    };
    assert_reads_and_writes(
        json!({"username": "prof1", "password": "s3cret", "role": "professor",
               "display_name": "Prof. One"}),
        &expected,
    );
}

#[test]
fn create_user_display_name_may_be_omitted_or_null() {
    let expected = CreateUser {
        username: "alice".into(),
        password: "pw".into(),
        role: Role::Student,
        display_name: None,
    };
    assert_reads_and_writes(
        json!({"username": "alice", "password": "pw", "role": "student"}),
        &expected,
    );
    let with_null: CreateUser = read(json!({"username": "alice", "password": "pw",
                                            "role": "student", "display_name": null}));
    assert_eq!(with_null, expected);
}

#[test]
fn create_user_without_a_role_or_with_an_unknown_role_fails_to_parse() {
    assert_rejected::<CreateUser>(json!({"username": "alice", "password": "pw"}));
    assert_rejected::<CreateUser>(
        json!({"username": "alice", "password": "pw", "role": "superuser"}),
    );
}

#[test]
fn login_request_reads_and_writes_the_contract_json_with_a_device() {
    let expected = LoginRequest {
        username: "alice".into(),
        password: "pw".into(),
        device: Some("lab-pc-12".into()),
    };
    assert_reads_and_writes(
        json!({"username": "alice", "password": "pw", "device": "lab-pc-12"}),
        &expected,
    );
}

#[test]
fn login_request_device_may_be_omitted_or_null() {
    let expected = LoginRequest {
        username: "alice".into(),
        password: "pw".into(),
        device: None,
    };
    assert_reads_and_writes(json!({"username": "alice", "password": "pw"}), &expected);
    let with_null: LoginRequest =
        read(json!({"username": "alice", "password": "pw", "device": null}));
    assert_eq!(with_null, expected);
}

#[test]
fn login_request_without_a_password_fails_to_parse() {
    assert_rejected::<LoginRequest>(json!({"username": "alice"}));
}

#[test]
fn login_response_reads_and_writes_the_contract_json() {
    let expected = LoginResponse {
        token: "tok-abc".into(),
        session_id: "s1".into(),
        user: student_user(),
    };
    assert_reads_and_writes(
        json!({"token": "tok-abc", "session_id": "s1", "user": student_user_json()}),
        &expected,
    );
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Every code of the contract (its "Errors" section and the v2 additions) with its HTTP status.
const CONTRACT_ERROR_CODES: [(ErrorCode, &str, u16); 17] = [
    (ErrorCode::BadRequest, "bad_request", 400),
    (ErrorCode::InvalidCredentials, "invalid_credentials", 401),
    (ErrorCode::Unauthenticated, "unauthenticated", 401),
    (ErrorCode::SessionInvalidated, "session_invalidated", 401),
    (ErrorCode::SessionExpired, "session_expired", 401),
    (ErrorCode::Forbidden, "forbidden", 403),
    (ErrorCode::NotOnAccessList, "not_on_access_list", 403),
    (ErrorCode::NotFound, "not_found", 404),
    (ErrorCode::InvalidTransition, "invalid_transition", 409),
    (ErrorCode::NotOpen, "not_open", 409),
    (ErrorCode::NotParticipating, "not_participating", 409),
    (ErrorCode::Conflict, "conflict", 409),
    (ErrorCode::Blocked, "blocked", 423),
    (ErrorCode::PayloadTooLarge, "payload_too_large", 413),
    (ErrorCode::TooManyAttempts, "too_many_attempts", 429),
    (ErrorCode::ServerBusy, "server_busy", 503),
    (ErrorCode::TooManyStreams, "too_many_streams", 429),
];

#[test]
fn error_code_names_are_the_contract_names() {
    for (code, name, _) in CONTRACT_ERROR_CODES {
        assert_named(code, name);
        assert_eq!(code.as_str(), name);
        assert_eq!(code.to_string(), name);
    }
}

#[test]
fn error_code_status_matches_the_http_status_listed_in_the_protocol() {
    for (code, name, status) in CONTRACT_ERROR_CODES {
        assert_eq!(code.status(), status, "status of `{name}`");
    }
}

#[test]
fn error_code_internal_is_an_addition_answered_with_500() {
    assert_named(ErrorCode::Internal, "internal");
    assert_eq!(ErrorCode::Internal.status(), 500);
    assert!(
        CONTRACT_ERROR_CODES
            .iter()
            .all(|(code, _, _)| *code != ErrorCode::Internal)
    );
}

#[test]
fn error_code_that_is_not_snake_case_or_unknown_fails_to_parse() {
    assert_rejected::<ErrorCode>(json!("NOT_FOUND"));
    assert_rejected::<ErrorCode>(json!("notFound"));
    assert_rejected::<ErrorCode>(json!("teapot"));
}

#[test]
fn error_body_reads_and_writes_the_contract_json_for_every_code() {
    for (code, name, _) in CONTRACT_ERROR_CODES {
        let expected = ErrorBody {
            error: ErrorDetail {
                code,
                message: format!("Something about {name}."),
            },
        };
        assert_reads_and_writes(
            json!({"error": {"code": name, "message": format!("Something about {name}.")}}),
            &expected,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluations
// ---------------------------------------------------------------------------------------------

#[test]
fn phase_names_are_draft_in_progress_grading_and_finished() {
    for (phase, name) in [
        (Phase::Draft, "draft"),
        (Phase::InProgress, "in_progress"),
        (Phase::Grading, "grading"),
        (Phase::Finished, "finished"),
    ] {
        assert_named(phase, name);
        assert_eq!(phase.as_str(), name);
        assert_eq!(phase.to_string(), name);
        assert_eq!(Phase::parse(name), Some(phase));
    }
    assert_eq!(Phase::parse("open"), None);
    assert_eq!(Phase::parse("IN_PROGRESS"), None);
    assert_rejected::<Phase>(json!("archived"));
}

#[test]
fn phase_can_move_only_along_the_four_transitions_the_contract_allows() {
    use Phase::*;
    let allowed = [
        (Draft, InProgress),
        (InProgress, Grading),
        (Grading, InProgress),
        (Grading, Finished),
    ];
    let phases = [Draft, InProgress, Grading, Finished];
    let mut checked = 0;
    for from in phases {
        for to in phases {
            let expected = allowed.contains(&(from, to));
            assert_eq!(
                from.can_move_to(to),
                expected,
                "{from} -> {to} should be {}",
                if expected { "allowed" } else { "refused" }
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 16);
}

#[test]
fn access_names_are_open_and_list_and_list_is_the_default() {
    assert_named(Access::Open, "open");
    assert_named(Access::List, "list");
    assert_eq!(Access::Open.as_str(), "open");
    assert_eq!(Access::List.as_str(), "list");
    assert_eq!(Access::default(), Access::List);
    assert_rejected::<Access>(json!("closed"));
}

#[test]
fn evaluation_reads_and_writes_the_contract_example() {
    let expected = Evaluation {
        id: "e1".into(),
        title: "Algorithms midterm".into(),
        phase: Phase::Draft,
        ends_at: Some(eleven_o_clock()),
        access: Access::List,
        owner: "prof1".into(),
        questions: vec![text_question()],
        proctoring: Proctoring::default(),
    };
    assert_reads_and_writes(
        json!({"id": "e1", "title": "Algorithms midterm", "phase": "draft",
               "ends_at": "2026-11-22T11:00:00.000Z", "access": "list", "owner": "prof1",
               "questions": [{"id": "q1", "prompt": "Explain quicksort", "kind": "text"}],
               "proctoring": {"fullscreen": false, "report_focus": false, "block_clipboard": false, "single_display": false, "brief_ms": 2000}}),
        &expected,
    );
}

#[test]
fn evaluation_with_a_code_question_reads_and_writes_the_contract_json() {
    let expected = Evaluation {
        id: "e2".into(),
        title: "Lab".into(),
        phase: Phase::Grading,
        ends_at: Some(eleven_o_clock()),
        access: Access::Open,
        owner: "prof1".into(),
        questions: vec![Question {
            id: "q1".into(),
            prompt: "Write fizzbuzz".into(),
            kind: QuestionKind::Code,
        }],
        proctoring: Proctoring::default(),
    };
    assert_reads_and_writes(
        json!({"id": "e2", "title": "Lab", "phase": "grading",
               "ends_at": "2026-11-22T11:00:00.000Z", "access": "open", "owner": "prof1",
               "questions": [{"id": "q1", "prompt": "Write fizzbuzz", "kind": "code"}],
               "proctoring": {"fullscreen": false, "report_focus": false, "block_clipboard": false, "single_display": false, "brief_ms": 2000}}),
        &expected,
    );
}

#[test]
fn evaluation_with_a_choice_question_reads_and_writes_its_choices() {
    let expected = Evaluation {
        id: "e3".into(),
        title: "Quiz".into(),
        phase: Phase::Finished,
        ends_at: Some(eleven_o_clock()),
        access: Access::List,
        owner: "prof2".into(),
        questions: vec![Question {
            id: "q1".into(),
            prompt: "Worst case of quicksort?".into(),
            kind: QuestionKind::Choice {
                choices: vec![
                    Choice {
                        id: "a".into(),
                        label: "O(n log n)".into(),
                    },
                    Choice {
                        id: "b".into(),
                        label: "O(n^2)".into(),
                    },
                ],
            },
        }],
        proctoring: Proctoring::default(),
    };
    assert_reads_and_writes(
        json!({"id": "e3", "title": "Quiz", "phase": "finished",
               "ends_at": "2026-11-22T11:00:00.000Z", "access": "list", "owner": "prof2",
               "questions": [{"id": "q1", "prompt": "Worst case of quicksort?", "kind": "choice",
                              "choices": [{"id": "a", "label": "O(n log n)"},
                                          {"id": "b", "label": "O(n^2)"}]}],
               "proctoring": {"fullscreen": false, "report_focus": false, "block_clipboard": false, "single_display": false, "brief_ms": 2000}}),
        &expected,
    );
}

#[test]
fn evaluation_with_all_three_question_kinds_reads_and_writes_them_in_order() {
    let mut expected = running_evaluation();
    expected.questions = vec![
        text_question(),
        Question {
            id: "q2".into(),
            prompt: "Implement it".into(),
            kind: QuestionKind::Code,
        },
        Question {
            id: "q3".into(),
            prompt: "Stable?".into(),
            kind: QuestionKind::Choice {
                choices: vec![
                    Choice {
                        id: "y".into(),
                        label: "Yes".into(),
                    },
                    Choice {
                        id: "n".into(),
                        label: "No".into(),
                    },
                ],
            },
        },
    ];
    let mut json = running_evaluation_json();
    json["questions"] = json!([
        {"id": "q1", "prompt": "Explain quicksort", "kind": "text"},
        {"id": "q2", "prompt": "Implement it", "kind": "code"},
        {"id": "q3", "prompt": "Stable?", "kind": "choice",
         "choices": [{"id": "y", "label": "Yes"}, {"id": "n", "label": "No"}]}
    ]);
    assert_reads_and_writes(json, &expected);
}

#[test]
fn evaluation_ends_at_null_reads_and_writes_as_null() {
    let mut expected = running_evaluation();
    expected.ends_at = None;
    let mut json = running_evaluation_json();
    json["ends_at"] = Value::Null;
    assert_reads_and_writes(json, &expected);
}

#[test]
fn evaluation_in_draft_for_a_student_has_an_empty_question_list() {
    let mut expected = running_evaluation();
    expected.phase = Phase::Draft;
    expected.questions = vec![];
    let mut json = running_evaluation_json();
    json["phase"] = json!("draft");
    json["questions"] = json!([]);
    assert_reads_and_writes(json, &expected);
}

#[test]
fn question_with_an_unknown_kind_or_a_choice_without_choices_fails_to_parse() {
    assert_rejected::<Question>(json!({"id": "q1", "prompt": "?", "kind": "essay"}));
    assert_rejected::<Question>(json!({"id": "q1", "prompt": "?"}));
    assert_rejected::<Question>(json!({"id": "q1", "prompt": "?", "kind": "choice"}));
}

#[test]
fn evaluation_detail_carries_the_participation_beside_the_evaluation_fields() {
    let expected = EvaluationDetail {
        evaluation: running_evaluation(),
        participation: Some(joined_participation()),
    };
    let mut json = running_evaluation_json();
    json["participation"] = joined_participation_json();
    assert_reads_and_writes(json, &expected);
}

#[test]
fn evaluation_detail_for_staff_omits_the_participation() {
    let expected = EvaluationDetail {
        evaluation: running_evaluation(),
        participation: None,
    };
    assert_reads_and_writes(running_evaluation_json(), &expected);
}

#[test]
fn create_evaluation_reads_and_writes_the_contract_json_with_every_field() {
    let expected = CreateEvaluation {
        title: "Algorithms midterm".into(),
        questions: vec![
            NewQuestion {
                id: Some("q1".into()),
                prompt: "Explain quicksort".into(),
                kind: QuestionKind::Text,
            },
            NewQuestion {
                id: Some("q2".into()),
                prompt: "Pick one".into(),
                kind: QuestionKind::Choice {
                    choices: vec![Choice {
                        id: "a".into(),
                        label: "A".into(),
                    }],
                },
            },
        ],
        ends_at: Some(eleven_o_clock()),
        access: Some(Access::Open),
        proctoring: None,
    };
    assert_reads_and_writes(
        json!({"title": "Algorithms midterm",
               "questions": [{"id": "q1", "prompt": "Explain quicksort", "kind": "text"},
                             {"id": "q2", "prompt": "Pick one", "kind": "choice",
                              "choices": [{"id": "a", "label": "A"}]}],
               "ends_at": "2026-11-22T11:00:00.000Z", "access": "open"}),
        &expected,
    );
}

#[test]
fn create_evaluation_ends_at_and_access_may_be_omitted_or_null() {
    let expected = CreateEvaluation {
        title: "Quiz".into(),
        questions: vec![NewQuestion {
            id: Some("q1".into()),
            prompt: "Write it".into(),
            kind: QuestionKind::Code,
        }],
        ends_at: None,
        access: None,
        proctoring: None,
    };
    let omitted: CreateEvaluation = read(json!({
        "title": "Quiz",
        "questions": [{"id": "q1", "prompt": "Write it", "kind": "code"}]
    }));
    assert_eq!(omitted, expected);
    // Optional fields may be omitted or null; the writer uses null.
    assert_reads_and_writes(
        json!({"title": "Quiz",
               "questions": [{"id": "q1", "prompt": "Write it", "kind": "code"}],
               "ends_at": null, "access": null}),
        &expected,
    );
}

#[test]
fn create_evaluation_question_ids_may_be_left_to_the_server() {
    let expected = NewQuestion {
        id: None,
        prompt: "Explain quicksort".into(),
        kind: QuestionKind::Text,
    };
    assert_reads_and_writes(
        json!({"prompt": "Explain quicksort", "kind": "text"}),
        &expected,
    );
}

#[test]
fn create_evaluation_without_a_title_or_questions_fails_to_parse() {
    assert_rejected::<CreateEvaluation>(json!({"questions": []}));
    assert_rejected::<CreateEvaluation>(json!({"title": "Quiz"}));
}

#[test]
fn phase_change_reads_and_writes_the_contract_json_and_keeps_unknown_phases_as_text() {
    assert_reads_and_writes(
        json!({"phase": "in_progress"}),
        &PhaseChange {
            phase: "in_progress".into(),
        },
    );
    let unknown: PhaseChange = read(json!({"phase": "paused"}));
    assert_eq!(unknown.phase, "paused");
    assert_eq!(Phase::parse(&unknown.phase), None);
}

#[test]
fn ends_at_change_reads_and_writes_a_time_or_null() {
    assert_reads_and_writes(
        json!({"ends_at": "2026-11-22T11:00:00.000Z"}),
        &EndsAtChange {
            ends_at: Some(eleven_o_clock()),
        },
    );
    assert_reads_and_writes(json!({"ends_at": null}), &EndsAtChange { ends_at: None });
}

#[test]
fn access_list_reads_and_writes_the_contract_json() {
    assert_reads_and_writes(
        json!({"students": ["alice", "bob"]}),
        &AccessList {
            students: vec!["alice".into(), "bob".into()],
        },
    );
    assert_reads_and_writes(json!({"students": []}), &AccessList { students: vec![] });
}

#[test]
fn participation_status_names_are_the_contract_names() {
    for (status, name) in [
        (ParticipationStatus::NotStarted, "not_started"),
        (ParticipationStatus::InProgress, "in_progress"),
        (ParticipationStatus::Submitted, "submitted"),
        (ParticipationStatus::Blocked, "blocked"),
    ] {
        assert_named(status, name);
        assert_eq!(status.as_str(), name);
        assert_eq!(ParticipationStatus::parse(name), Some(status));
    }
    assert_eq!(ParticipationStatus::parse("finished"), None);
}

#[test]
fn blocked_reason_second_sign_in_is_named_as_in_the_contract() {
    assert_named(BlockedReason::SecondSignIn, "second_sign_in");
    assert_eq!(BlockedReason::SecondSignIn.as_str(), "second_sign_in");
    assert_eq!(
        BlockedReason::parse("second_sign_in"),
        Some(BlockedReason::SecondSignIn)
    );
    assert_eq!(BlockedReason::parse("cheating"), None);
}

#[test]
fn participation_reads_and_writes_the_contract_json_with_a_null_blocked_reason() {
    assert_reads_and_writes(joined_participation_json(), &joined_participation());
    let not_eligible = Participation {
        evaluation_id: "e1".into(),
        username: "bob".into(),
        status: ParticipationStatus::NotStarted,
        blocked_reason: None,
        access: false,
        proctoring_exempt: SettingSet::default(),
    };
    assert_reads_and_writes(
        json!({"evaluation_id": "e1", "username": "bob", "status": "not_started",
               "blocked_reason": null, "access": false}),
        &not_eligible,
    );
}

#[test]
fn participation_of_a_blocked_student_carries_second_sign_in() {
    let expected = Participation {
        evaluation_id: "e1".into(),
        username: "alice".into(),
        status: ParticipationStatus::Blocked,
        blocked_reason: Some(BlockedReason::SecondSignIn),
        access: true,
        proctoring_exempt: SettingSet::default(),
    };
    assert_reads_and_writes(
        json!({"evaluation_id": "e1", "username": "alice", "status": "blocked",
               "blocked_reason": "second_sign_in", "access": true}),
        &expected,
    );
}

#[test]
fn participant_reads_and_writes_the_contract_json() {
    assert_reads_and_writes(connected_participant_json(), &connected_participant());
    let blocked = Participant {
        username: "bob".into(),
        display_name: "Bob".into(),
        status: ParticipationStatus::Blocked,
        blocked_reason: Some(BlockedReason::SecondSignIn),
        connected: false,
        last_seen: Some(eleven_o_clock()),
        answered: 0,
        disconnected_since: Some(eleven_o_clock()),
        late_answers: 1,
        integrity: IntegritySummary::default(),
        proctoring_exempt: SettingSet::default(),
    };
    assert_reads_and_writes(
        json!({"username": "bob", "display_name": "Bob", "status": "blocked",
               "blocked_reason": "second_sign_in", "connected": false,
               "last_seen": "2026-11-22T11:00:00.000Z", "answered": 0,
               "disconnected_since": "2026-11-22T11:00:00.000Z", "late_answers": 1, "integrity": {"events": 0, "focus_lost": 0, "brief": 0, "away_ms": 0, "longest_away_ms": 0, "last": null, "capabilities": null}}),
        &blocked,
    );
}

#[test]
fn participant_never_heard_from_has_a_null_last_seen() {
    let expected = Participant {
        username: "carol".into(),
        display_name: "Carol".into(),
        status: ParticipationStatus::NotStarted,
        blocked_reason: None,
        connected: false,
        last_seen: None,
        answered: 0,
        disconnected_since: None,
        late_answers: 0,
        integrity: IntegritySummary::default(),
        proctoring_exempt: SettingSet::default(),
    };
    assert_reads_and_writes(
        json!({"username": "carol", "display_name": "Carol", "status": "not_started",
               "blocked_reason": null, "connected": false, "last_seen": null, "answered": 0,
               "disconnected_since": null, "late_answers": 0, "integrity": {"events": 0, "focus_lost": 0, "brief": 0, "away_ms": 0, "longest_away_ms": 0, "last": null, "capabilities": null}}),
        &expected,
    );
}

#[test]
fn unblock_note_may_be_given_omitted_or_null() {
    assert_reads_and_writes(
        json!({"note": "Phone died, switched laptops"}),
        &Unblock {
            note: Some("Phone died, switched laptops".into()),
        },
    );
    assert_eq!(read::<Unblock>(json!({})), Unblock { note: None });
    assert_eq!(
        read::<Unblock>(json!({"note": null})),
        Unblock { note: None }
    );
}

/// Every audit kind the contract lists.
const CONTRACT_AUDIT_KINDS: [(AuditKind, &str); 12] = [
    (AuditKind::PhaseChanged, "phase_changed"),
    (AuditKind::EndsAtChanged, "ends_at_changed"),
    (AuditKind::AccessChanged, "access_changed"),
    (AuditKind::Joined, "joined"),
    (AuditKind::Submitted, "submitted"),
    (AuditKind::SignedIn, "signed_in"),
    (AuditKind::SessionInvalidated, "session_invalidated"),
    (AuditKind::Blocked, "blocked"),
    (AuditKind::Unblocked, "unblocked"),
    (AuditKind::Disconnected, "disconnected"),
    (AuditKind::Reconnected, "reconnected"),
    (AuditKind::LateAnswer, "late_answer"),
];

#[test]
fn audit_kind_names_are_the_twelve_contract_names_and_the_added_ones() {
    let added = [
        (AuditKind::AnswerImported, "answer_imported"),
        (AuditKind::ImportOverridden, "import_overridden"),
    ];
    for (kind, name) in CONTRACT_AUDIT_KINDS.into_iter().chain(added) {
        assert_named(kind, name);
        assert_eq!(kind.as_str(), name);
        assert_eq!(AuditKind::parse(name), Some(kind));
    }
    assert_eq!(AuditKind::parse("logged_in"), None);
    assert_rejected::<AuditKind>(json!("logged_in"));
}

#[test]
fn audit_entry_reads_and_writes_the_contract_json_for_every_kind() {
    for (kind, name) in CONTRACT_AUDIT_KINDS {
        let expected = AuditEntry {
            at: nine_o_clock(),
            kind,
            username: Some("alice".into()),
            actor: Some("prof1".into()),
            detail: format!("Something {name}."),
        };
        assert_reads_and_writes(
            json!({"at": "2026-11-22T09:00:00.000Z", "kind": name, "username": "alice",
                   "actor": "prof1", "detail": format!("Something {name}.")}),
            &expected,
        );
    }
}

#[test]
fn audit_entry_username_and_actor_are_null_for_evaluation_wide_server_events() {
    let expected = AuditEntry {
        at: eleven_o_clock(),
        kind: AuditKind::PhaseChanged,
        username: None,
        actor: None,
        detail: "The evaluation moved to grading.".into(),
    };
    assert_reads_and_writes(
        json!({"at": "2026-11-22T11:00:00.000Z", "kind": "phase_changed", "username": null,
               "actor": null, "detail": "The evaluation moved to grading."}),
        &expected,
    );
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

#[test]
fn answer_on_time_reads_and_writes_the_contract_json_with_a_null_on_time() {
    let expected = Answer {
        question_id: "q1".into(),
        revision: 3,
        content: "Pick a pivot, partition, recurse.".into(),
        saved_at: nine_o_clock(),
        late: false,
        on_time: None,
    };
    assert_reads_and_writes(
        json!({"question_id": "q1", "revision": 3,
               "content": "Pick a pivot, partition, recurse.",
               "saved_at": "2026-11-22T09:00:00.000Z", "late": false, "on_time": null}),
        &expected,
    );
}

#[test]
fn answer_late_reads_and_writes_the_last_on_time_revision() {
    let expected = Answer {
        question_id: "q1".into(),
        revision: 5,
        content: "late text".into(),
        saved_at: Timestamp::from_datetime(datetime!(2026-11-22 11:00:01.250 UTC)),
        late: true,
        on_time: Some(OnTime {
            revision: 4,
            content: "on-time text".into(),
            saved_at: Timestamp::from_datetime(datetime!(2026-11-22 10:59:59.999 UTC)),
        }),
    };
    assert_reads_and_writes(
        json!({"question_id": "q1", "revision": 5, "content": "late text",
               "saved_at": "2026-11-22T11:00:01.250Z", "late": true,
               "on_time": {"revision": 4, "content": "on-time text",
                           "saved_at": "2026-11-22T10:59:59.999Z"}}),
        &expected,
    );
}

#[test]
fn answer_late_with_no_earlier_on_time_revision_has_a_null_on_time() {
    let expected = Answer {
        question_id: "q2".into(),
        revision: 1,
        content: "b".into(),
        saved_at: eleven_o_clock(),
        late: true,
        on_time: None,
    };
    assert_reads_and_writes(
        json!({"question_id": "q2", "revision": 1, "content": "b",
               "saved_at": "2026-11-22T11:00:00.000Z", "late": true, "on_time": null}),
        &expected,
    );
}

#[test]
fn answer_with_a_negative_revision_fails_to_parse() {
    assert_rejected::<Answer>(json!({"question_id": "q1", "revision": -1, "content": "",
                                     "saved_at": "2026-11-22T09:00:00.000Z", "late": false,
                                     "on_time": null}));
}

#[test]
fn save_answer_reads_and_writes_the_contract_json() {
    assert_reads_and_writes(
        json!({"revision": 7, "content": "def f(): pass"}),
        &SaveAnswer {
            revision: 7,
            content: "def f(): pass".into(),
        },
    );
}

#[test]
fn save_ack_reads_and_writes_the_contract_json() {
    assert_reads_and_writes(
        json!({"question_id": "q1", "revision": 7, "late": false}),
        &SaveAck {
            question_id: "q1".into(),
            revision: 7,
            late: false,
        },
    );
    assert_reads_and_writes(
        json!({"question_id": "q1", "revision": 8, "late": true}),
        &SaveAck {
            question_id: "q1".into(),
            revision: 8,
            late: true,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Reasons and codes of the live socket
// ---------------------------------------------------------------------------------------------

#[test]
fn update_reason_names_are_the_seven_contract_names() {
    for (reason, name) in [
        (UpdateReason::Snapshot, "snapshot"),
        (UpdateReason::PhaseChanged, "phase_changed"),
        (UpdateReason::EndsAtChanged, "ends_at_changed"),
        (UpdateReason::AccessChanged, "access_changed"),
        (UpdateReason::StatusChanged, "status_changed"),
        (UpdateReason::Blocked, "blocked"),
        (UpdateReason::Unblocked, "unblocked"),
    ] {
        assert_named(reason, name);
    }
    assert_rejected::<UpdateReason>(json!("SNAPSHOT"));
}

#[test]
fn invalidation_reason_names_are_the_three_contract_names() {
    for (reason, name) in [
        (InvalidationReason::SignedInElsewhere, "signed_in_elsewhere"),
        (InvalidationReason::SignedOut, "signed_out"),
        (InvalidationReason::RevokedByAdmin, "revoked_by_admin"),
    ] {
        assert_named(reason, name);
        assert_eq!(reason.as_str(), name);
        assert_eq!(InvalidationReason::parse(name), Some(reason));
    }
    assert_eq!(InvalidationReason::parse("expired"), None);
}

#[test]
fn reject_code_names_are_the_contract_names_plus_bad_request() {
    for (code, name) in [
        (RejectCode::Blocked, "blocked"),
        (RejectCode::NotParticipating, "not_participating"),
        (RejectCode::NotOnAccessList, "not_on_access_list"),
        (RejectCode::NotFound, "not_found"),
        (RejectCode::BadRequest, "bad_request"),
        (RejectCode::Conflict, "conflict"),
    ] {
        assert_named(code, name);
    }
}

#[test]
fn close_codes_and_the_message_limit_match_the_contract() {
    assert_eq!(close::SESSION_INVALIDATED, 4001);
    assert_eq!(close::REPLACED, 4002);
    assert_eq!(close::SILENT, 4008);
    assert_eq!(close::MESSAGE_TOO_BIG, 1009);
    assert_eq!(MAX_MESSAGE_BYTES, 1_048_576);
}

// ---------------------------------------------------------------------------------------------
// Server → client messages
// ---------------------------------------------------------------------------------------------

#[test]
fn welcome_reads_and_writes_the_contract_json() {
    let expected = ServerMessage::Welcome {
        session_id: "s1".into(),
        user: student_user(),
        server_time: nine_o_clock(),
        heartbeat_ms: 5000,
    };
    assert_reads_and_writes(
        json!({"type": "WELCOME", "session_id": "s1", "user": student_user_json(),
               "server_time": "2026-11-22T09:00:00.000Z", "heartbeat_ms": 5000}),
        &expected,
    );
}

#[test]
fn evaluation_update_reads_and_writes_the_contract_json() {
    let expected = ServerMessage::EvaluationUpdate {
        reason: UpdateReason::Snapshot,
        evaluation: running_evaluation(),
        participation: joined_participation(),
    };
    assert_reads_and_writes(
        json!({"type": "EVALUATION_UPDATE", "reason": "snapshot",
               "evaluation": running_evaluation_json(),
               "participation": joined_participation_json()}),
        &expected,
    );
}

#[test]
fn evaluation_update_for_a_removed_student_carries_access_false_and_null_ends_at() {
    let mut evaluation = running_evaluation();
    evaluation.ends_at = None;
    let expected = ServerMessage::EvaluationUpdate {
        reason: UpdateReason::AccessChanged,
        evaluation,
        participation: Participation {
            access: false,
            ..joined_participation()
        },
    };
    let mut evaluation_json = running_evaluation_json();
    evaluation_json["ends_at"] = Value::Null;
    let mut participation_json = joined_participation_json();
    participation_json["access"] = json!(false);
    assert_reads_and_writes(
        json!({"type": "EVALUATION_UPDATE", "reason": "access_changed",
               "evaluation": evaluation_json, "participation": participation_json}),
        &expected,
    );
}

#[test]
fn evaluation_update_with_a_choice_question_reads_and_writes_its_choices() {
    let mut evaluation = running_evaluation();
    evaluation.questions = vec![Question {
        id: "q9".into(),
        prompt: "Pick".into(),
        kind: QuestionKind::Choice {
            choices: vec![Choice {
                id: "c1".into(),
                label: "One".into(),
            }],
        },
    }];
    let expected = ServerMessage::EvaluationUpdate {
        reason: UpdateReason::Blocked,
        evaluation,
        participation: Participation {
            status: ParticipationStatus::Blocked,
            blocked_reason: Some(BlockedReason::SecondSignIn),
            ..joined_participation()
        },
    };
    let mut evaluation_json = running_evaluation_json();
    evaluation_json["questions"] = json!([{"id": "q9", "prompt": "Pick", "kind": "choice",
                                           "choices": [{"id": "c1", "label": "One"}]}]);
    let mut participation_json = joined_participation_json();
    participation_json["status"] = json!("blocked");
    participation_json["blocked_reason"] = json!("second_sign_in");
    assert_reads_and_writes(
        json!({"type": "EVALUATION_UPDATE", "reason": "blocked",
               "evaluation": evaluation_json, "participation": participation_json}),
        &expected,
    );
}

#[test]
fn snapshot_end_reads_and_writes_a_frame_with_only_its_type() {
    assert_reads_and_writes(json!({"type": "SNAPSHOT_END"}), &ServerMessage::SnapshotEnd);
}

#[test]
fn session_invalidated_reads_and_writes_the_contract_json_for_every_reason() {
    for (reason, name) in [
        (InvalidationReason::SignedInElsewhere, "signed_in_elsewhere"),
        (InvalidationReason::SignedOut, "signed_out"),
        (InvalidationReason::RevokedByAdmin, "revoked_by_admin"),
    ] {
        assert_reads_and_writes(
            json!({"type": "SESSION_INVALIDATED", "reason": name}),
            &ServerMessage::SessionInvalidated { reason },
        );
    }
}

#[test]
fn answer_ack_reads_and_writes_the_contract_json() {
    let expected = ServerMessage::AnswerAck {
        evaluation_id: "e1".into(),
        question_id: "q1".into(),
        revision: 12,
        late: false,
    };
    assert_reads_and_writes(
        json!({"type": "ANSWER_ACK", "evaluation_id": "e1", "question_id": "q1",
               "revision": 12, "late": false}),
        &expected,
    );
}

#[test]
fn answer_rejected_reads_and_writes_the_contract_json_for_every_code() {
    for (code, name) in [
        (RejectCode::Blocked, "blocked"),
        (RejectCode::NotParticipating, "not_participating"),
        (RejectCode::NotOnAccessList, "not_on_access_list"),
        (RejectCode::NotFound, "not_found"),
        (RejectCode::Conflict, "conflict"),
    ] {
        let expected = ServerMessage::AnswerRejected {
            evaluation_id: "e1".into(),
            question_id: "q1".into(),
            revision: 4,
            code,
        };
        assert_reads_and_writes(
            json!({"type": "ANSWER_REJECTED", "evaluation_id": "e1", "question_id": "q1",
                   "revision": 4, "code": name}),
            &expected,
        );
    }
}

#[test]
fn participant_update_reads_and_writes_the_contract_json() {
    let expected = ServerMessage::ParticipantUpdate {
        evaluation_id: "e1".into(),
        participant: connected_participant(),
    };
    assert_reads_and_writes(
        json!({"type": "PARTICIPANT_UPDATE", "evaluation_id": "e1",
               "participant": connected_participant_json()}),
        &expected,
    );
}

#[test]
fn server_heartbeat_reads_and_writes_the_contract_json() {
    assert_reads_and_writes(
        json!({"type": "HEARTBEAT", "server_time": "2026-11-22T09:00:00.000Z"}),
        &ServerMessage::Heartbeat {
            server_time: nine_o_clock(),
        },
    );
}

#[test]
fn error_frame_reads_and_writes_the_contract_json() {
    let expected = ServerMessage::Error {
        code: ErrorCode::BadRequest,
        message: "That frame is not JSON.".into(),
    };
    assert_reads_and_writes(
        json!({"type": "ERROR", "code": "bad_request", "message": "That frame is not JSON."}),
        &expected,
    );
}

#[test]
fn server_message_kind_and_to_json_name_the_same_type_tag() {
    let messages = [
        ServerMessage::Welcome {
            session_id: "s1".into(),
            user: student_user(),
            server_time: nine_o_clock(),
            heartbeat_ms: 5000,
        },
        ServerMessage::EvaluationUpdate {
            reason: UpdateReason::PhaseChanged,
            evaluation: running_evaluation(),
            participation: joined_participation(),
        },
        ServerMessage::SnapshotEnd,
        ServerMessage::SessionInvalidated {
            reason: InvalidationReason::SignedOut,
        },
        ServerMessage::AnswerAck {
            evaluation_id: "e1".into(),
            question_id: "q1".into(),
            revision: 1,
            late: true,
        },
        ServerMessage::AnswerRejected {
            evaluation_id: "e1".into(),
            question_id: "q1".into(),
            revision: 1,
            code: RejectCode::Blocked,
        },
        ServerMessage::ParticipantUpdate {
            evaluation_id: "e1".into(),
            participant: connected_participant(),
        },
        ServerMessage::Heartbeat {
            server_time: nine_o_clock(),
        },
        ServerMessage::Error {
            code: ErrorCode::NotFound,
            message: "No such thing.".into(),
        },
    ];
    let expected_kinds = [
        "WELCOME",
        "EVALUATION_UPDATE",
        "SNAPSHOT_END",
        "SESSION_INVALIDATED",
        "ANSWER_ACK",
        "ANSWER_REJECTED",
        "PARTICIPANT_UPDATE",
        "HEARTBEAT",
        "ERROR",
    ];
    for (message, kind) in messages.iter().zip(expected_kinds) {
        assert_eq!(message.kind(), kind);
        let text = message.to_json();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], json!(kind), "type tag of {text}");
        let back: ServerMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, message);
    }
}

#[test]
fn server_message_with_an_unknown_or_missing_type_fails_to_parse() {
    assert_rejected::<ServerMessage>(json!({"type": "GOODBYE"}));
    assert_rejected::<ServerMessage>(json!({"type": "welcome", "session_id": "s1"}));
    assert_rejected::<ServerMessage>(json!({"type": "SnapshotEnd"}));
    assert_rejected::<ServerMessage>(json!({"server_time": "2026-11-22T09:00:00.000Z"}));
    assert_rejected::<ServerMessage>(json!({"type": null}));
    assert_rejected::<ServerMessage>(json!("SNAPSHOT_END"));
}

#[test]
fn server_message_with_a_missing_field_fails_to_parse() {
    assert_rejected::<ServerMessage>(json!({"type": "HEARTBEAT"}));
    assert_rejected::<ServerMessage>(
        json!({"type": "ANSWER_ACK", "evaluation_id": "e1", "question_id": "q1", "revision": 1}),
    );
}

// ---------------------------------------------------------------------------------------------
// Client → server messages
// ---------------------------------------------------------------------------------------------

#[test]
fn answer_save_reads_and_writes_the_contract_json() {
    let expected = ClientMessage::AnswerSave {
        evaluation_id: "e1".into(),
        question_id: "q1".into(),
        revision: 3,
        content: "Pick a pivot.".into(),
    };
    assert_reads_and_writes(
        json!({"type": "ANSWER_SAVE", "evaluation_id": "e1", "question_id": "q1",
               "revision": 3, "content": "Pick a pivot."}),
        &expected,
    );
}

#[test]
fn client_heartbeat_reads_and_writes_a_frame_with_only_its_type() {
    assert_reads_and_writes(json!({"type": "HEARTBEAT"}), &ClientMessage::Heartbeat);
}

#[test]
fn client_message_with_an_unknown_or_missing_type_fails_to_parse() {
    assert_rejected::<ClientMessage>(json!({"type": "PING"}));
    assert_rejected::<ClientMessage>(json!({"type": "answer_save", "evaluation_id": "e1",
                                            "question_id": "q1", "revision": 1,
                                            "content": ""}));
    assert_rejected::<ClientMessage>(json!({"type": "WELCOME", "session_id": "s1"}));
    assert_rejected::<ClientMessage>(json!({"evaluation_id": "e1", "question_id": "q1",
                                            "revision": 1, "content": ""}));
    assert_rejected::<ClientMessage>(json!([]));
}

#[test]
fn answer_save_with_a_missing_or_mistyped_field_fails_to_parse() {
    assert_rejected::<ClientMessage>(
        json!({"type": "ANSWER_SAVE", "evaluation_id": "e1", "question_id": "q1", "revision": 1}),
    );
    assert_rejected::<ClientMessage>(json!({"type": "ANSWER_SAVE", "evaluation_id": "e1",
                                            "question_id": "q1", "revision": "1",
                                            "content": "x"}));
    assert_rejected::<ClientMessage>(json!({"type": "ANSWER_SAVE", "evaluation_id": "e1",
                                            "question_id": "q1", "revision": -3,
                                            "content": "x"}));
}

#[test]
fn client_message_frames_read_from_raw_wire_text() {
    let save: ClientMessage = serde_json::from_str(
        r#"{"type":"ANSWER_SAVE","evaluation_id":"e1","question_id":"q1","revision":2,"content":"a \"quoted\"\nline"}"#,
    )
    .unwrap();
    assert_eq!(
        save,
        ClientMessage::AnswerSave {
            evaluation_id: "e1".into(),
            question_id: "q1".into(),
            revision: 2,
            content: "a \"quoted\"\nline".into(),
        }
    );
    let beat: ClientMessage = serde_json::from_str(r#"{"type":"HEARTBEAT"}"#).unwrap();
    assert_eq!(beat, ClientMessage::Heartbeat);
}

// ---------------------------------------------------------------------------------------------
// Tolerant readers
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_fields_are_ignored_on_input_of_messages() {
    let welcome: ServerMessage = read(json!({
        "type": "WELCOME", "session_id": "s1", "user": student_user_json(),
        "server_time": "2026-11-22T09:00:00.000Z", "heartbeat_ms": 5000,
        "server_version": "2.0", "features": ["sse"]
    }));
    assert_eq!(
        welcome,
        ServerMessage::Welcome {
            session_id: "s1".into(),
            user: student_user(),
            server_time: nine_o_clock(),
            heartbeat_ms: 5000,
        }
    );
    let end: ServerMessage = read(json!({"type": "SNAPSHOT_END", "count": 3}));
    assert_eq!(end, ServerMessage::SnapshotEnd);

    let beat: ClientMessage = read(json!({"type": "HEARTBEAT", "client_time": "now"}));
    assert_eq!(beat, ClientMessage::Heartbeat);
    let save: ClientMessage = read(json!({
        "type": "ANSWER_SAVE", "evaluation_id": "e1", "question_id": "q1",
        "revision": 1, "content": "x", "device": "laptop"
    }));
    assert_eq!(
        save,
        ClientMessage::AnswerSave {
            evaluation_id: "e1".into(),
            question_id: "q1".into(),
            revision: 1,
            content: "x".into(),
        }
    );
}

#[test]
fn unknown_fields_are_ignored_on_input_of_evaluations_and_questions() {
    let mut json = running_evaluation_json();
    json["created_at"] = json!("2026-11-01T00:00:00.000Z");
    json["questions"] = json!([
        {"id": "q1", "prompt": "Explain quicksort", "kind": "text", "points": 5,
         "choices": [{"id": "ignored", "label": "ignored"}]},
        {"id": "q2", "prompt": "Pick", "kind": "choice", "points": 1,
         "choices": [{"id": "a", "label": "A", "correct": true}]}
    ]);
    let evaluation: Evaluation = read(json);
    let mut expected = running_evaluation();
    expected.questions.push(Question {
        id: "q2".into(),
        prompt: "Pick".into(),
        kind: QuestionKind::Choice {
            choices: vec![Choice {
                id: "a".into(),
                label: "A".into(),
            }],
        },
    });
    assert_eq!(evaluation, expected);
}

#[test]
fn unknown_fields_are_ignored_on_input_of_every_other_body() {
    let mut json = student_user_json();
    json["email"] = json!("alice@example.org");
    assert_eq!(read::<User>(json), student_user());

    let mut json = joined_participation_json();
    json["joined_at"] = json!("2026-11-22T09:00:00.000Z");
    assert_eq!(read::<Participation>(json), joined_participation());

    let mut json = connected_participant_json();
    json["ip"] = json!("10.0.0.1");
    assert_eq!(read::<Participant>(json), connected_participant());

    let login: LoginRequest =
        read(json!({"username": "alice", "password": "pw", "remember_me": true}));
    assert_eq!(login.device, None);

    let body: ErrorBody = read(json!({"error": {"code": "not_found", "message": "Gone.",
                                                "hint": "check the id"}, "trace": "x"}));
    assert_eq!(body.error.code, ErrorCode::NotFound);

    let answer: Answer = read(json!({"question_id": "q1", "revision": 1, "content": "x",
                                     "saved_at": "2026-11-22T09:00:00.000Z", "late": false,
                                     "on_time": null, "grade": 3}));
    assert_eq!(answer.revision, 1);

    let audit: AuditEntry = read(json!({"at": "2026-11-22T09:00:00.000Z", "kind": "joined",
                                        "username": "alice", "actor": "alice",
                                        "detail": "Joined.", "id": 17}));
    assert_eq!(audit.kind, AuditKind::Joined);

    let create: CreateEvaluation = read(json!({"title": "T", "questions": [],
                                               "shuffle": true}));
    assert_eq!(create.access, None);
}

// ---------------------------------------------------------------------------------------------
// Additions for the console
// ---------------------------------------------------------------------------------------------

#[test]
fn participant_written_by_the_contract_alone_reads_with_no_late_answers_and_no_loss_time() {
    let json = json!({"username": "alice", "display_name": "Alice Martin",
                      "status": "in_progress", "blocked_reason": null, "connected": true,
                      "last_seen": "2026-11-22T09:00:00.000Z", "answered": 2});
    assert_eq!(read::<Participant>(json), connected_participant());
}

#[test]
fn edit_evaluation_tells_an_absent_end_from_a_null_one() {
    let absent: EditEvaluation = read(json!({"title": "New"}));
    assert_eq!(absent.ends_at, None);
    assert_eq!(absent.title.as_deref(), Some("New"));
    let cleared: EditEvaluation = read(json!({"ends_at": null}));
    assert_eq!(cleared.ends_at, Some(None));
    let set: EditEvaluation = read(json!({"ends_at": "2026-11-22T09:00:00.000Z"}));
    assert_eq!(set.ends_at, Some(Some(nine_o_clock())));
    assert_reads_and_writes(json!({"ends_at": null}), &cleared);
    assert_reads_and_writes(json!({}), &EditEvaluation::default());
}

#[test]
fn console_messages_carry_their_type_tag() {
    let removed = ConsoleMessage::ParticipantRemoved {
        evaluation_id: "e1".into(),
        username: "alice".into(),
    };
    assert_reads_and_writes(
        json!({"type": "PARTICIPANT_REMOVED", "evaluation_id": "e1", "username": "alice"}),
        &removed,
    );
    assert_eq!(removed.kind(), "PARTICIPANT_REMOVED");
    let changed = ConsoleMessage::EvaluationChanged {
        evaluation: running_evaluation(),
    };
    assert_reads_and_writes(
        json!({"type": "EVALUATION_CHANGED", "evaluation": running_evaluation_json()}),
        &changed,
    );
    assert_eq!(changed.kind(), "EVALUATION_CHANGED");
    assert!(changed.to_json().contains("\"EVALUATION_CHANGED\""));
}

#[test]
fn staff_answer_is_the_answer_with_its_source_beside_it() {
    let expected = StaffAnswer {
        answer: Answer {
            question_id: "q1".into(),
            revision: 7,
            content: "x".into(),
            saved_at: nine_o_clock(),
            late: false,
            on_time: None,
        },
        source: Some("imported".into()),
    };
    assert_reads_and_writes(
        json!({"question_id": "q1", "revision": 7, "content": "x",
               "saved_at": "2026-11-22T09:00:00.000Z", "late": false, "on_time": null,
               "source": "imported"}),
        &expected,
    );
}

// ---------------------------------------------------------------------------------------------
// Contract v2: load shedding, conflicts, proctoring
// ---------------------------------------------------------------------------------------------

#[test]
fn answer_rejected_with_conflict_reads_and_writes_the_contract_json() {
    assert_named(RejectCode::Conflict, "conflict");
    assert_reads_and_writes(
        json!({"type": "ANSWER_REJECTED", "evaluation_id": "e1", "question_id": "q1",
               "revision": 3, "code": "conflict"}),
        &ServerMessage::AnswerRejected {
            evaluation_id: "e1".into(),
            question_id: "q1".into(),
            revision: 3,
            code: RejectCode::Conflict,
        },
    );
}

#[test]
fn update_reason_proctoring_changed_is_named_as_in_the_contract() {
    assert_named(UpdateReason::ProctoringChanged, "proctoring_changed");
}

#[test]
fn audit_kinds_of_v2_are_named_as_in_the_contract_and_parse_back() {
    for (kind, name) in [
        (AuditKind::ProctoringChanged, "proctoring_changed"),
        (AuditKind::FocusLost, "focus_lost"),
        (AuditKind::FocusRegained, "focus_regained"),
        (AuditKind::FullscreenExited, "fullscreen_exited"),
        (AuditKind::ClipboardBlocked, "clipboard_blocked"),
        (AuditKind::DisplaysChanged, "displays_changed"),
        (AuditKind::AppRestarted, "app_restarted"),
        (AuditKind::Capabilities, "capabilities"),
    ] {
        assert_named(kind, name);
        assert_eq!(kind.as_str(), name);
        assert_eq!(AuditKind::parse(name), Some(kind));
    }
}

/// Every integrity kind of the contract.
const INTEGRITY_KINDS: [(IntegrityKind, &str); 7] = [
    (IntegrityKind::FocusLost, "focus_lost"),
    (IntegrityKind::FocusRegained, "focus_regained"),
    (IntegrityKind::FullscreenExited, "fullscreen_exited"),
    (IntegrityKind::ClipboardBlocked, "clipboard_blocked"),
    (IntegrityKind::DisplaysChanged, "displays_changed"),
    (IntegrityKind::AppRestarted, "app_restarted"),
    (IntegrityKind::Capabilities, "capabilities"),
];

#[test]
fn integrity_kinds_are_named_as_in_the_contract_and_are_their_own_audit_kinds() {
    for (kind, name) in INTEGRITY_KINDS {
        assert_named(kind, name);
        assert_eq!(kind.as_str(), name);
        assert_eq!(AuditKind::from(kind).as_str(), name);
    }
    assert_rejected::<IntegrityKind>(json!("tab_switched"));
}

#[test]
fn proctoring_reads_and_writes_the_contract_json() {
    let expected = Proctoring {
        fullscreen: true,
        report_focus: true,
        block_clipboard: false,
        single_display: true,
        brief_ms: 1500,
    };
    assert_reads_and_writes(
        json!({"fullscreen": true, "report_focus": true, "block_clipboard": false,
               "single_display": true, "brief_ms": 1500}),
        &expected,
    );
}

#[test]
fn proctoring_defaults_are_every_switch_off_and_two_seconds_brief() {
    let defaults = Proctoring::default();
    assert_reads_and_writes(
        json!({"fullscreen": false, "report_focus": false, "block_clipboard": false,
               "single_display": false, "brief_ms": 2000}),
        &defaults,
    );
    assert_eq!(read::<Proctoring>(json!({})), defaults);
    assert_eq!(
        read::<Proctoring>(json!({"report_focus": true})),
        Proctoring {
            report_focus: true,
            ..defaults
        }
    );
}

#[test]
fn a_proctoring_change_keeps_the_keys_it_does_not_give() {
    let current = Proctoring {
        fullscreen: true,
        report_focus: true,
        block_clipboard: true,
        single_display: false,
        brief_ms: 3000,
    };
    let change: ProctoringChange = read(json!({"block_clipboard": false, "brief_ms": 500}));
    assert_eq!(
        current.apply(change),
        Proctoring {
            block_clipboard: false,
            brief_ms: 500,
            ..current
        }
    );
    assert_eq!(current.apply(read(json!({}))), current);
    assert_reads_and_writes(
        json!({"fullscreen": true}),
        &ProctoringChange {
            switches: Switches {
                fullscreen: Some(true),
                ..Switches::default()
            },
            brief_ms: None,
        },
    );
}

fn focus_regained() -> IntegrityEvent {
    IntegrityEvent {
        evaluation_id: "e1".into(),
        event_id: "0f8b2c1e-7d4a-4b7e-9a51-3c2d1e0f9a8b".into(),
        kind: IntegrityKind::FocusRegained,
        at: nine_o_clock(),
        away_ms: Some(4210),
        displays: None,
        capabilities: None,
        detail: None,
    }
}

#[test]
fn integrity_event_frame_reads_and_writes_the_contract_json() {
    assert_reads_and_writes(
        json!({"type": "INTEGRITY_EVENT", "evaluation_id": "e1",
               "event_id": "0f8b2c1e-7d4a-4b7e-9a51-3c2d1e0f9a8b", "kind": "focus_regained",
               "at": "2026-11-22T09:00:00.000Z", "away_ms": 4210}),
        &ClientMessage::IntegrityEvent(focus_regained()),
    );
}

#[test]
fn integrity_event_http_body_is_the_frame_without_its_type() {
    assert_reads_and_writes(
        json!({"evaluation_id": "e1", "event_id": "0f8b2c1e-7d4a-4b7e-9a51-3c2d1e0f9a8b",
               "kind": "focus_regained", "at": "2026-11-22T09:00:00.000Z", "away_ms": 4210}),
        &focus_regained(),
    );
    let with_nulls: IntegrityEvent = read(json!({
        "evaluation_id": "e1", "event_id": "0f8b2c1e-7d4a-4b7e-9a51-3c2d1e0f9a8b",
        "kind": "focus_regained", "at": "2026-11-22T09:00:00.000Z", "away_ms": 4210,
        "displays": null, "capabilities": null, "detail": null
    }));
    assert_eq!(with_nulls, focus_regained());
}

#[test]
fn integrity_events_carry_displays_capabilities_and_detail() {
    let displays = IntegrityEvent {
        kind: IntegrityKind::DisplaysChanged,
        away_ms: None,
        displays: Some(2),
        ..focus_regained()
    };
    assert_reads_and_writes(
        json!({"evaluation_id": "e1", "event_id": "0f8b2c1e-7d4a-4b7e-9a51-3c2d1e0f9a8b",
               "kind": "displays_changed", "at": "2026-11-22T09:00:00.000Z", "displays": 2}),
        &displays,
    );
    let capabilities = IntegrityEvent {
        kind: IntegrityKind::Capabilities,
        away_ms: None,
        capabilities: Some(Capabilities {
            fullscreen: Some(CapabilityLevel::DetectOnly),
            report_focus: Some(CapabilityLevel::Enforced),
            block_clipboard: Some(CapabilityLevel::Enforced),
            single_display: Some(CapabilityLevel::Unavailable),
        }),
        detail: Some("always-on-top refused by a Wayland compositor".into()),
        ..focus_regained()
    };
    assert_reads_and_writes(
        json!({"evaluation_id": "e1", "event_id": "0f8b2c1e-7d4a-4b7e-9a51-3c2d1e0f9a8b",
               "kind": "capabilities", "at": "2026-11-22T09:00:00.000Z",
               "capabilities": {"fullscreen": "detect_only", "report_focus": "enforced",
                                "block_clipboard": "enforced", "single_display": "unavailable"},
               "detail": "always-on-top refused by a Wayland compositor"}),
        &capabilities,
    );
}

#[test]
fn integrity_event_without_an_id_kind_or_time_fails_to_parse() {
    let full = json!({"evaluation_id": "e1", "event_id": "x", "kind": "focus_lost",
                      "at": "2026-11-22T09:00:00.000Z"});
    assert_eq!(
        read::<IntegrityEvent>(full.clone()).kind,
        IntegrityKind::FocusLost
    );
    for missing in ["evaluation_id", "event_id", "kind", "at"] {
        let mut partial = full.clone();
        partial.as_object_mut().unwrap().remove(missing);
        assert_rejected::<IntegrityEvent>(partial);
    }
    assert_rejected::<Capabilities>(json!({"fullscreen": "maybe"}));
}

#[test]
fn integrity_ack_and_rejected_frames_read_and_write_the_contract_json() {
    let ack = ServerMessage::IntegrityAck(IntegrityAck {
        event_id: "ev1".into(),
    });
    assert_reads_and_writes(json!({"type": "INTEGRITY_ACK", "event_id": "ev1"}), &ack);
    assert_eq!(ack.kind(), "INTEGRITY_ACK");
    assert_eq!(
        serde_json::from_str::<Value>(&ack.to_json()).unwrap(),
        json!({"type": "INTEGRITY_ACK", "event_id": "ev1"})
    );
    assert_reads_and_writes(
        json!({"event_id": "ev1"}),
        &IntegrityAck {
            event_id: "ev1".into(),
        },
    );
    for (code, name) in [
        (IntegrityRejectCode::NotParticipating, "not_participating"),
        (IntegrityRejectCode::NotFound, "not_found"),
        (IntegrityRejectCode::NotOnAccessList, "not_on_access_list"),
    ] {
        let rejected = ServerMessage::IntegrityRejected(IntegrityRejected {
            event_id: "ev1".into(),
            code,
        });
        assert_reads_and_writes(
            json!({"type": "INTEGRITY_REJECTED", "event_id": "ev1", "code": name}),
            &rejected,
        );
        assert_eq!(rejected.kind(), "INTEGRITY_REJECTED");
    }
    assert_rejected::<IntegrityRejectCode>(json!("blocked"));
}

#[test]
fn integrity_summary_reads_and_writes_the_contract_json() {
    let empty = IntegritySummary::default();
    assert_reads_and_writes(
        json!({"events": 0, "focus_lost": 0, "brief": 0, "away_ms": 0, "longest_away_ms": 0,
               "last": null, "capabilities": null}),
        &empty,
    );
    let busy = IntegritySummary {
        events: 5,
        focus_lost: 2,
        brief: 1,
        away_ms: 9400,
        longest_away_ms: 8200,
        last: Some(IntegrityLast {
            kind: IntegrityKind::FocusRegained,
            at: nine_o_clock(),
        }),
        capabilities: Some(Capabilities {
            report_focus: Some(CapabilityLevel::Enforced),
            ..Capabilities::default()
        }),
        capabilities_detail: None,
    };
    assert_reads_and_writes(
        json!({"events": 5, "focus_lost": 2, "brief": 1, "away_ms": 9400,
               "longest_away_ms": 8200,
               "last": {"kind": "focus_regained", "at": "2026-11-22T09:00:00.000Z"},
               "capabilities": {"report_focus": "enforced"}}),
        &busy,
    );
}

#[test]
fn close_codes_the_server_uses_besides_the_contract_ones_are_named() {
    assert_eq!(close::NORMAL, 1000);
    assert_eq!(close::GOING_AWAY, 1001);
    assert_eq!(close::INTERNAL_ERROR, 1011);
    assert_eq!(close::SERVICE_RESTART, 1012);
    assert_eq!(close::TOO_SLOW, 1013);
}

#[test]
fn proctoring_is_given_at_creation_and_changed_by_edit_with_absent_keys_kept() {
    let create: CreateEvaluation = read(json!({
        "title": "Quiz", "questions": [], "proctoring": {"report_focus": true}
    }));
    let change = create.proctoring.expect("the settings given");
    assert_eq!(
        Proctoring::default().apply(change),
        Proctoring {
            report_focus: true,
            ..Proctoring::default()
        }
    );
    let edit: EditEvaluation = read(json!({"proctoring": {"fullscreen": true, "brief_ms": 3000}}));
    let before = Proctoring {
        report_focus: true,
        ..Proctoring::default()
    };
    assert_eq!(
        before.apply(edit.proctoring.unwrap()),
        Proctoring {
            fullscreen: true,
            report_focus: true,
            brief_ms: 3000,
            ..Proctoring::default()
        }
    );
    // A stored or older evaluation without settings reads as the defaults.
    let evaluation: Evaluation = read(json!({
        "id": "e1", "title": "Quiz", "phase": "draft", "ends_at": null, "access": "list",
        "owner": "prof1", "questions": []
    }));
    assert_eq!(evaluation.proctoring, Proctoring::default());
}

#[test]
fn a_setting_set_is_written_as_names_in_the_contracts_order_each_once() {
    let set: SettingSet = serde_json::from_value(json!([
        "single_display",
        "block_clipboard",
        "single_display"
    ]))
    .unwrap();
    assert_eq!(
        serde_json::to_value(set).unwrap(),
        json!(["block_clipboard", "single_display"])
    );
    assert!(set.contains(ProctoringSetting::BlockClipboard));
    assert!(!set.contains(ProctoringSetting::Fullscreen));
    assert_eq!(
        serde_json::to_value(SettingSet::default()).unwrap(),
        json!([])
    );
    assert!(serde_json::from_value::<SettingSet>(json!(["kiosk"])).is_err());
    let mut exempt = joined_participation();
    exempt.proctoring_exempt = set;
    let mut written = joined_participation_json();
    written["proctoring_exempt"] = json!(["block_clipboard", "single_display"]);
    assert_reads_and_writes(written, &exempt);
}
