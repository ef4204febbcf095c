//! The MPC journal and the ended-MPC history.
//!
//! While an MPC is live its row here says what a restart needs to end it properly should the
//! process die: its members (for their ParticipantExit), its status callback, the callback
//! sequence number reached, and every recording still being written (file, format, start,
//! callback). An MPC that ends moves to the history, which the API lists after a restart too.
//! Rows are JSON documents of the records below, encoded on the writer thread, so whoever
//! journals something only builds a record and sends it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use huddle_xml::HttpMethod;
use rusqlite::{params, Connection, Transaction};
use serde::{Deserialize, Serialize};

use crate::{Store, Write};

/// A URL requested with a method: a status or recording callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackTarget {
    /// The URL, with its fragment options.
    pub url: String,
    /// GET or POST.
    #[serde(with = "method")]
    pub method: HttpMethod,
}

/// One participant entry of an MPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// MemberID.
    pub member_id: u64,
    /// ParticipantCallUUID.
    pub call_uuid: String,
    /// Where the call came from.
    pub member_address: String,
    /// The role's wire spelling (`Agent`, `Customer`, ...).
    pub role: String,
    /// Muted.
    pub muted: bool,
    /// On hold.
    pub held: bool,
    /// In coach mode.
    pub coach_mode: bool,
    /// startMpcOnEnter.
    pub start_mpc_on_enter: bool,
    /// endMpcOnExit.
    pub end_mpc_on_exit: bool,
    /// When it joined.
    pub joined: SystemTime,
    /// When it left; None while it is in.
    pub exited: Option<SystemTime>,
    /// Why it left.
    pub exit_cause: Option<String>,
}

/// An MPC: live (journal) or ended (history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpcRecord {
    /// MPCUUID.
    pub uuid: String,
    /// Friendly name.
    pub name: String,
    /// `Initialized`, `Active` or `Ended`.
    pub status: String,
    /// Created.
    pub created: SystemTime,
    /// Became Active.
    pub started: Option<SystemTime>,
    /// Ended.
    pub ended: Option<SystemTime>,
    /// `termination_cause_code`.
    pub termination_code: Option<u16>,
    /// maxParticipants.
    pub max_participants: u32,
    /// maxDuration, seconds.
    pub max_duration: u32,
    /// stayAlone.
    pub stay_alone: bool,
    /// The recording running: its id and whether it is paused.
    pub recording: Option<(String, bool)>,
    /// Every participant entry, in joining order.
    pub participants: Vec<MemberRecord>,
    /// statusCallbackUrl and its method.
    pub status_callback: Option<CallbackTarget>,
    /// statusCallbackEvents, their wire spellings.
    pub status_callback_events: Vec<String>,
}

/// A recording being written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRecord {
    /// RecordingUUID.
    pub id: String,
    /// Its MPC.
    pub mpc_uuid: String,
    /// Its MPC's friendly name.
    pub mpc_name: String,
    /// The file.
    pub path: PathBuf,
    /// `wav` or `mp3`.
    pub format: String,
    /// When it started.
    pub started: SystemTime,
    /// recordingCallbackUrl (a `<Record>` file's callbackUrl) and its method.
    pub callback: Option<CallbackTarget>,
    /// For a `<Record>` file rather than an MPC's recording (whose MPC fields are then empty):
    /// the recorded call. Absent from records of earlier versions, which are all MPCs'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallRecordingRecord>,
    /// Whose recording: empty for the MPC's own (and in journals written before the others
    /// existed), `roles` for the per-role recording, `participant` or `all` for a
    /// participant recording of that `record_track_type`.
    #[serde(default)]
    pub kind: String,
    /// The participant a participant recording records.
    #[serde(default)]
    pub member: Option<RecordedMember>,
}

/// The call a `<Record>` file belongs to, and the URL it is served at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecordingRecord {
    /// CallUUID.
    pub call_uuid: String,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// RecordUrl.
    pub url: String,
}

/// The participant of a participant recording, as its callbacks name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedMember {
    /// MemberID.
    pub member_id: u64,
    /// The role's wire spelling.
    pub role: String,
    /// ParticipantCallUUID.
    pub call_uuid: String,
    /// Coach mode when the recording started.
    pub coach_mode: bool,
}

/// What the last run left: the MPCs it did not end, the recordings it did not finish, their
/// sequence numbers, and the history.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// MPCs live when the last run stopped.
    pub live: Vec<MpcRecord>,
    /// Recordings whose writer did not report the file done.
    pub recordings: Vec<RecordingRecord>,
    /// The last callback SequenceNumber of every MPC above.
    pub sequences: Vec<(String, u64)>,
    /// Ended MPCs, oldest first.
    pub history: Vec<MpcRecord>,
    /// The last time the last run said it was alive (see [`Store::alive`]).
    pub alive_at: Option<SystemTime>,
}

