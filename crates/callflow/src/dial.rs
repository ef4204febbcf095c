//! Dialling a participant out through the trunk (add participant with `from` and `to`): an
//! INVITE with our offer, a ring timeout, and once answered the leg runs its document (one
//! `<MultiPartyCall>`) like any call.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use huddle_events::CallParams;
use huddle_media::session::MediaSession;
use huddle_roomport::CallUuid;
use huddle_sdp::{LocalMedia, PCMA, PCMU};
use thiserror::Error;
use tokio::sync::watch;
use tracing::Instrument;

use crate::calls::{CallInfo, DialOutcome};
use crate::executor::{FirstDocument, XmlCall};
use crate::manager::CallContext;
use crate::media_setup;

/// One leg to dial.
#[derive(Debug, Clone)]
pub struct DialRequest {
    /// Destination: a number or a SIP URI (the trunk routes it).
    pub to: String,
    /// Caller id: a number or a SIP URI (its user part goes into From).
    pub from: String,
    /// The document the leg runs once answered.
    pub document: String,
    /// How long it may ring before we give up.
    pub ring_timeout: Duration,
    /// The destinations dialled together with this one.
    pub race: DialRace,
}

/// Destinations dialled together for one participant: the first to answer joins; the others
/// are cancelled, or hung up if they answer too (Plivo's 9000 "Lost Race"). Cheap to clone.
#[derive(Debug, Clone)]
pub struct DialRace {
    won: Arc<watch::Sender<bool>>,
}

impl Default for DialRace {
    fn default() -> Self {
        DialRace::new()
    }
}

impl DialRace {
    /// A new race.
    pub fn new() -> Self {
        DialRace {
            won: Arc::new(watch::channel(false).0),
        }
    }

    /// True for the first leg to call this: it joins.
    fn claim(&self) -> bool {
        self.won
            .send_if_modified(|won| !std::mem::replace(won, true))
    }

    /// Resolves once some leg has won.
    async fn lost(&self) {
        let mut won = self.won.subscribe();
        let _ = won.wait_for(|w| *w).await;
    }
}

/// Why a leg could not be dialled at all (ringing and answering come later, in the log).
#[derive(Debug, Error)]
pub enum DialError {
    /// No RTP port pair is free.
    #[error("no media ports available")]
    NoMediaPorts,
    /// `[sip.trunk]` has no usable URI.
    #[error("no SIP trunk is configured for dialling out")]
    NoTrunk,
}

/// How ringing ended.
enum Rang {
    Outcome(DialOutcome),
    /// The SIP side forgot the leg.
    Gone,
    Timeout,
    /// Another destination of the same request answered first.
    Lost,
}

/// The user part of a number or SIP URI (`sip:alice@host` → `alice`).
fn user_part(address: &str) -> &str {
    let address = address
        .trim()
        .trim_start_matches("sips:")
        .trim_start_matches("sip:");
    address.split('@').next().unwrap_or(address)
}

/// Sends the INVITE and returns the new leg's CallUUID at once; the leg rings, is answered
/// and runs its document on a task of its own.
pub async fn dial_participant(
    ctx: &Arc<CallContext>,
    request: DialRequest,
) -> Result<CallUuid, DialError> {
    let session = MediaSession::bind(&ctx.ports, ctx.media.local_ip)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "cannot set up the dialled call's RTP sockets");
            DialError::NoMediaPorts
        })?;
    let port = session.local_rtp_port();
    let local = LocalMedia::new(ctx.media.local_ip, port, u64::from(port), 1);
    let offer = huddle_sdp::build_offer(&local, &[PCMU, PCMA], true);
    let leg = ctx
        .sip
        .dial(&request.to, user_part(&request.from), Bytes::from(offer))
        .await
        .ok_or(DialError::NoTrunk)?;
    let (outcome, events_tx, events) = ctx.calls.register_outbound(leg);
    let call_uuid = CallUuid::new(uuid::Uuid::new_v4().to_string());
    let info = CallInfo {
        from: request.from.clone(),
        to: request.to.clone(),
    };
    ctx.calls.insert(&call_uuid, info, events_tx);
    metrics::counter!("huddle_calls_total", "direction" => "outbound").increment(1);
    let span = tracing::info_span!("call", call_uuid = %call_uuid, leg = leg.0);
    let task_ctx = ctx.clone();
    let uuid = call_uuid.clone();
    tokio::spawn(
        async move {
            tracing::info!(to = %request.to, "dialling a participant");
            let ringing = tokio::time::timeout(request.ring_timeout, outcome);
            let rang = tokio::select! {
                result = ringing => match result {
                    Ok(Ok(outcome)) => Rang::Outcome(outcome),
                    Ok(Err(_)) => Rang::Gone,
                    Err(_) => Rang::Timeout,
                },
                () = request.race.lost() => Rang::Lost,
            };
            let answer = match rang {
                Rang::Outcome(DialOutcome::Answered(_)) if !request.race.claim() => {
                    tracing::info!("answered after another destination: lost race (9000)");
                    task_ctx.sip.hangup(leg);
                    None
                }
                Rang::Outcome(DialOutcome::Answered(sdp)) => Some(sdp),
                Rang::Outcome(DialOutcome::Failed(status, reason)) => {
                    tracing::info!(status, %reason, "the dialled participant did not answer");
                    None
                }
                Rang::Gone => None,
                Rang::Lost => {
                    tracing::info!("another destination answered first: cancelling");
                    task_ctx.sip.hangup(leg);
                    None
                }
                Rang::Timeout => {
                    tracing::info!(
                        secs = request.ring_timeout.as_secs(),
                        "ring timeout: giving up"
                    );
                    task_ctx.sip.hangup(leg);
                    None
                }
            };
            if let Some(sdp) = answer {
                match huddle_sdp::parse_answer(&sdp, &[PCMU, PCMA], &local) {
                    Ok(n) => {
                        let params = media_setup::answered_params(&task_ctx.media, &n);
                        let Ok(handle) = session.start(params) else {
                            // Plain RTP toward the trunk: there are no keys to refuse.
                            task_ctx.sip.hangup(leg);
                            task_ctx.calls.remove(&uuid);
                            task_ctx.calls.forget_outbound(leg);
                            return;
                        };
                        let call_params = CallParams {
                            call_uuid: uuid.to_string(),
                            from: user_part(&request.from).to_string(),
                            to: request.to.clone(),
                            direction: "outbound",
                        };
                        XmlCall::answered(task_ctx.clone(), leg, call_params, events, handle, port)
                            .run(FirstDocument::Inline(request.document))
                            .await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "unusable SDP answer: hanging up");
                        task_ctx.sip.hangup(leg);
                    }
                }
            }
            task_ctx.calls.remove(&uuid);
            task_ctx.calls.forget_outbound(leg);
        }
        .instrument(span),
    );
    Ok(call_uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parts() {
        assert_eq!(user_part("sip:alice@example.com"), "alice");
        assert_eq!(user_part("+14155550100"), "+14155550100");
        assert_eq!(user_part(" sips:bob@h:5061 "), "bob");
    }
}
