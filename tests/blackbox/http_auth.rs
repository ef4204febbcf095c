//! The HTTP trust boundary: recordings only with the API's basic auth, `/metrics` behind it
//! on request, and no start at all with the shipped token on a non-loopback address.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use huddle_testkit::{basic_auth, ServerProcess};

use super::server;

const ACCOUNT: &str = "MAHUDDLEDEFAULT00000";
const TOKEN: &str = "change-me";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_huddle"))
}

/// Pseudo-random bytes (not a constant pattern, so that a misplaced chunk would show).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn a_recording_is_served_only_with_the_api_credentials() {
    let srv = server("", 4);
    let id = uuid::Uuid::new_v4();
    // Larger than any single read or write buffer, so that it travels in many chunks.
    let content = noise(3 * 1024 * 1024 + 777);
    std::fs::create_dir_all(srv.recordings_dir()).unwrap();
    std::fs::write(srv.recordings_dir().join(format!("{id}.wav")), &content).unwrap();
    let url = format!(
        "http://{}/v1/Account/{ACCOUNT}/Recording/{id}.wav",
        srv.http
    );
    let client = reqwest::Client::new();

    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let challenge = anonymous
        .headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate challenge")
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");

    for (user, password) in [
        (ACCOUNT, "wrong"),
        (ACCOUNT, "change-m"),
        (ACCOUNT, "change-me-"),
        (ACCOUNT, ""),
        ("MAOTHER0000000000000", TOKEN),
    ] {
        let refused = client
            .get(&url)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 401, "{user}:{password}");
        assert!(refused.headers().contains_key("www-authenticate"));
    }
    // Without credentials nothing tells which recordings exist.
    let missing = format!(
        "http://{}/v1/Account/{ACCOUNT}/Recording/{}.wav",
        srv.http,
        uuid::Uuid::new_v4()
    );
    let status = client.get(&missing).send().await.unwrap().status();
    assert_eq!(status.as_u16(), 401);

    let ok = client
        .get(&url)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(
        ok.headers().get("content-type").unwrap().to_str().unwrap(),
        "audio/wav"
    );
    assert_eq!(ok.content_length(), Some(content.len() as u64));
    let body = ok.bytes().await.unwrap();
    assert!(body[..] == content[..], "the file as it is on disk");

    let status = client
        .get(&missing)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 404);
}

#[tokio::test]
async fn metrics_auth_puts_metrics_behind_the_api_credentials() {
    let srv = ServerProcess::start_with(bin(), 4, |slots| {
        slots.standard("", "metrics_auth = true", "")
    });
    let refused = srv.http_get("/metrics").unwrap();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{refused}"
    );
    let wrong = srv
        .http_get_with("/metrics", &basic_auth(ACCOUNT, "nope"))
        .unwrap();
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let ok = srv
        .http_get_with("/metrics", &basic_auth(ACCOUNT, TOKEN))
        .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("huddle_"), "Prometheus text: {ok}");
    // Health checks stay open.
    assert!(srv.http_get("/health").unwrap().starts_with("HTTP/1.1 200"));

    // Off by default.
    let open = server("", 4);
    assert!(open
        .http_get("/metrics")
        .unwrap()
        .starts_with("HTTP/1.1 200"));
}

/// Writes the standard test configuration with `http.listen` on every address and returns its
/// path (the server is never left running).
fn exposed_config(token: &str) -> std::path::PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("huddle-exposed-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:0\"]\n[http]\nlisten = \"0.0.0.0:{port}\"\n\
         auth_id = \"{ACCOUNT}\"\nauth_token = \"{token}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         [storage]\ndatabase = \"sqlite://{d}/huddle.db\"\nrecordings = \"{d}/recordings\"\n",
        d = dir.display()
    );
    let path = dir.join("huddle.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `huddle ARGS --config PATH`; its exit code (None: still running after 10 s, killed)
/// and everything it wrote.
fn run(args: &[&str], config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (code, text)
}

#[test]
fn the_shipped_token_off_loopback_refuses_to_start() {
    let config = exposed_config(TOKEN);
    let (code, out) = run(&["serve"], &config);
    assert!(
        matches!(code, Some(c) if c != 0),
        "huddle serve must exit non-zero ({code:?}): {out}"
    );
    assert!(out.contains("http.auth_token"), "{out}");
    assert!(out.contains("0.0.0.0"), "{out}");

    let (code, out) = run(&["check-config"], &config);
    assert!(matches!(code, Some(c) if c != 0), "{code:?}: {out}");
    assert!(out.contains("http.auth_token"), "{out}");

    // A token of one's own is fine (checked only: the test does not listen on every address).
    let (code, out) = run(
        &["check-config"],
        &exposed_config("a-long-random-token-0f3a9"),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning"), "{out}");
}

#[test]
fn the_shipped_token_on_loopback_is_a_warning() {
    let srv = server("", 4);
    // The warning at start-up is the property: `serve` tells the operator only in its log
    // (written before the server reports healthy, so it is there once `server` returns).
    let log = srv.log();
    assert!(
        log.contains("WARN") && log.contains("http.auth_token is the shipped default"),
        "{log}"
    );
    let (code, out) = run(&["check-config"], &srv_config_path(&srv));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("warning: http.auth_token"), "{out}");
}

/// The configuration file a test server runs on.
fn srv_config_path(srv: &ServerProcess) -> std::path::PathBuf {
    srv.recordings_dir()
        .parent()
        .expect("the server's directory")
        .join("huddle.toml")
}
