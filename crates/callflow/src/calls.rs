//! The live calls by CallUUID, so that the API can reach one: moving a call into an MPC
//! (add participant with `call_uuid`) hands its leg a new document to run at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::leg::LegEvent;

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

/// Live call legs by CallUUID; cheap to clone.
#[derive(Clone, Default)]
pub struct Calls {
    legs: Arc<Mutex<HashMap<String, LiveCall>>>,
}

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveCall>> {
        self.legs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(
        &self,
        call_uuid: &str,
        info: CallInfo,
        events: mpsc::UnboundedSender<LegEvent>,
    ) {
        self.lock()
            .insert(call_uuid.to_string(), LiveCall { info, events });
    }

    pub(crate) fn remove(&self, call_uuid: &str) {
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
}
