//! The callback outbox's retry state: when each pending callback was first queued and how
//! many delivery rounds it has had, so that a restart goes on with its retry horizon instead
//! of starting it over.
//!
//! Databases written before this state existed hold `pending_callbacks` without these
//! columns; [`migrate`] adds them. Their rows count as queued when the migration ran, with no
//! rounds made.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

/// The columns this module adds to `pending_callbacks`, with their definitions.
const COLUMNS: [(&str, &str); 2] = [
    // Milliseconds since the Unix epoch; NULL in rows from before the column existed.
    ("queued_at_ms", "INTEGER"),
    ("rounds", "INTEGER NOT NULL DEFAULT 0"),
];

/// Adds the retry columns to `pending_callbacks` when the table lacks them (a database from an
/// earlier version), and dates rows without a queueing time `now`, once, so that their horizon
/// does not start over at every start.
pub(crate) fn migrate(connection: &Connection, now: SystemTime) -> rusqlite::Result<()> {
    let mut existing = Vec::new();
    {
        let mut statement = connection.prepare("PRAGMA table_info(pending_callbacks)")?;
        let names = statement.query_map([], |row| row.get::<_, String>(1))?;
        for name in names {
            existing.push(name?);
        }
    }
    for (column, definition) in COLUMNS {
        if !existing.iter().any(|c| c == column) {
            connection.execute_batch(&format!(
                "ALTER TABLE pending_callbacks ADD COLUMN {column} {definition};"
            ))?;
        }
    }
    connection.execute(
        "UPDATE pending_callbacks SET queued_at_ms = ?1 WHERE queued_at_ms IS NULL",
        [to_millis(now)],
    )?;
    Ok(())
}

/// `at` as stored.
pub(crate) fn to_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A stored time; a missing (or negative) one is `now`.
pub(crate) fn from_millis(ms: Option<i64>, now: SystemTime) -> SystemTime {
    match ms.and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => UNIX_EPOCH + Duration::from_millis(ms),
        None => now,
    }
}

/// A stored round count (clamped: the column is an untyped SQLite integer).
pub(crate) fn rounds(stored: i64) -> u32 {
    u32::try_from(stored.max(0)).unwrap_or(u32::MAX)
}
