//! Linkerd documentation examples: they validate clean and translate to
//! the expected `DestinationProfile`.

use std::collections::HashMap;

use linkerd2_proxy_api::destination as pb;
use linkerd2_proxy_api::http_types::{http_method, HttpMethod};
use linkerd2_proxy_api::meta::{metadata, Metadata, Resource};
use pb::request_match::{Match as Rq, Seq as RqSeq};
use pb::response_match::Match as Rs;
use wisp_profiles::validate::{parse_documents, DocumentStatus, Object, ValidateOptions};
use wisp_profiles::{destination_profile, ServiceProfile, ServiceRef, TrafficSplit};

fn objects() -> Vec<Object> {
    let path = format!(
        "{}/tests/fixtures/linkerd-docs.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    parse_documents(
        &text,
        Some("linkerd-docs.yaml"),
        &ValidateOptions::default(),
    )
    .expect("yaml")
    .into_iter()
    .map(|d| match d.status {
        DocumentStatus::Valid(o) => *o,
        other => panic!("{}: {other:?}", d.id),
    })
    .collect()
}

fn profiles() -> Vec<ServiceProfile> {
    objects()
        .into_iter()
        .filter_map(|o| match o {
            Object::ServiceProfile(sp) => Some(sp),
            _ => None,
        })
        .collect()
}

fn split() -> TrafficSplit {
    objects()
        .into_iter()
        .find_map(|o| match o {
            Object::TrafficSplit(ts) => Some(ts),
            _ => None,
        })
        .expect("split")
}

fn method(m: http_method::Registered) -> Rq {
    Rq::Method(HttpMethod {
        r#type: Some(http_method::Type::Registered(m as i32)),
    })
}

fn path(re: &str) -> Rq {
    Rq::Path(pb::PathMatch { regex: re.into() })
}

fn rq(m: Rq) -> pb::RequestMatch {
    pb::RequestMatch { r#match: Some(m) }
}

fn all(parts: Vec<Rq>) -> pb::RequestMatch {
    rq(Rq::All(RqSeq {
        matches: parts.into_iter().map(rq).collect(),
    }))
}

fn route(name: &str, condition: pb::RequestMatch) -> pb::Route {
    pb::Route {
        condition: Some(condition),
        metrics_labels: HashMap::from([("route".to_string(), name.to_string())]),
        ..Default::default()
    }
}

fn failure_5xx(min: u32, max: u32) -> pb::ResponseClass {
    pb::ResponseClass {
        condition: Some(pb::ResponseMatch {
            r#match: Some(Rs::Status(pb::HttpStatusRange { min, max })),
        }),
        is_failure: true,
    }
}

fn resource(group: &str, kind: &str, name: &str, namespace: &str, port: u32) -> Option<Metadata> {
    Some(Metadata {
        kind: Some(metadata::Kind::Resource(Resource {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.into(),
            section: String::new(),
            port,
        })),
    })
}

fn default_budget() -> Option<pb::RetryBudget> {
    Some(pb::RetryBudget {
        retry_ratio: 0.2,
        min_retries_per_second: 10,
        ttl: Some(prost_types::Duration {
            seconds: 10,
            nanos: 0,
        }),
    })
}

#[test]
fn books_webapp_profile() {
    use http_method::Registered::{Get, Post};
    let sp = &profiles()[0];
    let svc = ServiceRef {
        name: "webapp".into(),
        namespace: "booksapp".into(),
    };
    let got = destination_profile(
        "webapp.booksapp.svc.cluster.local",
        7000,
        Some(&svc),
        Some(sp),
        &[],
        "cluster.local",
    );
    let mut delete = route(
        "POST /books/{id}/delete",
        all(vec![path("/books/[^/]*/delete"), method(Post)]),
    );
    delete.response_classes = vec![failure_5xx(500, 599)];
    let expected = pb::DestinationProfile {
        fully_qualified_name: "webapp.booksapp.svc.cluster.local".into(),
        routes: vec![
            route("GET /", all(vec![path("/"), method(Get)])),
            route("GET /books", all(vec![path("/books"), method(Get)])),
            route("POST /books", all(vec![path("/books"), method(Post)])),
            route(
                "GET /books/{id}",
                all(vec![path("/books/[^/]*"), method(Get)]),
            ),
            route(
                "POST /books/{id}/edit",
                all(vec![path("/books/[^/]*/edit"), method(Post)]),
            ),
            delete,
        ],
        retry_budget: default_budget(),
        parent_ref: resource("core", "Service", "webapp", "booksapp", 7000),
        profile_ref: resource(
            "linkerd.io",
            "ServiceProfile",
            "webapp.booksapp.svc.cluster.local",
            "booksapp",
            0,
        ),
        ..Default::default()
    };
    assert_eq!(got, expected);
}

#[test]
fn emojivoto_web_profile_sends_both_status_bounds() {
    let sp = &profiles()[1];
    let got = destination_profile(
        "web-svc.emojivoto.svc.cluster.local",
        80,
        None,
        Some(sp),
        &[],
        "cluster.local",
    );
    assert_eq!(got.routes.len(), 2);
    assert_eq!(got.routes[1].response_classes, vec![failure_5xx(500, 500)]);
    assert_eq!(got.parent_ref, None);
    assert_eq!(got.routes[0].metrics_labels["route"], "GET /api/list");
}

#[test]
fn retries_example() {
    use http_method::Registered::{Delete, Head};
    let sp = &profiles()[2];
    let got = destination_profile(
        "authors.booksapp.svc.cluster.local",
        7001,
        None,
        Some(sp),
        &[],
        "cluster.local",
    );
    let mut head = route(
        "HEAD /authors/{id}.json",
        all(vec![path("/authors/[^/]*\\.json"), method(Head)]),
    );
    head.is_retryable = true;
    let mut by_id = route(
        "authors-by-id",
        rq(Rq::All(RqSeq {
            matches: vec![
                rq(path("/authors/\\d+")),
                rq(Rq::Not(Box::new(rq(method(Delete))))),
            ],
        })),
    );
    by_id.timeout = Some(prost_types::Duration {
        seconds: 0,
        nanos: 300_000_000,
    });
    assert_eq!(got.routes, vec![head, by_id]);
    assert_eq!(got.retry_budget, default_budget());
}

#[test]
fn fault_injection_split_becomes_dst_overrides() {
    let ts = split();
    let profile = &profiles()[0];
    let books = ServiceRef {
        name: "books".into(),
        namespace: "booksapp".into(),
    };
    // The split's apex is `books`: it applies to books, not to webapp.
    let got = destination_profile(
        "books.booksapp.svc.cluster.local",
        7002,
        Some(&books),
        None,
        &[&ts],
        "cluster.local",
    );
    assert_eq!(
        got.dst_overrides,
        vec![
            pb::WeightedDst {
                authority: "books.booksapp.svc.cluster.local:7002".into(),
                weight: 9000,
                backend_ref: None,
            },
            pb::WeightedDst {
                authority: "error-injector.booksapp.svc.cluster.local:7002".into(),
                weight: 1000,
                backend_ref: None,
            },
        ]
    );
    assert!(got.routes.is_empty());
    assert_eq!(got.retry_budget, default_budget());
    let webapp = destination_profile(
        "webapp.booksapp.svc.cluster.local",
        7000,
        None,
        Some(profile),
        &[&ts],
        "cluster.local",
    );
    assert!(webapp.dst_overrides.is_empty());
}
