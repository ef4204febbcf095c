//! huddle's persistence: one SQLite database (`storage.database`, `sqlite://PATH`).
//!
//! Writes go to a thread of their own through a channel and are committed in batches, so the
//! tasks that record something (the callback queue today) never wait on the disk; reads happen
//! at start-up, before anything is live. It keeps the callbacks not yet delivered, so
//! that a restart sends them instead of losing them, and (module [`mpcs`]) the journal of live
//! MPCs and the history of ended ones.

mod outbox;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use huddle_events::{Journal, Webhook};
use huddle_xml::HttpMethod;
use rusqlite::{params, Connection};
use thiserror::Error;

pub mod mpcs;

/// Why the store could not be opened.
#[derive(Debug, Error)]
pub enum StoreError {
    /// `storage.database` is not `sqlite://PATH`.
    #[error("storage.database must be sqlite://PATH, not {0:?}")]
    BadUrl(String),
    /// SQLite refused (cannot create or read the file, corrupt database, ...).
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the database writer: {0}")]
    Thread(std::io::Error),
}

/// A callback that was queued and not delivered before the last stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCallback {
    /// Its id in the queue.
    pub id: u64,
    /// Its ordering key (the MPC's UUID).
    pub key: String,
    /// The request.
    pub webhook: Webhook,
    /// When it was first queued (its retry horizon counts from then).
    pub queued_at: SystemTime,
    /// Delivery rounds it has had.
    pub rounds: u32,
}

enum Write {
    CallbackQueued {
        id: u64,
        key: String,
        url: String,
        method: &'static str,
        params: String,
        queued_at_ms: i64,
    },
    CallbackRetrying {
        id: u64,
        rounds: u32,
    },
    CallbackFinished(u64),
    /// The MPC journal and history.
    Mpc(mpcs::MpcWrite),
    /// Answered once everything sent before it is committed.
    Sync(mpsc::Sender<()>),
}

/// The open database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    writes: mpsc::Sender<Write>,
}

/// What opening the database found.
pub struct Opened {
    /// The store, for writing.
    pub store: Store,
    /// Callbacks left undelivered by the last run, oldest first.
    pub pending_callbacks: Vec<PendingCallback>,
    /// The first callback id free for this run.
    pub next_callback_id: u64,
    /// The MPCs, recordings and history the last run left.
    pub mpcs: mpcs::Found,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS pending_callbacks (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        url TEXT NOT NULL,
        method TEXT NOT NULL,
        params TEXT NOT NULL
    );
";

/// Writes committed together at most: bounds a transaction while a burst drains.
const BATCH: usize = 512;

impl Store {
    /// Opens (creating it and its directory if needed) the database `url` names, reads what
    /// the last run left, and starts the writer.
    pub fn open(url: &str) -> Result<Opened, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| StoreError::BadUrl(url.to_string()))?;
        let path = PathBuf::from(path);
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // A missing directory shows up as SQLite's "unable to open" just below.
            let _ = std::fs::create_dir_all(parent);
        }
        let connection = Connection::open(&path).map_err(sqlite)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(sqlite)?;
        connection.execute_batch(SCHEMA).map_err(sqlite)?;
        outbox::migrate(&connection, SystemTime::now()).map_err(sqlite)?;
        connection.execute_batch(mpcs::SCHEMA).map_err(sqlite)?;
        let found_mpcs = mpcs::read(&connection).map_err(sqlite)?;
        let pending_callbacks = read_pending(&connection).map_err(sqlite)?;
        // Above every id in the table, skipped rows too: a new id must not replace one.
        let next_callback_id = connection
            .query_row(
                "SELECT COALESCE(MAX(id), 0) FROM pending_callbacks",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map_err(sqlite)? as u64
            + 1;
        let (writes, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("huddle-store".into())
            .spawn(move || write_loop(connection, &path, queue))
            .map_err(StoreError::Thread)?;
        Ok(Opened {
            store: Store { writes },
            pending_callbacks,
            next_callback_id,
            mpcs: found_mpcs,
        })
    }

    /// Waits (at most `within`) until every write sent so far is committed; false on timeout
    /// or when the writer is gone.
    pub fn sync(&self, within: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        self.writes.send(Write::Sync(done)).is_ok() && wait.recv_timeout(within).is_ok()
    }

    fn write(&self, write: Write) {
        if self.writes.send(write).is_err() {
            metrics::counter!("huddle_store_writes_lost_total").increment(1);
        }
    }
}

