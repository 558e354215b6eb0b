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
