//! A retrying callback's state (first queued, rounds made) survives a restart, and a database
//! written before that state existed still opens.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use huddle_events::{Journal, Webhook};
use huddle_store::Store;
use huddle_xml::HttpMethod;

fn temp_db(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir()
        .join(format!(
            "huddle-outbox-{}-{name}-{nanos}",
            std::process::id()
        ))
        .join("huddle.db")
}

fn hook(n: u32) -> Webhook {
    Webhook {
        url: format!("http://127.0.0.1:9/status#rc={n}"),
        method: HttpMethod::Post,
        params: vec![("SequenceNumber".into(), n.to_string())],
    }
}

#[test]
fn rounds_and_first_queued_time_are_read_back_after_a_restart() {
    let path = temp_db("state");
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).unwrap().store;
    let first = UNIX_EPOCH + Duration::from_millis(1_700_000_123_456);
    let second = first + Duration::from_secs(3);
    store.queued(1, "mpc", &hook(1), first);
    store.queued(2, "mpc", &hook(2), second);
    store.retrying(1, 1);
    store.retrying(1, 4);
    assert!(store.sync(Duration::from_secs(5)));

    let again = Store::open(&url).unwrap();
    let state: Vec<(u64, SystemTime, u32)> = again
        .pending_callbacks
        .iter()
        .map(|p| (p.id, p.queued_at, p.rounds))
        .collect();
    assert_eq!(state, [(1, first, 4), (2, second, 0)]);

    // Delivered at last: gone, and the retry state with it.
    again.store.finished(1);
    again.store.retrying(1, 5);
    assert!(again.store.sync(Duration::from_secs(5)));
    let ids: Vec<u64> = Store::open(&url)
        .unwrap()
        .pending_callbacks
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, [2]);
}

#[test]
fn a_database_from_before_the_retry_state_opens_and_keeps_its_callbacks() {
    let path = temp_db("old");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        // The previous version's table, with a callback it left behind.
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE pending_callbacks (
                id INTEGER PRIMARY KEY, key TEXT NOT NULL, url TEXT NOT NULL,
                method TEXT NOT NULL, params TEXT NOT NULL);
             INSERT INTO pending_callbacks VALUES
                (7, 'mpc', 'http://127.0.0.1:9/s', 'POST', '[[\"EventName\",\"MPCEnd\"]]');",
        )
        .unwrap();
    }
    let url = format!("sqlite://{}", path.display());
    let before = SystemTime::now();
    let opened = Store::open(&url).expect("the old database opens");
    assert_eq!(opened.next_callback_id, 8);
    let [kept] = opened.pending_callbacks.as_slice() else {
        panic!("{:?}", opened.pending_callbacks);
    };
    assert_eq!(kept.id, 7);
    assert_eq!(kept.rounds, 0);
    // Its horizon starts when this version first opens the database (to the millisecond).
    let ms = Duration::from_millis(1);
    assert!(kept.queued_at + ms >= before && kept.queued_at <= SystemTime::now());
    assert_eq!(
        kept.webhook.params,
        [("EventName".to_string(), "MPCEnd".to_string())]
    );

    // The migrated table takes this version's writes, and opening it again changes nothing.
    let queued = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    opened.store.queued(8, "mpc", &hook(8), queued);
    opened.store.retrying(7, 2);
    assert!(opened.store.sync(Duration::from_secs(5)));
    let again = Store::open(&url).expect("reopens");
    let state: Vec<(u64, u32)> = again
        .pending_callbacks
        .iter()
        .map(|p| (p.id, p.rounds))
        .collect();
    assert_eq!(state, [(7, 2), (8, 0)]);
    assert_eq!(again.pending_callbacks[1].queued_at, queued);
    assert_eq!(
        again.pending_callbacks[0].queued_at, kept.queued_at,
        "the migrated row keeps the time it was dated with"
    );
}
