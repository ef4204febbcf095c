//! The live calls by CallUUID, so that the API can reach one: moving a call into an MPC
//! (add participant with `call_uuid`) hands its leg a new document to run at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use huddle_roomport::CallUuid;
use huddle_sip::endpoint::LegId;
use tokio::sync::{mpsc, oneshot};

use crate::leg::LegEvent;

/// How a leg we dialled turned out.
#[derive(Debug)]
pub(crate) enum DialOutcome {
    /// Answered with this SDP (the ACK is sent).
    Answered(Bytes),
    /// Failed with this final status and reason.
    Failed(u16, String),
}

/// Where a dialled leg's news go.
struct OutboundLeg {
    outcome: Option<oneshot::Sender<DialOutcome>>,
    events: mpsc::UnboundedSender<LegEvent>,
}

/// News of a dialled leg that came before its dialler registered it (the answer can beat the
/// reply to the dial command on a fast network).
enum Early {
    Outcome(DialOutcome),
    Event(LegEvent),
}

/// Legs whose early news wait at most; beyond, the oldest are forgotten.
const MAX_EARLY: usize = 1024;

#[derive(Default)]
struct Outbound {
    legs: HashMap<LegId, OutboundLeg>,
    early: HashMap<LegId, Vec<Early>>,
}

/// A live call as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The caller.
    pub from: String,
    /// The called user.
    pub to: String,
}

struct LiveCall {
    info: CallInfo,
    events: mpsc::UnboundedSender<LegEvent>,
}

/// Live call legs by CallUUID, and the legs being dialled; cheap to clone.
#[derive(Clone, Default)]
pub struct Calls {
    legs: Arc<Mutex<HashMap<CallUuid, LiveCall>>>,
    outbound: Arc<Mutex<Outbound>>,
}

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallUuid, LiveCall>> {
        self.legs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(
        &self,
        call_uuid: &CallUuid,
        info: CallInfo,
        events: mpsc::UnboundedSender<LegEvent>,
    ) {
        self.lock()
            .insert(call_uuid.clone(), LiveCall { info, events });
    }

    pub(crate) fn remove(&self, call_uuid: &CallUuid) {
        self.lock().remove(call_uuid);
    }

    /// The live call with this CallUUID.
    pub fn get(&self, call_uuid: &str) -> Option<CallInfo> {
        self.lock()
            .get(call_uuid)
            .filter(|call| !call.events.is_closed())
            .map(|call| call.info.clone())
    }

    /// Makes the call drop what it is doing (a verb, an MPC) and run `xml` instead; false when
    /// no such call is live. The document must already be valid: the leg parses it again and
    /// ignores one that is not.
    pub fn transfer(&self, call_uuid: &str, xml: String) -> bool {
        self.lock()
            .get(call_uuid)
            .is_some_and(|call| call.events.send(LegEvent::Transfer(xml)).is_ok())
    }

    fn outbound(&self) -> std::sync::MutexGuard<'_, Outbound> {
        self.outbound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a dialled leg's news from now on (and any that came already).
    pub(crate) fn register_outbound(
        &self,
        leg: LegId,
    ) -> (
        oneshot::Receiver<DialOutcome>,
        mpsc::UnboundedSender<LegEvent>,
        mpsc::UnboundedReceiver<LegEvent>,
    ) {
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut entry = OutboundLeg {
            outcome: Some(outcome_tx),
            events: events_tx.clone(),
        };
        let mut outbound = self.outbound();
        for early in outbound.early.remove(&leg).unwrap_or_default() {
            deliver(&mut entry, early);
        }
        outbound.legs.insert(leg, entry);
        (outcome_rx, events_tx, events_rx)
    }

    /// The dialled leg is over.
    pub(crate) fn forget_outbound(&self, leg: LegId) {
        let mut outbound = self.outbound();
        outbound.legs.remove(&leg);
        outbound.early.remove(&leg);
    }

    /// The answer or failure of a dialled leg.
    pub(crate) fn outbound_outcome(&self, leg: LegId, outcome: DialOutcome) {
        self.outbound_news(leg, Early::Outcome(outcome));
    }

    /// A SIP event of a leg that is not inbound: delivered if it is one we dialled.
    pub(crate) fn outbound_event(&self, leg: LegId, event: LegEvent) {
        self.outbound_news(leg, Early::Event(event));
    }

    fn outbound_news(&self, leg: LegId, news: Early) {
        let mut outbound = self.outbound();
        if let Some(entry) = outbound.legs.get_mut(&leg) {
            deliver(entry, news);
            return;
        }
        if outbound.early.len() >= MAX_EARLY {
            outbound.early.clear();
        }
        outbound.early.entry(leg).or_default().push(news);
    }
}

fn deliver(entry: &mut OutboundLeg, news: Early) {
    match news {
        Early::Outcome(outcome) => {
            if let Some(tx) = entry.outcome.take() {
                let _ = tx.send(outcome);
            }
        }
        Early::Event(event) => {
            let _ = entry.events.send(event);
        }
    }
}