/// One change to the tables of this module.
pub(crate) enum MpcWrite {
    Live(Box<MpcRecord>),
    LiveEnded(String),
    Ended { record: Box<MpcRecord>, keep: usize },
    RecordingStarted(Box<RecordingRecord>),
    RecordingFinished(String),
    Sequence { uuid: String, sequence: u64 },
    SequenceForgotten(String),
    Alive(SystemTime),
}

impl Store {
    /// Journals a live MPC as it is now (replacing what was journaled of it).
    pub fn mpc_live(&self, record: MpcRecord) {
        self.write(Write::Mpc(MpcWrite::Live(Box::new(record))));
    }

    /// Strikes a live MPC off the journal: its end has been reported.
    pub fn mpc_live_ended(&self, uuid: &str) {
        self.write(Write::Mpc(MpcWrite::LiveEnded(uuid.to_string())));
    }

    /// Adds an ended MPC to the history, keeping the `keep` newest.
    pub fn mpc_ended(&self, record: MpcRecord, keep: usize) {
        self.write(Write::Mpc(MpcWrite::Ended {
            record: Box::new(record),
            keep,
        }));
    }

    /// Journals a recording whose writer started.
    pub fn recording_started(&self, record: RecordingRecord) {
        self.write(Write::Mpc(MpcWrite::RecordingStarted(Box::new(record))));
    }

    /// Strikes a recording off the journal: its file is done and reported.
    pub fn recording_finished(&self, id: &str) {
        self.write(Write::Mpc(MpcWrite::RecordingFinished(id.to_string())));
    }

    /// The last SequenceNumber given to a callback of the MPC `uuid`.
    pub fn mpc_sequence(&self, uuid: &str, sequence: u64) {
        self.write(Write::Mpc(MpcWrite::Sequence {
            uuid: uuid.to_string(),
            sequence,
        }));
    }

    /// Forgets the sequence number of an MPC that will have no more callbacks.
    pub fn mpc_sequence_forgotten(&self, uuid: &str) {
        self.write(Write::Mpc(MpcWrite::SequenceForgotten(uuid.to_string())));
    }

    /// Notes that the server is alive at `at`: after a crash, the last such time is when the
    /// MPCs it left were last known live.
    pub fn alive(&self, at: SystemTime) {
        self.write(Write::Mpc(MpcWrite::Alive(at)));
    }
}

pub(crate) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS live_mpcs (
        uuid TEXT PRIMARY KEY,
        body TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS live_recordings (
        id TEXT PRIMARY KEY,
        mpc_uuid TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS mpc_sequences (
        uuid TEXT PRIMARY KEY,
        sequence INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS mpc_history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        uuid TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS alive (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at_ms INTEGER NOT NULL
    );
";

/// Reads what the last run left, and forgets the sequence numbers no MPC or recording needs
/// any more (those of MPCs that ended in an earlier run).
pub(crate) fn read(connection: &Connection) -> rusqlite::Result<Found> {
    let live = bodies(
        connection,
        "SELECT uuid, body FROM live_mpcs ORDER BY rowid",
    )?;
    let recordings = bodies(
        connection,
        "SELECT id, body FROM live_recordings ORDER BY rowid",
    )?;
    connection.execute(
        "DELETE FROM mpc_sequences WHERE uuid NOT IN (SELECT uuid FROM live_mpcs)
             AND uuid NOT IN (SELECT mpc_uuid FROM live_recordings)",
        [],
    )?;
    let mut statement = connection.prepare("SELECT uuid, sequence FROM mpc_sequences")?;
    let sequences = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?.max(0) as u64,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let history = bodies(
        connection,
        "SELECT uuid, body FROM mpc_history ORDER BY seq",
    )?;
    let alive_at = connection
        .query_row("SELECT at_ms FROM alive WHERE id = 1", [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|ms| Some(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)))
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(Found {
        live,
        recordings,
        sequences,
        history,
        alive_at,
    })
}

/// The decoded documents of a query's (key, body) rows; a row this version cannot read is
/// skipped with a log line rather than block the start-up.
fn bodies<T: serde::de::DeserializeOwned>(
    connection: &Connection,
    sql: &str,
) -> rusqlite::Result<Vec<T>> {
    let mut statement = connection.prepare(sql)?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key, body) = row?;
        match serde_json::from_str(&body) {
            Ok(record) => out.push(record),
            Err(error) => tracing::warn!(key, %error, "unreadable MPC journal row skipped"),
        }
    }
    Ok(out)
}

fn json<T: Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Applies one write inside the writer's transaction.
pub(crate) fn apply(transaction: &Transaction<'_>, write: MpcWrite) -> rusqlite::Result<()> {
    match write {
        MpcWrite::Live(record) => {
            transaction.execute(
                "INSERT OR REPLACE INTO live_mpcs (uuid, body) VALUES (?1, ?2)",
                params![record.uuid, json(&record)?],
            )?;
        }
        MpcWrite::LiveEnded(uuid) => {
            transaction.execute("DELETE FROM live_mpcs WHERE uuid = ?1", params![uuid])?;
        }
        MpcWrite::Ended { record, keep } => {
            transaction.execute(
                "INSERT OR REPLACE INTO mpc_history (uuid, body) VALUES (?1, ?2)",
                params![record.uuid, json(&record)?],
            )?;
            // Sequence numbers only grow, so the oldest rows are the lowest.
            transaction.execute(
                "DELETE FROM mpc_history WHERE seq <= (SELECT MAX(seq) FROM mpc_history) - ?1",
                params![keep.min(i64::MAX as usize) as i64],
            )?;
        }
        MpcWrite::RecordingStarted(record) => {
            transaction.execute(
                "INSERT OR REPLACE INTO live_recordings (id, mpc_uuid, body) VALUES (?1, ?2, ?3)",
                params![record.id, record.mpc_uuid, json(&record)?],
            )?;
        }
        MpcWrite::RecordingFinished(id) => {
            transaction.execute("DELETE FROM live_recordings WHERE id = ?1", params![id])?;
        }
        MpcWrite::Sequence { uuid, sequence } => {
            transaction.execute(
                "INSERT OR REPLACE INTO mpc_sequences (uuid, sequence) VALUES (?1, ?2)",
                params![uuid, sequence.min(i64::MAX as u64) as i64],
            )?;
        }
        MpcWrite::SequenceForgotten(uuid) => {
            transaction.execute("DELETE FROM mpc_sequences WHERE uuid = ?1", params![uuid])?;
        }
        MpcWrite::Alive(at) => {
            let ms = at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64);
            transaction.execute(
                "INSERT OR REPLACE INTO alive (id, at_ms) VALUES (1, ?1)",
                params![ms],
            )?;
        }
    }
    Ok(())
}

