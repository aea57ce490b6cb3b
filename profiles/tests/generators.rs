//! Generators: OpenAPI 2/3 petstores, a gRPC `.proto`, the template.

use wisp_profiles::generate::{from_openapi, from_proto, template, to_yaml};
use wisp_profiles::{validate_document, ServiceProfile};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn routes(sp: &ServiceProfile) -> Vec<(String, String, String)> {
    sp.spec
        .routes
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.condition.method.clone().unwrap_or_default(),
                r.condition.path_regex.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn owned(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

/// The generated YAML must itself validate clean.
fn assert_valid_yaml(sp: &ServiceProfile) -> String {
    let yaml = to_yaml(sp).expect("yaml");
    let problems = validate_document(&yaml, Some("generated.yaml"));
    assert!(problems.is_empty(), "{problems:#?}\n{yaml}");
    yaml
}

#[test]
fn petstore_openapi3() {
    let sp = from_openapi(
        &fixture("petstore-v3.yaml"),
        "petstore",
        "pets",
        "cluster.local",
    )
    .expect("generate");
    assert_eq!(sp.name(), "petstore.pets.svc.cluster.local");
    assert_eq!(sp.namespace(), "pets");
    assert_eq!(
        routes(&sp),
        owned(&[
            ("GET /pets", "GET", "^/pets$"),
            ("POST /pets", "POST", "^/pets$"),
            ("GET /pets/{petId}", "GET", "^/pets/[^/]*$"),
        ])
    );
    let post = &sp.spec.routes[1];
    assert_eq!(post.timeout.as_deref(), Some("500ms"));
    let classes: Vec<(u32, u32, bool)> = post
        .response_classes
        .iter()
        .map(|c| {
            let s = c.condition.status.clone().expect("status");
            (s.min, s.max, c.is_failure)
        })
        .collect();
    assert_eq!(classes, vec![(201, 201, false), (500, 599, true)]);
    assert_valid_yaml(&sp);
}

#[test]
fn petstore_swagger2() {
    let sp = from_openapi(
        &fixture("petstore-v2.json"),
        "petstore",
        "default",
        "cluster.local",
    )
    .expect("generate");
    assert_eq!(
        routes(&sp),
        owned(&[
            ("POST /v2/pet", "POST", "^/v2/pet$"),
            ("PUT /v2/pet", "PUT", "^/v2/pet$"),
            ("GET /v2/pet/findByStatus", "GET", "^/v2/pet/findByStatus$"),
            ("GET /v2/pet/findByTags", "GET", "^/v2/pet/findByTags$"),
            ("DELETE /v2/pet/{petId}", "DELETE", "^/v2/pet/[^/]*$"),
            ("GET /v2/pet/{petId}", "GET", "^/v2/pet/[^/]*$"),
            ("POST /v2/pet/{petId}", "POST", "^/v2/pet/[^/]*$"),
            (
                "POST /v2/pet/{petId}/uploadImage",
                "POST",
                "^/v2/pet/[^/]*/uploadImage$"
            ),
            ("GET /v2/store/inventory", "GET", "^/v2/store/inventory$"),
            ("POST /v2/store/order", "POST", "^/v2/store/order$"),
            (
                "DELETE /v2/store/order/{orderId}",
                "DELETE",
                "^/v2/store/order/[^/]*$"
            ),
            (
                "GET /v2/store/order/{orderId}",
                "GET",
                "^/v2/store/order/[^/]*$"
            ),
            ("POST /v2/user", "POST", "^/v2/user$"),
            ("GET /v2/user/login", "GET", "^/v2/user/login$"),
            ("GET /v2/user/logout", "GET", "^/v2/user/logout$"),
            ("DELETE /v2/user/{username}", "DELETE", "^/v2/user/[^/]*$"),
            ("GET /v2/user/{username}", "GET", "^/v2/user/[^/]*$"),
            ("PUT /v2/user/{username}", "PUT", "^/v2/user/[^/]*$"),
        ])
    );
    let get_pet = &sp.spec.routes[5];
    assert!(get_pet.is_retryable);
    assert_eq!(get_pet.timeout.as_deref(), Some("250ms"));
    assert_eq!(get_pet.response_classes.len(), 3);
    let delete_user = &sp.spec.routes[15];
    assert!(delete_user
        .response_classes
        .last()
        .is_some_and(|c| c.is_failure));
    assert!(!sp.spec.routes[12].is_retryable);
    assert!(
        sp.spec.routes[12].response_classes.is_empty(),
        "`default` is not a status"
    );
    assert_valid_yaml(&sp);
}

#[test]
fn openapi_output_is_deterministic() {
    let a = to_yaml(
        &from_openapi(
            &fixture("petstore-v2.json"),
            "p",
            "default",
            "cluster.local",
        )
        .expect("a"),
    );
    let b = to_yaml(
        &from_openapi(
            &fixture("petstore-v2.json"),
            "p",
            "default",
            "cluster.local",
        )
        .expect("b"),
    );
    assert_eq!(a.expect("a"), b.expect("b"));
}

#[test]
fn not_openapi_is_an_error() {
    assert!(from_openapi("{\"hello\": 1}", "p", "default", "cluster.local").is_err());
    assert!(from_openapi("a: [", "p", "default", "cluster.local").is_err());
}

#[test]
fn grpc_proto() {
    let sp = from_proto(
        &fixture("emojivoto.proto"),
        "emoji-svc",
        "emojivoto",
        "cluster.local",
    )
    .expect("generate");
    assert_eq!(sp.name(), "emoji-svc.emojivoto.svc.cluster.local");
    assert_eq!(
        routes(&sp),
        owned(&[
            (
                "POST /emojivoto.v1.EmojiService/ListAll",
                "POST",
                "^/emojivoto\\.v1\\.EmojiService/ListAll$"
            ),
            (
                "POST /emojivoto.v1.EmojiService/FindByShortcode",
                "POST",
                "^/emojivoto\\.v1\\.EmojiService/FindByShortcode$"
            ),
            (
                "POST /emojivoto.v1.VotingService/VotePoop",
                "POST",
                "^/emojivoto\\.v1\\.VotingService/VotePoop$"
            ),
            (
                "POST /emojivoto.v1.VotingService/Results",
                "POST",
                "^/emojivoto\\.v1\\.VotingService/Results$"
            ),
        ])
    );
    let retryable: Vec<bool> = sp.spec.routes.iter().map(|r| r.is_retryable).collect();
    assert_eq!(retryable, vec![false, true, false, false]);
    assert_valid_yaml(&sp);
}

#[test]
fn proto_without_package_and_errors() {
    let sp = from_proto(
        "service S { rpc M (A) returns (B); }",
        "s",
        "default",
        "cluster.local",
    )
    .expect("ok");
    assert_eq!(routes(&sp), owned(&[("POST /S/M", "POST", "^/S/M$")]));
    let err = from_proto(
        "service S {\n rpc M (A) returns B;\n}",
        "s",
        "default",
        "cluster.local",
    )
    .expect_err("malformed");
    assert!(err.to_string().contains("line 2"), "{err}");
    assert!(from_proto(
        "service S { rpc M (A) returns (B);",
        "s",
        "default",
        "cluster.local"
    )
    .is_err());
}

#[test]
fn template_validates() {
    let text = template("web", "books", "cluster.local");
    assert!(text.contains("name: web.books.svc.cluster.local"));
    assert!(text.contains("namespace: books"));
    assert!(text.contains("# retryBudget:"));
    let problems = validate_document(&text, Some("template.yaml"));
    assert!(problems.is_empty(), "{problems:#?}");
}
