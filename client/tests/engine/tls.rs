//! The engine over HTTPS and WSS: a school's own certificate authority (`INVIGIL_CA_FILE`) is
//! trusted besides the platform's, and a server whose certificate no trusted authority issued is
//! refused with a message that tells the student what to ask for.

use crate::harness::*;
use invigil_client::view::{AnswerState, ConnectionState};
use invigil_client::{ClientConfig, Engine, Error, ServerUrl};
use invigil_e2e::tls::Authority;
use std::path::Path;

fn config(server: &Server, dir: &Path, ca: Option<&Authority>) -> ClientConfig {
    let mut config = ClientConfig::new(ServerUrl::parse(&server.url()).unwrap(), dir.join("data"));
    config.ca_file = ca.map(|ca| ca.write(&dir.join("school-ca.pem")));
    config
}

#[tokio::test]
async fn trusting_the_schools_authority_the_engine_signs_in_over_https_and_saves_over_wss() {
    let school = Authority::new("A school's CA");
    let server = Server::start_tls(5000, &school.issue()).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice =
        Student::start_with(config(&server, dir.path(), Some(&school)), mock_vault()).await;

    alice.sign_in("alice").await;
    alice.until_evaluation(&evaluation.id).await;
    alice.engine.join(&evaluation.id).await.unwrap();
    alice.until_connection(ConnectionState::Online).await;
    alice
        .engine
        .edit(&evaluation.id, "q1", "Over TLS".into())
        .unwrap();

    alice
        .until_answer(&evaluation.id, "q1", AnswerState::Saved)
        .await;
    let stored = prof.answers(&evaluation.id, "alice").await;
    assert_eq!(stored[0].content, "Over TLS");
}

#[tokio::test]
async fn a_certificate_no_trusted_authority_issued_is_refused_with_what_to_do() {
    let server = Server::start_tls(5000, &Authority::new("A school's CA").issue()).await;
    Staff::admin(&server)
        .await
        .create_user("alice", "student")
        .await;
    let another = Authority::new("Another school's CA");

    // Trusting another school's authority, then the platform's alone.
    for ca in [Some(&another), None] {
        let dir = tempfile::tempdir().unwrap();
        let alice = Engine::start(config(&server, dir.path(), ca), mock_vault())
            .await
            .unwrap();

        let error = alice
            .sign_in(None, "alice", PASSWORD)
            .await
            .expect_err("the certificate is refused");

        assert!(
            matches!(error, Error::UntrustedCertificate { .. }),
            "{error:?}"
        );
        assert_eq!(error.kind(), "untrusted_certificate");
        let message = error.to_string();
        assert!(
            message.starts_with("The server's certificate is not trusted by this computer"),
            "{message}"
        );
        assert!(message.contains("INVIGIL_CA_FILE"), "{message}");
        assert!(alice.session_id().is_none());
    }
}

#[tokio::test]
async fn a_ca_file_that_cannot_be_read_stops_the_engine_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        ClientConfig::new(ServerUrl::parse("https://127.0.0.1:9").unwrap(), dir.path());
    config.ca_file = Some(dir.path().join("missing-ca.pem"));

    let error = Engine::start(config, mock_vault())
        .await
        .expect_err("the engine does not start");

    assert_eq!(error.kind(), "ca_file");
    assert!(error.to_string().contains("missing-ca.pem"), "{error}");
}
