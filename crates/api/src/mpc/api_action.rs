//! The `AddParticipantByAPIAction*` events of a dial-out (callbacks.md §3.1, group
//! `add-participant-api-events`): `...Initiated` as the legs are dialled, `...Completed` once
//! the race is decided (a leg answered, or none did). They go through the MPC itself, so its
//! `statusCallbackUrl`, `statusCallbackEvents` and callback numbering apply; when the MPC does
//! not exist (yet), to the request's own `status_callback_url` if its events select them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use huddle_callflow::Settled;
use huddle_events::{Webhook, Webhooks};
use huddle_room::{Command, EventName, RegistryError, RoomRegistry};
use huddle_xml::{StatusEvent, UrlWithMethod};

/// How long an answered leg's `...Completed` waits for its MPC to appear (the callee may be
/// asked for a confirm key first).
const JOIN_WAIT: Duration = Duration::from_secs(20);
const JOIN_POLL: Duration = Duration::from_millis(250);

/// Reports one add-participant request's progress.
pub struct ApiActionEvents {
    rooms: RoomRegistry,
    webhooks: Option<Webhooks>,
    mpc_name: String,
    /// The request's own status callback, when its events select these events.
    fallback: Option<UrlWithMethod>,
    params: Vec<(&'static str, String)>,
}

impl ApiActionEvents {
    /// Events for a request dialling `to` from `from` into MPC `mpc_name`; `document` is the
    /// request's `<MultiPartyCall>` element (its status callback is the fallback).
    pub fn new(
        rooms: RoomRegistry,
        webhooks: Option<Webhooks>,
        mpc_name: &str,
        document: &str,
        request_uuid: &str,
        from: &str,
        to: &str,
    ) -> Arc<Self> {
        let fallback = huddle_xml::parse(document).ok().and_then(|parsed| {
            parsed
                .document
                .verbs
                .into_iter()
                .find_map(|verb| match verb {
                    huddle_xml::Verb::MultiPartyCall(mpc) => {
                        let selected = mpc
                            .status_callback_events
                            .contains(&StatusEvent::AddParticipantApiEvents);
                        mpc.status_callback.clone().filter(|_| selected)
                    }
                    _ => None,
                })
        });
        Arc::new(ApiActionEvents {
            rooms,
            webhooks,
            mpc_name: mpc_name.to_string(),
            fallback,
            params: vec![
                ("RequestUUID", request_uuid.to_string()),
                ("ParticipantCallFrom", from.to_string()),
                ("ParticipantCallTo", to.to_string()),
            ],
        })
    }

    /// The legs are about to be dialled (awaited, so that it comes before `...Completed`).
    pub async fn initiated(&self) {
        let params = self.params.clone();
        self.deliver(EventName::AddParticipantByApiActionInitiated, params, false)
            .await;
    }

    /// The race is decided.
    pub fn completed(self: &Arc<Self>, settled: Settled) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut params = this.params.clone();
            let answered = match settled {
                Settled::Answered(call_uuid) => {
                    params.push(("ParticipantCallUUID", call_uuid.to_string()));
                    params.push(("CallStatus", "in-progress".to_string()));
                    true
                }
                Settled::Unanswered(status) => {
                    params.push(("CallStatus", status.to_string()));
                    false
                }
            };
            this.deliver(
                EventName::AddParticipantByApiActionCompleted,
                params,
                answered,
            )
            .await;
        });
    }

    /// Through the live MPC (waiting for it to appear when `wait`), else to the fallback.
    async fn deliver(&self, name: EventName, params: Vec<(&'static str, String)>, wait: bool) {
        let started = tokio::time::Instant::now();
        loop {
            let command = Command::ApiAction(name, params.clone());
            match self.rooms.command(&self.mpc_name, command).await {
                Ok(()) => return,
                Err(RegistryError::NotFound) if wait && started.elapsed() < JOIN_WAIT => {
                    tokio::time::sleep(JOIN_POLL).await;
                }
                Err(_) => break,
            }
        }
        let (Some(target), Some(webhooks)) = (&self.fallback, &self.webhooks) else {
            tracing::debug!(
                event = name.as_str(),
                mpc = %self.mpc_name,
                "no live MPC and no status callback for the event"
            );
            return;
        };
        let mut all = vec![
            ("EventName".to_string(), name.as_str().to_string()),
            (
                "EventTimestamp".to_string(),
                huddle_events::clock::plivo_timestamp(SystemTime::now()),
            ),
            ("MPCName".to_string(), self.mpc_name.clone()),
        ];
        all.extend(params.into_iter().map(|(k, v)| (k.to_string(), v)));
        webhooks.send(
            &format!("mpc-name:{}", self.mpc_name),
            Webhook {
                url: target.url.clone(),
                method: target.method,
                params: all,
            },
        );
    }
}
