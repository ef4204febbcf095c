//! Callbacks written down by the queue survive a restart until delivered.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use huddle_events::{Journal, Webhook};
use huddle_store::{Store, StoreError};
use huddle_xml::HttpMethod;

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "huddle-store-{}-{name}-{}",
        std::process::id(),
        uuid_like()
    ));
    dir.join("sub").join("huddle.db")
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn hook(n: u32) -> Webhook {
    Webhook {
        url: format!("http://127.0.0.1:9/status?n={n}#rc=2"),
        method: if n.is_multiple_of(2) {
            HttpMethod::Get
        } else {
            HttpMethod::Post
        },
        params: vec![
            ("EventName".into(), "MPCStart".into()),
            ("MPCName".into(), format!("room 'ü' {n}")),
        ],
    }
}

#[test]
fn undelivered_callbacks_are_read_back_in_order_and_delivered_ones_are_gone() {
    let path = temp_db("order");
    let url = format!("sqlite://{}", path.display());
    let opened = Store::open(&url).expect("opens, creating its directory");
    assert!(opened.pending_callbacks.is_empty());
    assert_eq!(opened.next_callback_id, 1);
    let store = opened.store;
    for id in 1..=4 {
        store.queued(
            u64::from(id),
            &format!("mpc-{}", id % 2),
            &hook(id),
            SystemTime::now(),
        );
    }
    store.finished(2);
    assert!(store.sync(Duration::from_secs(5)));

    let again = Store::open(&url).expect("reopens");
    let ids: Vec<u64> = again.pending_callbacks.iter().map(|p| p.id).collect();
    assert_eq!(ids, [1, 3, 4]);
    assert_eq!(again.next_callback_id, 5);
    let third = &again.pending_callbacks[1];
    assert_eq!(third.key, "mpc-1");
    assert_eq!(third.webhook, hook(3));
    assert_eq!(again.pending_callbacks[2].webhook.method, HttpMethod::Get);
}

#[test]
fn a_bad_database_setting_is_a_clear_error() {
    match Store::open("postgres://db/huddle") {
        Err(StoreError::BadUrl(url)) => assert_eq!(url, "postgres://db/huddle"),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("opened a non-SQLite URL"),
    }
    assert!(matches!(
        Store::open("sqlite://"),
        Err(StoreError::BadUrl(_))
    ));
    // A file that is not a database.
    let path = temp_db("garbage");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    match Store::open(&format!("sqlite://{}", path.display())) {
        Err(StoreError::Sqlite { .. }) => {}
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("opened garbage"),
    }
}

#[test]
fn unreadable_rows_are_skipped_not_fatal() {
    let path = temp_db("rows");
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).unwrap().store;
    store.queued(1, "k", &hook(1), SystemTime::now());
    assert!(store.sync(Duration::from_secs(5)));
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "INSERT INTO pending_callbacks (id, key, url, method, params) VALUES (2, 'k', 'http://x/', 'PUT', '[]')",
        [],
    )
    .unwrap();
    raw.execute(
        "INSERT INTO pending_callbacks (id, key, url, method, params) VALUES (3, 'k', 'http://x/', 'POST', 'not json')",
        [],
    )
    .unwrap();
    let again = Store::open(&url).unwrap();
    let ids: Vec<u64> = again.pending_callbacks.iter().map(|p| p.id).collect();
    assert_eq!(ids, [1]);
    assert_eq!(
        again.next_callback_id, 4,
        "new ids stay above the skipped rows, which are kept"
    );
}
