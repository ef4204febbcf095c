//! Dispatches SIP endpoint events to one task per call leg.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use huddle_media::ports::PortAllocator;
use huddle_roomport::CallUuid;
use huddle_sip::endpoint::{EndReason, EndpointEvent, LegId};
use huddle_sip::service::SipHandle;
use tokio::sync::{mpsc, watch};

use crate::calls::DialOutcome;
use crate::leg::{run_leg, LegEvent};
use crate::router::Router;

/// Media settings every leg uses.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// IP the RTP sockets bind to and the SDP advertises.
    pub local_ip: IpAddr,
    /// Jitter buffer lower bound.
    pub jitter_min_ms: u32,
    /// Jitter buffer upper bound.
    pub jitter_max_ms: u32,
    /// Hang up when no RTP arrives for this long (None: never).
    pub rtp_timeout: Option<Duration>,
    /// Codecs calls may use (`rtp.codecs`); the offer's order picks among them.
    pub codecs: Vec<huddle_sdp::CodecSpec>,
}

/// Everything a call task needs, shared.
pub struct CallContext {
    /// SIP commands.
    pub sip: SipHandle,
    /// Routes.
    pub router: Router,
    /// RTP ports.
    pub ports: Arc<PortAllocator>,
    /// Media settings.
    pub media: MediaSettings,
    /// HTTP client for answer_url and friends.
    pub http: huddle_events::HttpClient,
    /// Play and Speak audio.
    pub prompts: huddle_prompts::Prompts,
    /// The MPC room service (absent: MultiPartyCall is skipped with a warning).
    pub rooms: Option<Arc<dyn huddle_roomport::Rooms>>,
    /// Becomes true when live calls must be ended (end of the shutdown grace period).
    pub hangup_all: watch::Receiver<bool>,
    /// The live calls by CallUUID.
    pub calls: crate::calls::Calls,
    /// What ai-agent streams need (signed client, account id, TLS, backoff).
    pub ai_streams: huddle_aistream::StreamDeps,
    /// Signed, durable callback delivery for the status callbacks of dialled legs (None:
    /// those callbacks are not sent).
    pub webhooks: Option<huddle_events::Webhooks>,
    /// Where `<Record>` writes its files.
    pub recordings: RecordingFiles,
    /// Where `<Record>` files are journaled for a restart after a crash (None: they are not).
    pub record_journal: Option<Arc<dyn crate::record_journal::RecordJournal>>,
}

/// Where `<Record>` writes its files (`storage.recordings`, shared with MPC recordings) and
/// the URL prefix they are served at with the API's basic auth.
#[derive(Debug, Clone)]
pub struct RecordingFiles {
    /// The directory.
    pub dir: std::path::PathBuf,
    /// `{http.public_url}/v1/Account/{auth_id}/Recording/`.
    pub url_base: String,
}

/// Runs until the endpoint's event stream ends.
pub async fn run(ctx: Arc<CallContext>, mut events: mpsc::UnboundedReceiver<EndpointEvent>) {
    let mut legs: HashMap<LegId, mpsc::UnboundedSender<LegEvent>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<LegId>();
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                dispatch(&ctx, &mut legs, &done_tx, ev);
            }
            Some(leg) = done_rx.recv() => {
                legs.remove(&leg);
                metrics::gauge!("huddle_calls_active").set(legs.len() as f64);
            }
        }
    }
}

fn dispatch(
    ctx: &Arc<CallContext>,
    legs: &mut HashMap<LegId, mpsc::UnboundedSender<LegEvent>>,
    done: &mpsc::UnboundedSender<LegId>,
    ev: EndpointEvent,
) {
    match ev {
        EndpointEvent::IncomingCall { leg, invite, peer } => {
            metrics::counter!("huddle_calls_total", "direction" => "inbound").increment(1);
            let user = invite.uri_user().unwrap_or_default();
            let Some(route) = ctx.router.route(&user) else {
                tracing::info!(%user, "no route matches the called user");
                ctx.sip.reject(leg, 404, "Not Found");
                return;
            };
            let (tx, rx) = mpsc::unbounded_channel();
            let call_uuid = CallUuid::new(uuid::Uuid::new_v4().to_string());
            let info = crate::calls::CallInfo {
                from: crate::leg::from_user(&invite),
                to: user.clone(),
            };
            ctx.calls.insert(&call_uuid, info, tx.clone());
            legs.insert(leg, tx);
            metrics::gauge!("huddle_calls_active").set(legs.len() as f64);
            let ctx = ctx.clone();
            let done = done.clone();
            tokio::spawn(async move {
                run_leg(
                    ctx.clone(),
                    leg,
                    call_uuid.clone(),
                    *invite,
                    peer,
                    route,
                    rx,
                )
                .await;
                ctx.calls.remove(&call_uuid);
                let _ = done.send(leg);
            });
        }
        EndpointEvent::Established { leg } => forward(ctx, legs, leg, LegEvent::Established),
        EndpointEvent::ReInvite { leg, offer } => {
            forward(ctx, legs, leg, LegEvent::ReInvite(offer))
        }
        EndpointEvent::Ended { leg, reason } => {
            forward(ctx, legs, leg, LegEvent::Ended(reason.clone()));
            if reason == EndReason::Cancelled {
                metrics::counter!("huddle_calls_cancelled_total").increment(1);
            }
        }
        EndpointEvent::OutboundProgress { leg, status, sdp } => {
            ctx.calls
                .outbound_event(leg, LegEvent::Progress(status, sdp));
        }
        EndpointEvent::OutboundAnswered { leg, sdp } => {
            ctx.calls.outbound_outcome(leg, DialOutcome::Answered(sdp));
        }
        EndpointEvent::OutboundFailed {
            leg,
            status,
            reason,
        } => ctx
            .calls
            .outbound_outcome(leg, DialOutcome::Failed(status, reason)),
    }
}

/// An inbound leg's event goes to its task; any other leg's to its dialler, if it is ours.
fn forward(
    ctx: &CallContext,
    legs: &HashMap<LegId, mpsc::UnboundedSender<LegEvent>>,
    leg: LegId,
    ev: LegEvent,
) {
    match legs.get(&leg) {
        Some(tx) => {
            let _ = tx.send(ev);
        }
        None => ctx.calls.outbound_event(leg, ev),
    }
}
