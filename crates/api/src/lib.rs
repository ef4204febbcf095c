//! huddle's HTTP surface: `/health`, `/metrics`, the Plivo-compatible REST API and the
//! recordings. The API and the recordings always need HTTP basic auth with the account's
//! credentials; `/metrics` needs it when `http.metrics_auth` is on; `/health` never does.

mod activity;
pub mod auth;
pub mod connections;
mod listener;
pub mod mpc;

pub use listener::{serve, HttpLimits};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

/// Which subsystems are up; cheap to clone and to flip from any task.
#[derive(Debug, Clone, Default)]
pub struct Health {
    sip: Arc<AtomicBool>,
    http: Arc<AtomicBool>,
    storage: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
}

impl Health {
    /// Marks SIP up or down.
    pub fn set_sip(&self, up: bool) {
        self.sip.store(up, Ordering::Relaxed);
    }
    /// Marks HTTP up or down.
    pub fn set_http(&self, up: bool) {
        self.http.store(up, Ordering::Relaxed);
    }
    /// Marks storage up or down.
    pub fn set_storage(&self, up: bool) {
        self.storage.store(up, Ordering::Relaxed);
    }
    /// Marks the server as draining (SIGTERM): `/health` answers 503 `"draining"` from then
    /// on, so that load balancers send new work elsewhere while live calls finish.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
    /// True once [`Health::set_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
    fn snapshot(&self) -> (bool, bool, bool) {
        (
            self.sip.load(Ordering::Relaxed),
            self.http.load(Ordering::Relaxed),
            self.storage.load(Ordering::Relaxed),
        )
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct ApiState {
    /// Subsystem health.
    pub health: Health,
    /// Prometheus renderer.
    pub metrics: PrometheusHandle,
    /// The MPC REST API, when the server runs rooms.
    pub mpc: Option<mpc::MpcApi>,
    /// When set, `/metrics` needs these credentials (`http.metrics_auth`).
    pub metrics_auth: Option<auth::Credentials>,
}

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn install_metrics_recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("huddle_mixer_tick_lateness_seconds".into()),
                    &[0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => {
                    // Histogram samples wait in the recorder until drained: without a scrape
                    // they would grow without bound, so drain them every few seconds.
                    let upkeep = handle.clone();
                    let _ = std::thread::Builder::new()
                        .name("huddle-metrics-upkeep".into())
                        .spawn(move || loop {
                            std::thread::sleep(std::time::Duration::from_secs(5));
                            upkeep.run_upkeep();
                        });
                    handle
                }
                // Another recorder is installed (tests): render from a detached one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The HTTP routes.
pub fn router(state: ApiState) -> Router {
    let mpc = state.mpc.clone();
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state);
    if let Some(api) = mpc {
        router = router.merge(mpc::routes(api));
    }
    router.fallback(not_found)
}

async fn health(State(state): State<ApiState>) -> impl IntoResponse {
    let (sip, http, storage) = state.health.snapshot();
    let draining = state.health.is_draining();
    let up = sip && http && storage && !draining;
    let status = if draining {
        "draining"
    } else if up {
        "ok"
    } else {
        "degraded"
    };
    let body = json!({
        "status": status,
        "sip": sip, "http": http, "storage": storage,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let code = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(credentials) = &state.metrics_auth {
        if !credentials.check(&headers) {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "authentication required: use HTTP basic auth with the auth id and auth token\n",
            )
                .into_response();
            auth::challenge(response.headers_mut());
            return response;
        }
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"api_id": uuid::Uuid::new_v4().to_string(), "error": "not found"})),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get_raw(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn health_reflects_flags_and_unknown_paths_are_json_404() {
        let health = Health::default();
        let state = ApiState {
            health: health.clone(),
            metrics: install_metrics_recorder(),
            mpc: None,
            metrics_auth: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            router(state),
            HttpLimits::default(),
            std::future::pending(),
        ));
        assert!(get_raw(addr, "/health").await.starts_with("HTTP/1.1 503"));
        health.set_sip(true);
        health.set_http(true);
        health.set_storage(true);
        let ok = get_raw(addr, "/health").await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.contains("\"status\":\"ok\""),
            "{ok}"
        );
        let nf = get_raw(addr, "/nope").await;
        assert!(nf.starts_with("HTTP/1.1 404") && nf.contains("\"error\":\"not found\""));
        assert!(get_raw(addr, "/metrics").await.starts_with("HTTP/1.1 200"));
        health.set_draining();
        let draining = get_raw(addr, "/health").await;
        assert!(
            draining.starts_with("HTTP/1.1 503") && draining.contains("\"status\":\"draining\""),
            "{draining}"
        );
    }

    #[tokio::test]
    async fn metrics_auth_puts_metrics_behind_basic_auth() {
        let state = ApiState {
            health: Health::default(),
            metrics: install_metrics_recorder(),
            mpc: None,
            metrics_auth: Some(auth::Credentials::new("MAID", "tok")),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            router(state),
            HttpLimits::default(),
            std::future::pending(),
        ));
        let refused = get_raw(addr, "/metrics").await;
        assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
        assert!(
            refused
                .to_ascii_lowercase()
                .contains("www-authenticate: basic realm=\"huddle\""),
            "{refused}"
        );
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        // MAID:tok
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic TUFJRDp0b2s=\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut ok = String::new();
        s.read_to_string(&mut ok).await.unwrap();
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(get_raw(addr, "/health").await.starts_with("HTTP/1.1 503"));
    }
}