impl Journal for Store {
    fn queued(&self, id: u64, key: &str, webhook: &Webhook, queued_at: SystemTime) {
        let params = serde_json::to_string(&webhook.params).unwrap_or_else(|_| "[]".into());
        self.write(Write::CallbackQueued {
            id,
            key: key.to_string(),
            url: webhook.url.clone(),
            method: webhook.method.as_str(),
            params,
            queued_at_ms: outbox::to_millis(queued_at),
        });
    }

    fn retrying(&self, id: u64, rounds: u32) {
        self.write(Write::CallbackRetrying { id, rounds });
    }

    fn finished(&self, id: u64) {
        self.write(Write::CallbackFinished(id));
    }
}

fn read_pending(connection: &Connection) -> rusqlite::Result<Vec<PendingCallback>> {
    let mut statement = connection.prepare(
        "SELECT id, key, url, method, params, queued_at_ms, rounds FROM pending_callbacks ORDER BY id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            (
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ),
            (row.get::<_, Option<i64>>(5)?, row.get::<_, i64>(6)?),
        ))
    })?;
    let now = SystemTime::now();
    let mut pending = Vec::new();
    for row in rows {
        let ((id, key, url, method, params), (queued_at_ms, rounds)) = row?;
        // A row this version cannot read is skipped with a log line rather than block the
        // start-up (it stays in the table for inspection).
        let method = match method.to_ascii_uppercase().as_str() {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            _ => {
                tracing::warn!(id, method, "stored callback with an unknown method skipped");
                continue;
            }
        };
        let Ok(params) = serde_json::from_str::<Vec<(String, String)>>(&params) else {
            tracing::warn!(id, "stored callback with unreadable parameters skipped");
            continue;
        };
        pending.push(PendingCallback {
            id: id as u64,
            key,
            webhook: Webhook {
                url,
                method,
                params,
            },
            queued_at: outbox::from_millis(queued_at_ms, now),
            rounds: outbox::rounds(rounds),
        });
    }
    Ok(pending)
}

fn write_loop(mut connection: Connection, path: &Path, queue: mpsc::Receiver<Write>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let mut syncs = Vec::new();
        if let Err(error) = commit(&mut connection, batch, &mut syncs) {
            metrics::counter!("huddle_store_errors_total").increment(1);
            tracing::error!(%error, path = %path.display(), "database write failed");
        }
        for sync in syncs {
            let _ = sync.send(());
        }
    }
}

fn commit(
    connection: &mut Connection,
    batch: Vec<Write>,
    syncs: &mut Vec<mpsc::Sender<()>>,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    for write in batch {
        match write {
            Write::CallbackQueued {
                id,
                key,
                url,
                method,
                params,
                queued_at_ms,
            } => {
                transaction.execute(
                    "INSERT OR REPLACE INTO pending_callbacks (id, key, url, method, params, queued_at_ms, rounds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
                    params![id as i64, key, url, method, params, queued_at_ms],
                )?;
            }
            Write::CallbackRetrying { id, rounds } => {
                transaction.execute(
                    "UPDATE pending_callbacks SET rounds = ?2 WHERE id = ?1",
                    params![id as i64, i64::from(rounds)],
                )?;
            }
            Write::CallbackFinished(id) => {
                transaction.execute(
                    "DELETE FROM pending_callbacks WHERE id = ?1",
                    params![id as i64],
                )?;
            }
            Write::Mpc(write) => mpcs::apply(&transaction, write)?,
            Write::Sync(done) => syncs.push(done),
        }
    }
    transaction.commit()
}
