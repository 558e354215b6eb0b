//! `GET /metrics`: served in the format its content type names, and kept
//! private with `--metrics-token` (the bearer token a scraper sends).

use crate::support::TestApp;
use cloud_api::settings::Settings;

async fn app(metrics_token: Option<&str>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_database(None, dir.path().to_owned());
    settings.metrics_token = metrics_token.map(str::to_owned);
    TestApp::start_with(settings, Box::new(dir), |s| s).await
}

async fn scrape(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("http://{}/metrics", app.addr));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// prometheus-client writes the OpenMetrics text format (`_total`
/// counters, a final `# EOF`); the content type says so, so a scraper
/// parses it as what it is.
#[tokio::test]
async fn metrics_are_served_as_openmetrics_text() {
    let app = app(None).await;
    app.get("/api/health", &[], None).await.expect(200);
    let response = scrape(&app, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("http_requests_total{"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_metrics_token_keeps_metrics_private() {
    let app = app(Some("scrape-secret-1234")).await;
    let (_, api_token) = app.user("Ada", "ada@example.com").await;
    for token in [None, Some("wrong"), Some(api_token.as_str())] {
        let response = scrape(&app, token).await;
        assert_eq!(response.status(), 401, "{token:?}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"metrics\""
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body["error"],
            "metrics need the bearer token set with --metrics-token"
        );
    }
    let response = scrape(&app, Some("scrape-secret-1234")).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().ends_with("# EOF\n"));
    // The API's own routes are not affected.
    app.get("/api/health", &[], None).await.expect(200);
    app.stop().await;
}

/// The value of the one series `series` (name and labels) in `text`.
fn value(text: &str, series: &str) -> f64 {
    let found: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
        .collect();
    assert_eq!(found.len(), 1, "`{series}` once in:\n{text}");
    found[0]
}

/// Every service's lifecycle, as the real server serves it at `/metrics`
/// (provision's `PrometheusObserver`): builds, releases by exit, build
/// failures, values held, the two histograms, and the app database
/// released with the shutdown exit when the server stops.
#[tokio::test]
async fn every_service_lifecycle_is_served_as_provision_metrics() {
    let app = app(None).await;
    let (_, token) = app.user("Ada", "ada@example.com").await;
    // Its bad token's 401: `Authenticated` fails.
    app.users_traffic(&token).await;
    app.get("/api/users", &[], None).await.expect(401); // no token: BearerToken fails

    let text = scrape(&app, None).await.text().await.unwrap();
    let conn = r#"service="Conn",lifetime="request""#;
    let tx = r#"service="Tx",lifetime="request""#;
    for (series, expected) in [
        // Conn: the list, the 404, the write's transaction, the bad token.
        (
            format!("provision_service_acquisitions_total{{{conn}}}"),
            4.0,
        ),
        (
            format!(r#"provision_service_releases_total{{{conn},exit="success"}}"#),
            2.0,
        ),
        (
            format!(r#"provision_service_releases_total{{{conn},exit="failure"}}"#),
            2.0,
        ),
        (
            format!(r#"provision_service_releases_total{{{conn},exit="cancelled"}}"#),
            0.0,
        ),
        (format!("provision_service_held{{{conn}}}"), 0.0),
        (
            format!("provision_service_acquire_wait_seconds_count{{{conn}}}"),
            4.0,
        ),
        (
            format!("provision_service_held_seconds_count{{{conn}}}"),
            4.0,
        ),
        (
            format!("provision_service_release_failures_total{{{conn}}}"),
            0.0,
        ),
        (format!("provision_service_acquisitions_total{{{tx}}}"), 1.0),
        (
            format!(r#"provision_service_releases_total{{{tx},exit="success"}}"#),
            1.0,
        ),
        (
            format!("provision_service_settle_failures_total{{{tx}}}"),
            0.0,
        ),
        (
            format!(r#"provision_service_steps_abandoned_total{{{tx},step="settle"}}"#),
            0.0,
        ),
        (
            r#"provision_service_build_failures_total{service="BearerToken",lifetime="request"}"#
                .to_owned(),
            1.0,
        ),
        (
            r#"provision_service_build_failures_total{service="Authenticated",lifetime="request"}"#
                .to_owned(),
            1.0,
        ),
        (
            r#"provision_service_held{service="Db",lifetime="app"}"#.to_owned(),
            1.0,
        ),
    ] {
        assert_eq!(value(&text, &series), expected, "{series}");
    }

    let metrics = app.metrics.clone();
    app.stop().await;
    let text = metrics.encode();
    let db = r#"service="Db",lifetime="app""#;
    assert_eq!(
        value(
            &text,
            &format!(r#"provision_service_releases_total{{{db},exit="shutdown"}}"#)
        ),
        1.0
    );
    assert_eq!(
        value(&text, &format!("provision_service_held{{{db}}}")),
        0.0
    );
}

/// `FINISH_ROUTES` (whose `provision_finish_total` series start at zero)
/// are exactly the operations whose OpenAPI description says their
/// disconnect policy is `finish`; and `/metrics` shows each of their series
/// at zero before any request was made.
#[tokio::test]
async fn finish_routes_are_those_the_openapi_says_and_start_at_zero() {
    use utoipa::OpenApi;
    let doc = serde_json::to_value(cloud_api::http::ApiDoc::openapi()).unwrap();
    let mut described: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, op)| {
                    op["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("Disconnect policy: `finish`"))
                })
                .map(move |(method, _)| (method.to_uppercase(), path.clone()))
        })
        .collect();
    described.sort();
    let mut listed: Vec<(String, String)> = cloud_api::http::FINISH_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    listed.sort();
    assert_eq!(listed, described);

    let app = app(None).await;
    let text = scrape(&app, None).await.text().await.unwrap();
    for (method, route) in cloud_api::http::FINISH_ROUTES {
        for outcome in ["completed", "cut", "panicked"] {
            let series = format!(
                r#"provision_finish_total{{method="{method}",route="{route}",outcome="{outcome}"}}"#
            );
            assert_eq!(value(&text, &series), 0.0, "{series}");
        }
    }
    app.stop().await;
}
