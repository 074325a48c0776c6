//! The OpenAPI document (`GET /api/openapi.json`): generated from the handlers, it must describe
//! every route the router serves, with its methods and the answers the authorization matrix sees,
//! every error with the contract's error body.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;

#[tokio::test]
async fn every_route_is_in_the_openapi_document_with_its_methods_and_error_responses() {
    let app = TestApp::spawn().await;

    let (status, document) = app.call(Method::GET, "/api/openapi.json", None, None).await;

    assert_eq!(status, StatusCode::OK);
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let routes = invigil_server::app::routes();
    let mut documented = BTreeSet::new();
    for (method, path) in document["paths"].as_object().expect("paths") {
        for verb in path.as_object().unwrap().keys() {
            documented.insert((verb.to_uppercase(), method.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(m, r)| (m.to_string(), (*r).to_owned()))
        .collect();
    assert_eq!(documented, served, "the document and the router differ");

    for (method, route) in &routes {
        let operation = &document["paths"][*route][method.as_str().to_lowercase()];
        let responses: BTreeSet<u16> = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {route} has no responses"))
            .keys()
            .map(|s| s.parse().unwrap())
            .collect();
        let seen = crate::matrix::statuses(method.as_str(), route);
        assert!(
            !seen.is_empty(),
            "{method} {route} has no row in the matrix"
        );
        assert!(
            seen.is_subset(&responses),
            "{method} {route}: the matrix sees {seen:?}, the document lists {responses:?}"
        );
        for status in responses.iter().filter(|s| **s >= 400) {
            let schema = &operation["responses"][status.to_string()]["content"]["application/json"]
                ["schema"]["$ref"];
            assert!(
                schema.as_str().is_some_and(|s| s.ends_with("/ErrorBody")),
                "{method} {route} {status} answers the contract's error body: {schema}"
            );
        }
    }
}

#[tokio::test]
async fn the_documents_schemas_are_the_protocols_types() {
    let app = TestApp::spawn().await;

    let (_, document) = app.call(Method::GET, "/api/openapi.json", None, None).await;

    let schemas = &document["components"]["schemas"];
    // The error body and its codes, as the protocol crate writes them.
    let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode is an enumeration")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(codes.contains(&"session_invalidated"), "{codes:?}");
    let login = &document["paths"]["/api/login"]["post"];
    assert_eq!(
        login["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        Value::from("#/components/schemas/LoginRequest")
    );
    assert!(schemas["Evaluation"]["properties"]["phase"].is_object());
}
