//! Status callbacks of a dialled leg (add participant's `call_status_callback_url`): `ringing`,
//! `in-progress` once answered, then `completed` (or `busy`, `no-answer`, `canceled`,
//! `failed`) with the hangup cause, queued in order per call through the same signed,
//! durable delivery as the MPC's callbacks.

use std::time::SystemTime;

use huddle_events::clock::plivo_timestamp;
use huddle_events::{Webhook, Webhooks};
use huddle_xml::HttpMethod;

/// Where a dialled leg's status callbacks go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStatusCallback {
    /// `call_status_callback_url`.
    pub url: String,
    /// `call_status_callback_method` (POST by default).
    pub method: HttpMethod,
}

/// How a dialled leg that never joined ended, as Plivo's outbound call statuses name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The callee was busy (486, 600).
    Busy,
    /// It rang until the ring timeout, or the far end gave up on it (408, 480, 487).
    NoAnswer,
    /// Another destination of the same request answered first (9000 "Lost Race").
    LostRace,
    /// Anything else: rejected, unreachable, no trunk.
    Failed,
}

impl Unanswered {
    /// The status for a final SIP response to the INVITE.
    pub fn from_sip(status: u16) -> Unanswered {
        match status {
            486 | 600 => Unanswered::Busy,
            408 | 480 | 487 => Unanswered::NoAnswer,
            _ => Unanswered::Failed,
        }
    }

    /// The outbound `CallStatus` it gives.
    pub fn status(self) -> &'static str {
        self.fields().0
    }

    /// `CallStatus`, `HangupCause`, `HangupCauseCode` (Plivo's hangup-cause table).
    fn fields(self) -> (&'static str, &'static str, u16) {
        match self {
            Unanswered::Busy => ("busy", "Busy Line", 3010),
            Unanswered::NoAnswer => ("no-answer", "No Answer", 3020),
            Unanswered::LostRace => ("canceled", "Lost Race", 9000),
            Unanswered::Failed => ("failed", "Call Rejected", 3040),
        }
    }
}

/// Reports one dialled leg's progress; does nothing without a callback URL.
pub(crate) struct CallStatusReporter {
    target: Option<(CallStatusCallback, Webhooks)>,
    base: Vec<(String, String)>,
    call_uuid: String,
    started: SystemTime,
    answered: Option<SystemTime>,
    rang: bool,
    done: bool,
}

impl CallStatusReporter {
    pub(crate) fn new(
        target: Option<CallStatusCallback>,
        webhooks: Option<Webhooks>,
        call_uuid: &str,
        request_uuid: &str,
        from: &str,
        to: &str,
    ) -> Self {
        let base = vec![
            ("CallUUID".to_string(), call_uuid.to_string()),
            ("RequestUUID".to_string(), request_uuid.to_string()),
            ("From".to_string(), from.to_string()),
            ("To".to_string(), to.to_string()),
            ("Direction".to_string(), "outbound".to_string()),
        ];
        CallStatusReporter {
            target: target.zip(webhooks),
            base,
            call_uuid: call_uuid.to_string(),
            started: SystemTime::now(),
            answered: None,
            rang: false,
            done: false,
        }
    }

    fn send(&self, status: &str, event: &str, extra: Vec<(String, String)>) {
        let Some((target, webhooks)) = &self.target else {
            return;
        };
        let mut params = self.base.clone();
        params.push(("CallStatus".to_string(), status.to_string()));
        params.push(("Event".to_string(), event.to_string()));
        params.push((
            "EventTimestamp".to_string(),
            plivo_timestamp(SystemTime::now()),
        ));
        params.extend(extra);
        webhooks.send(
            &format!("call:{}", self.call_uuid),
            Webhook {
                url: target.url.clone(),
                method: target.method,
                params,
            },
        );
    }

    /// The first 18x: the callee's phone rings.
    pub(crate) fn ringing(&mut self) {
        if !self.rang {
            self.rang = true;
            self.send("ringing", "Ring", Vec::new());
        }
    }

    /// The callee answered.
    pub(crate) fn answered(&mut self) {
        let now = SystemTime::now();
        self.answered = Some(now);
        self.send(
            "in-progress",
            "StartApp",
            vec![("AnswerTime".to_string(), plivo_timestamp(now))],
        );
    }

    /// The answered leg is over.
    pub(crate) fn completed(&mut self, cause: &str, code: u16, source: &str) {
        self.finish("completed", cause, code, source);
    }

    /// The leg ended without being answered.
    pub(crate) fn unanswered(&mut self, how: Unanswered) {
        let (status, cause, code) = how.fields();
        self.finish(status, cause, code, "Plivo");
    }

    fn finish(&mut self, status: &str, cause: &str, code: u16, source: &str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let end = SystemTime::now();
        let duration = self
            .answered
            .and_then(|a| end.duration_since(a).ok())
            .map_or(0, |d| d.as_secs());
        let mut extra = vec![
            ("HangupCause".to_string(), cause.to_string()),
            ("HangupCauseCode".to_string(), code.to_string()),
            ("HangupSource".to_string(), source.to_string()),
            ("Duration".to_string(), duration.to_string()),
            ("BillDuration".to_string(), duration.to_string()),
            ("StartTime".to_string(), plivo_timestamp(self.started)),
            ("EndTime".to_string(), plivo_timestamp(end)),
        ];
        if let Some(answered) = self.answered {
            extra.push(("AnswerTime".to_string(), plivo_timestamp(answered)));
        }
        self.send(status, "Hangup", extra);
    }
}