mod method {
    use huddle_xml::HttpMethod;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(method: &HttpMethod, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(method.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HttpMethod, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_uppercase().as_str() {
            "GET" => Ok(HttpMethod::Get),
            "POST" => Ok(HttpMethod::Post),
            _ => Err(serde::de::Error::custom(format!("unknown method {text:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + secs * 1000 + 123)
    }

    fn member(id: u64, exited: Option<u64>) -> MemberRecord {
        MemberRecord {
            member_id: id,
            call_uuid: format!("call-{id}"),
            member_address: "sip:alice@127.0.0.1".into(),
            role: "Agent".into(),
            muted: id.is_multiple_of(2),
            held: false,
            coach_mode: false,
            start_mpc_on_enter: true,
            end_mpc_on_exit: false,
            joined: at(id),
            exited: exited.map(at),
            exit_cause: exited.map(|_| "Participant Call Hangup".into()),
        }
    }

    fn mpc(uuid: &str, ended: bool) -> MpcRecord {
        MpcRecord {
            uuid: uuid.into(),
            name: format!("room-{uuid}"),
            status: if ended { "Ended" } else { "Active" }.into(),
            created: at(0),
            started: Some(at(1)),
            ended: ended.then(|| at(60)),
            termination_code: ended.then_some(1000),
            max_participants: 7,
            max_duration: 600,
            stay_alone: true,
            recording: (!ended).then(|| ("rec-1".to_string(), true)),
            participants: vec![member(10_000, Some(30)), member(10_001, None)],
            status_callback: Some(CallbackTarget {
                url: "http://127.0.0.1:9/status#rc=3".into(),
                method: HttpMethod::Get,
            }),
            status_callback_events: vec![
                "mpc-state-changes".into(),
                "participant-state-changes".into(),
            ],
        }
    }

    /// A `<Record>` file's entry: no MPC, a call.
    fn call_recording(id: &str) -> RecordingRecord {
        RecordingRecord {
            mpc_uuid: String::new(),
            mpc_name: String::new(),
            call: Some(CallRecordingRecord {
                call_uuid: "call-1".into(),
                from: "100".into(),
                to: "200".into(),
                direction: "inbound".into(),
                url: format!("http://127.0.0.1/v1/Account/A/Recording/{id}.wav"),
            }),
            ..recording(id, "")
        }
    }

    #[test]
    fn recordings_of_earlier_versions_read_as_mpc_recordings() {
        let old = r#"{"id":"r","mpc_uuid":"m","mpc_name":"n","path":"/r.wav","format":"wav","started":{"secs_since_epoch":1,"nanos_since_epoch":0},"callback":null}"#;
        let read: RecordingRecord = serde_json::from_str(old).expect("an old record reads");
        assert_eq!(read.call, None);
        let written = serde_json::to_string(&read).unwrap();
        assert!(!written.contains("\"call\""), "{written}");
    }

    fn recording(id: &str, mpc_uuid: &str) -> RecordingRecord {
        RecordingRecord {
            id: id.into(),
            mpc_uuid: mpc_uuid.into(),
            mpc_name: format!("room-{mpc_uuid}"),
            path: PathBuf::from(format!("/var/lib/huddle/recordings/{id}.wav")),
            format: "wav".into(),
            started: at(2),
            callback: Some(CallbackTarget {
                url: "http://127.0.0.1:9/rec".into(),
                method: HttpMethod::Post,
            }),
            call: None,
            kind: String::new(),
            member: None,
        }
    }

    fn open(path: &std::path::Path) -> crate::Opened {
        crate::Store::open(&format!("sqlite://{}", path.display())).unwrap()
    }

    fn database(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "huddle-store-mpcs-{}-{name}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        dir.join("huddle.db")
    }

    #[test]
    fn the_journal_and_the_history_come_back_as_they_were_written() {
        let path = database("roundtrip");
        {
            let opened = open(&path);
            assert_eq!(opened.mpcs, Found::default(), "a new database is empty");
            let store = opened.store;
            let mut live = mpc("a", false);
            store.mpc_live(live.clone());
            // A later journal entry replaces the earlier one.
            live.participants[1].muted = true;
            store.mpc_live(live.clone());
            store.mpc_live(mpc("b", false));
            store.recording_started(recording("rec-1", "a"));
            store.recording_started(recording("rec-2", "b"));
            store.recording_started(call_recording("rec-3"));
            store.mpc_sequence("a", 3);
            store.mpc_sequence("a", 7);
            store.mpc_sequence("b", 2);
            store.mpc_sequence("gone", 9);
            store.mpc_ended(mpc("old", true), 100);
            store.alive(at(42));
            assert!(store.sync(Duration::from_secs(5)));
        }
        let found = open(&path).mpcs;
        let mut a = mpc("a", false);
        a.participants[1].muted = true;
        assert_eq!(found.live, vec![a, mpc("b", false)]);
        assert_eq!(
            found.recordings,
            vec![
                recording("rec-1", "a"),
                recording("rec-2", "b"),
                call_recording("rec-3")
            ]
        );
        let mut sequences = found.sequences.clone();
        sequences.sort();
        assert_eq!(
            sequences,
            vec![("a".to_string(), 7), ("b".to_string(), 2)],
            "the number of an MPC with nothing live is forgotten"
        );
        assert_eq!(found.history, vec![mpc("old", true)]);
        assert_eq!(found.alive_at, Some(at(42)), "to the millisecond");
    }

    #[test]
    fn ended_mpcs_leave_the_journal_and_the_history_keeps_the_newest() {
        let path = database("history");
        // Ending the same MPC again (a recovery after a crash that came just after its end)
        // leaves one entry, the newest.
        let mut again = mpc("h9", true);
        again.termination_code = Some(5100);
        {
            let store = open(&path).store;
            store.mpc_live(mpc("a", false));
            store.recording_started(recording("rec-1", "a"));
            store.mpc_sequence("a", 5);
            store.recording_finished("rec-1");
            store.mpc_live_ended("a");
            for i in 0..10 {
                store.mpc_ended(mpc(&format!("h{i}"), true), 4);
            }
            store.mpc_ended(again.clone(), 4);
            assert!(store.sync(Duration::from_secs(5)));
        }
        let found = open(&path).mpcs;
        assert!(found.live.is_empty());
        assert!(found.recordings.is_empty());
        assert!(found.sequences.is_empty(), "{:?}", found.sequences);
        let uuids: Vec<&str> = found.history.iter().map(|m| m.uuid.as_str()).collect();
        assert!(uuids.len() <= 4, "{uuids:?}");
        assert_eq!(uuids.last(), Some(&"h9"));
        assert_eq!(found.history.last(), Some(&again));
        assert!(uuids.contains(&"h8") && uuids.contains(&"h7"), "{uuids:?}");
        assert!(!uuids.contains(&"h0"), "the oldest are forgotten first");
    }

    #[test]
    fn a_row_this_version_cannot_read_is_skipped() {
        let path = database("unreadable");
        {
            let store = open(&path).store;
            store.mpc_live(mpc("good", false));
            assert!(store.sync(Duration::from_secs(5)));
        }
        let connection = Connection::open(&path).unwrap();
        connection
            .execute(
                "INSERT INTO live_mpcs (uuid, body) VALUES ('bad', '{\"uuid\": 3}')",
                [],
            )
            .unwrap();
        drop(connection);
        assert_eq!(open(&path).mpcs.live, vec![mpc("good", false)]);
    }
}
