//! A small real HTTP server standing in for a call center's web application: it answers
//! configured paths with configured bodies and records every request it receives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct StubRequest {
    /// GET, POST, ...
    pub method: String,
    /// Path without query.
    pub path: String,
    /// The raw query string (empty when none).
    pub raw_query: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// Decoded form body pairs (POST).
    pub form: Vec<(String, String)>,
    /// Content-Type of the request.
    pub content_type: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    /// When it arrived.
    pub received: Instant,
    /// The status the stub answered it with.
    pub status: u16,
}

impl StubRequest {
    /// A parameter from the query or the form.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .chain(self.form.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header's value (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct Canned {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    delay: Duration,
    headers: Vec<(String, String)>,
    /// Bodies chosen by one request parameter's value.
    by_param: Option<ByParam>,
}

/// A parameter's name and the body for each of its values.
type ByParam = (String, Vec<(String, Vec<u8>)>);

#[derive(Default)]
struct State {
    routes: HashMap<String, Canned>,
    requests: Vec<StubRequest>,
}

/// The running stub; stops when dropped.
pub struct HttpStub {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpStub {
    /// Starts on 127.0.0.1 with a free port. Unknown paths answer 404.
    pub async fn start() -> HttpStub {
        HttpStub::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr` (a receiver that comes up where it was down before).
    pub async fn start_on(addr: SocketAddr) -> HttpStub {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let shared = shared.clone();
                async move { handle(shared, method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the HTTP stub");
        let addr = listener.local_addr().expect("stub address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpStub { addr, state, task }
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers `path` with `status`, `content_type` and `body`.
    pub fn serve(&self, path: &str, status: u16, content_type: &str, body: impl Into<Vec<u8>>) {
        self.serve_delayed(path, status, content_type, body, Duration::ZERO);
    }

    /// Like [`HttpStub::serve`], answering only after `delay`.
    pub fn serve_delayed(
        &self,
        path: &str,
        status: u16,
        content_type: &str,
        body: impl Into<Vec<u8>>,
        delay: Duration,
    ) {
        let canned = Canned {
            status,
            content_type: content_type.to_string(),
            body: body.into(),
            delay,
            headers: Vec::new(),
            by_param: None,
        };
        self.lock().routes.insert(path.to_string(), canned);
    }

    /// Answers `path` with `status`, an empty body and these extra headers (Retry-After, ...).
    pub fn serve_headers(&self, path: &str, status: u16, headers: &[(&str, &str)]) {
        let canned = Canned {
            status,
            content_type: "text/plain".to_string(),
            body: Vec::new(),
            delay: Duration::ZERO,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            by_param: None,
        };
        self.lock().routes.insert(path.to_string(), canned);
    }

    /// Answers `path` with an XML document.
    pub fn serve_xml(&self, path: &str, xml: &str) {
        self.serve(path, 200, "text/xml", xml.as_bytes().to_vec());
    }

    /// Answers `path` with the XML document of `choices` whose value the request's `param`
    /// (query or form) has, like an application choosing by what the caller entered; other
    /// values get 404.
    pub fn serve_xml_by(&self, path: &str, param: &str, choices: &[(&str, String)]) {
        let canned = Canned {
            status: 200,
            content_type: "text/xml".to_string(),
            body: Vec::new(),
            delay: Duration::ZERO,
            headers: Vec::new(),
            by_param: Some((
                param.to_string(),
                choices
                    .iter()
                    .map(|(value, xml)| (value.to_string(), xml.as_bytes().to_vec()))
                    .collect(),
            )),
        };
        self.lock().routes.insert(path.to_string(), canned);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<StubRequest> {
        self.lock().requests.clone()
    }

    /// Requests to `path` so far.
    pub fn requests_to(&self, path: &str) -> Vec<StubRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until `count` requests to `path` arrived.
    pub async fn wait_for(&self, path: &str, count: usize, timeout: Duration) -> Vec<StubRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests_to(path);
            if got.len() >= count || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the requests to `path` so far satisfy `holds` (e.g. "an MPCEnd arrived"),
    /// checking every 20 ms for at most `timeout`. Returns them, in arrival order, once it
    /// holds; None when the deadline passed first (the caller says what was missing, e.g. with
    /// [`HttpStub::requests_to`]).
    pub async fn wait_until(
        &self,
        path: &str,
        timeout: Duration,
        holds: impl Fn(&[StubRequest]) -> bool,
    ) -> Option<Vec<StubRequest>> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests_to(path);
            if holds(&got) {
                return Some(got);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for HttpStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let raw_query = uri.query().unwrap_or("").to_string();
    let pairs = |data: &[u8]| -> Vec<(String, String)> {
        form_urlencoded::parse(data)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    let form = if content_type.starts_with("application/x-www-form-urlencoded") {
        pairs(&body)
    } else {
        Vec::new()
    };
    let mut request = StubRequest {
        received: Instant::now(),
        status: 404,
        method: method.to_string(),
        path: uri.path().to_string(),
        query: pairs(raw_query.as_bytes()),
        raw_query,
        form,
        content_type,
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    let canned = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let mut canned = s.routes.get(&request.path).cloned();
        if let Some(c) = canned.as_mut() {
            if let Some((param, choices)) = c.by_param.take() {
                let value = request.param(&param).unwrap_or_default().to_string();
                match choices.into_iter().find(|(v, _)| *v == value) {
                    Some((_, body)) => c.body = body,
                    None => c.status = 404,
                }
            }
            request.status = c.status;
        }
        s.requests.push(request);
        canned
    };
    match canned {
        Some(c) => {
            if !c.delay.is_zero() {
                tokio::time::sleep(c.delay).await;
            }
            let status = StatusCode::from_u16(c.status).unwrap_or(StatusCode::OK);
            let mut response = (status, [("content-type", c.content_type)], c.body).into_response();
            for (name, value) in c.headers {
                if let (Ok(name), Ok(value)) = (
                    axum::http::HeaderName::from_bytes(name.as_bytes()),
                    axum::http::HeaderValue::from_str(&value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        None => (StatusCode::NOT_FOUND, "no such path").into_response(),
    }
}
