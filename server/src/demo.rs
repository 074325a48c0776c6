//! `--demo`: demo accounts and a running evaluation, so that the product can be tried at once.

use crate::app::AppState;
use crate::domain::new_id;
use crate::http::accounts::create_account;
use crate::store::NewEvaluation;
use invigil_protocol::{Access, Choice, Phase, Question, QuestionKind, Role, Timestamp};
use std::net::SocketAddr;

/// The demo's accounts: (username, password, role, display name).
pub const ACCOUNTS: &[(&str, &str, Role, &str)] = &[
    ("admin", "demo-admin", Role::Admin, "Demo Admin"),
    ("prof", "demo-prof", Role::Professor, "Prof. Ada Lovelace"),
    ("alice", "demo-student", Role::Student, "Alice Martin"),
    ("bob", "demo-student", Role::Student, "Bob Dupont"),
    ("carol", "demo-student", Role::Student, "Carol Nguyen"),
];

/// The demo evaluation's title.
pub const TITLE: &str = "Demo: Algorithms quiz";

/// Creates what is missing of the demo and prints how to sign in.
pub async fn seed(state: &AppState, scheme: &str, addr: SocketAddr) -> anyhow::Result<()> {
    for (username, password, role, name) in ACCOUNTS {
        if state.store.account(username).await?.is_none() {
            create_account(
                state,
                username,
                (*password).to_owned(),
                *role,
                Some((*name).to_owned()),
            )
            .await
            .map_err(|e| anyhow::anyhow!("could not create demo user {username}: {e}"))?;
        }
    }
    let prof = state
        .store
        .account("prof")
        .await?
        .expect("created above")
        .user;
    let exists = state
        .store
        .evaluations()
        .await?
        .iter()
        .any(|e| e.title == TITLE);
    if !exists {
        let ends_at = Timestamp::from_unix_ms(Timestamp::now().unix_ms() + 2 * 3600 * 1000);
        let evaluation = state
            .store
            .create_evaluation(
                &prof,
                NewEvaluation {
                    id: new_id(),
                    title: TITLE.to_owned(),
                    questions: questions(),
                    ends_at,
                    access: Access::List,
                    proctoring: Default::default(),
                },
            )
            .await?;
        let students = state
            .store
            .users_named(&["alice".into(), "bob".into(), "carol".into()])
            .await?;
        state
            .store
            .set_access_list(&evaluation.id, &students, &prof)
            .await?;
        state
            .store
            .set_phase(&evaluation.id, Phase::InProgress, &prof)
            .await?;
    }
    println!("invigil demo is ready at {scheme}://{addr}");
    println!("  students:  alice, bob, carol   password: demo-student");
    println!("  professor: prof                password: demo-prof");
    println!("  admin:     admin               password: demo-admin");
    println!("  evaluation \"{TITLE}\" is in progress for the three students.");
    Ok(())
}

fn questions() -> Vec<Question> {
    vec![
        Question {
            id: "q1".into(),
            prompt: "Explain in a few sentences how quicksort chooses and uses its pivot.".into(),
            kind: QuestionKind::Text,
        },
        Question {
            id: "q2".into(),
            prompt: "Write a function `binary_search(xs, x)` that returns the index of x in the sorted list xs, or -1.".into(),
            kind: QuestionKind::Code,
        },
        Question {
            id: "q3".into(),
            prompt: "What is the worst-case time complexity of mergesort?".into(),
            kind: QuestionKind::Choice {
                choices: vec![
                    Choice { id: "a".into(), label: "O(n)".into() },
                    Choice { id: "b".into(), label: "O(n log n)".into() },
                    Choice { id: "c".into(), label: "O(n²)".into() },
                ],
            },
        },
    ]
}
