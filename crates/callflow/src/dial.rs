//! Dialling a participant out through the trunk (add participant with `from` and `to`): an
//! optional delay, an INVITE with our offer, a ring timeout, status callbacks for the leg,
//! and once answered the digits or confirm key the request asks for, then the leg runs its
//! document (one `<MultiPartyCall>`) like any call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use huddle_events::CallParams;
use huddle_media::session::{AudioFrame, MediaHandle, MediaSession};
use huddle_roomport::CallUuid;
use huddle_sdp::{LocalMedia, PCMA, PCMU};
use huddle_sip::address::OutboundCall;
use huddle_sip::endpoint::LegId;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::call_status::{CallStatusCallback, CallStatusReporter, Unanswered};
use crate::calls::{CallInfo, DialOutcome};
use crate::executor::{AfterAnswer, Ending, FirstDocument, XmlCall};
use crate::input::{DtmfPlayer, DIGIT_MS};
use crate::leg::LegEvent;
use crate::manager::CallContext;
use crate::media_setup;

/// One leg to dial.
#[derive(Debug, Clone)]
pub struct DialRequest {
    /// Who calls whom: the Request-URI, To, From (with the caller name) and extra headers.
    pub call: OutboundCall,
    /// The document the leg runs once answered.
    pub document: String,
    /// How long it may ring before we give up.
    pub ring_timeout: Duration,
    /// How long to wait before sending the INVITE (`delay_dial`).
    pub delay: Duration,
    /// The destinations dialled together with this one.
    pub race: DialRace,
    /// The add-participant request this leg belongs to (`RequestUUID` of its callbacks).
    pub request_uuid: String,
    /// Where the leg's status callbacks go, if anywhere.
    pub status_callback: Option<CallStatusCallback>,
    /// What the callee gets between its answer and joining: digits, a confirm key.
    pub after_answer: AfterAnswer,
}

/// Destinations dialled together for one participant: the first to answer joins; the others
/// are cancelled, or hung up if they answer too (Plivo's 9000 "Lost Race"). Cheap to clone.
#[derive(Clone)]
pub struct DialRace {
    won: Arc<watch::Sender<bool>>,
    /// Legs not decided yet, and what to call once the race is decided.
    settle: Arc<Mutex<Settle>>,
}

struct Settle {
    pending: usize,
    hook: Option<SettleHook>,
}

/// Called once when a race is decided.
pub type SettleHook = Box<dyn FnOnce(Settled) + Send>;

/// How a race was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// This leg answered and goes on to join.
    Answered(CallUuid),
    /// No leg answered; the last one's outbound call status (`busy`, `no-answer`, `failed`).
    Unanswered(&'static str),
}

impl std::fmt::Debug for DialRace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialRace")
            .field("won", &*self.won.borrow())
            .finish()
    }
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
            settle: Arc::new(Mutex::new(Settle {
                pending: 0,
                hook: None,
            })),
        }
    }

    /// A race of `legs` legs that calls `hook` once decided: at the first answer, or when the
    /// last leg ends unanswered. A leg that could not be dialled at all is [`Self::abandon`]ed.
    pub fn with_hook(legs: usize, hook: SettleHook) -> Self {
        let race = DialRace::new();
        {
            let mut settle = race.lock();
            settle.pending = legs;
            settle.hook = Some(hook);
        }
        race
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Settle> {
        self.settle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True for the first leg to call this: it joins.
    fn claim(&self, call_uuid: &CallUuid) -> bool {
        let won = self
            .won
            .send_if_modified(|won| !std::mem::replace(won, true));
        if won {
            let hook = self.lock().hook.take();
            if let Some(hook) = hook {
                hook(Settled::Answered(call_uuid.clone()));
            }
        }
        won
    }

    /// A leg ended without answering (`status`: its outbound call status).
    fn unanswered(&self, status: &'static str) {
        let hook = {
            let mut settle = self.lock();
            settle.pending = settle.pending.saturating_sub(1);
            if settle.pending == 0 && !*self.won.borrow() {
                settle.hook.take()
            } else {
                None
            }
        };
        if let Some(hook) = hook {
            hook(Settled::Unanswered(status));
        }
    }

    /// A leg of the race could not be dialled at all.
    pub fn abandon(&self) {
        self.unanswered("failed");
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

/// The media side of a leg being dialled: its sockets (taken when its media starts) and the
/// offer made from them.
struct Prepared {
    session: Option<MediaSession>,
    local: LocalMedia,
    port: u16,
    offer: Bytes,
}

/// Sends the INVITE (after `delay_dial`, on the leg's own task when there is one) and
/// returns the new leg's CallUUID at once; the leg rings, is answered and runs its document on
/// a task of its own.
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
    let offer = Bytes::from(huddle_sdp::build_offer(&local, &[PCMU, PCMA], true));
    let prepared = Prepared {
        session: Some(session),
        local,
        port,
        offer,
    };
    // Without a delay a missing trunk is the request's error; with one, the leg's outcome.
    let leg = if request.delay.is_zero() {
        Some(
            ctx.sip
                .dial(&request.call, prepared.offer.clone())
                .await
                .ok_or(DialError::NoTrunk)?,
        )
    } else {
        None
    };
    let call_uuid = CallUuid::new(uuid::Uuid::new_v4().to_string());
    metrics::counter!("huddle_calls_total", "direction" => "outbound").increment(1);
    let span = tracing::info_span!("call", call_uuid = %call_uuid);
    tokio::spawn(
        dialled_leg(ctx.clone(), request, call_uuid.clone(), prepared, leg).instrument(span),
    );
    Ok(call_uuid)
}

/// A dialled leg's life: the delay, the INVITE, ringing, and once answered its document.
async fn dialled_leg(
    ctx: Arc<CallContext>,
    request: DialRequest,
    uuid: CallUuid,
    mut prepared: Prepared,
    leg: Option<LegId>,
) {
    let mut reporter = CallStatusReporter::new(
        request.status_callback.clone(),
        ctx.webhooks.clone(),
        uuid.as_str(),
        &request.request_uuid,
        request.call.from.as_str(),
        request.call.to.as_str(),
    );
    let leg = match leg {
        Some(leg) => leg,
        None => {
            tracing::info!(
                secs = request.delay.as_secs(),
                "delay_dial: waiting before dialling"
            );
            tokio::select! {
                () = tokio::time::sleep(request.delay) => {}
                () = request.race.lost() => {
                    tracing::info!("another destination answered during the delay: not dialling");
                    unanswered(&request.race, &mut reporter, Unanswered::LostRace);
                    return;
                }
            }
            match ctx.sip.dial(&request.call, prepared.offer.clone()).await {
                Some(leg) => leg,
                None => {
                    tracing::warn!("cannot dial: no usable trunk, or server.max_calls reached");
                    unanswered(&request.race, &mut reporter, Unanswered::Failed);
                    return;
                }
            }
        }
    };
    let (outcome, events_tx, mut events) = ctx.calls.register_outbound(leg);
    let info = CallInfo {
        from: request.call.from.as_str().to_string(),
        to: request.call.to.as_str().to_string(),
    };
    ctx.calls.insert(&uuid, info, events_tx);
    tracing::info!(
        to = request.call.to.as_str(),
        leg = leg.0,
        "dialling a participant"
    );
    let mut early = None;
    let rang = ring(
        &ctx,
        &request,
        outcome,
        &mut events,
        &mut reporter,
        &mut prepared,
        &mut early,
    )
    .await;
    let answer = match rang {
        Rang::Outcome(DialOutcome::Answered(_)) if !request.race.claim(&uuid) => {
            tracing::info!("answered after another destination: lost race (9000)");
            ctx.sip.hangup(leg);
            unanswered(&request.race, &mut reporter, Unanswered::LostRace);
            None
        }
        Rang::Outcome(DialOutcome::Answered(sdp)) => Some(sdp),
        Rang::Outcome(DialOutcome::Failed(status, reason)) => {
            tracing::info!(status, %reason, "the dialled participant did not answer");
            unanswered(&request.race, &mut reporter, Unanswered::from_sip(status));
            None
        }
        Rang::Gone => {
            unanswered(&request.race, &mut reporter, Unanswered::Failed);
            None
        }
        Rang::Lost => {
            tracing::info!("another destination answered first: cancelling");
            ctx.sip.hangup(leg);
            unanswered(&request.race, &mut reporter, Unanswered::LostRace);
            None
        }
        Rang::Timeout => {
            tracing::info!(
                secs = request.ring_timeout.as_secs(),
                "ring timeout: giving up"
            );
            ctx.sip.hangup(leg);
            unanswered(&request.race, &mut reporter, Unanswered::NoAnswer);
            None
        }
    };
    if let Some(sdp) = answer {
        run_answered(
            &ctx,
            request,
            &uuid,
            leg,
            prepared,
            early,
            &sdp,
            events,
            &mut reporter,
        )
        .await;
    } else if let Some(early) = early {
        early.handle.stop().await;
    }
    ctx.calls.remove(&uuid);
    ctx.calls.forget_outbound(leg);
}

/// Reports a leg that ended without being answered, to its status callback and its race.
fn unanswered(race: &DialRace, reporter: &mut CallStatusReporter, how: Unanswered) {
    reporter.unanswered(how);
    race.unanswered(how.status());
}

/// The dialled leg's rate (G.711) and its 20 ms frame.
const EARLY_RATE: u32 = 8000;
const EARLY_FRAME: usize = (EARLY_RATE / 50) as usize;

/// `send_digits` going out on the callee's early media (`send_on_preanswer`): the leg's media
/// runs from the 183's SDP, paced here with silence so that the RFC 4733 events have ticks to
/// ride on.
struct EarlyDigits {
    handle: MediaHandle,
    player: DtmfPlayer,
    ticker: tokio::time::Interval,
    /// Digits or pauses are left.
    more: bool,
}

impl EarlyDigits {
    /// Starts the leg's media toward the early SDP `sdp`; None (logged) when it is unusable.
    fn start(
        ctx: &CallContext,
        prepared: &mut Prepared,
        sdp: &[u8],
        digits: &str,
    ) -> Option<EarlyDigits> {
        let negotiated = match huddle_sdp::parse_answer(sdp, &[PCMU, PCMA], &prepared.local) {
            Ok(n) => n,
            Err(error) => {
                tracing::info!(%error, "unusable early-media SDP: the digits wait for the answer");
                return None;
            }
        };
        let session = prepared.session.take()?;
        let handle = session
            .start(media_setup::answered_params(&ctx.media, &negotiated))
            .ok()?;
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tracing::info!(%digits, "sending digits on the callee's early media (send_on_preanswer)");
        Some(EarlyDigits {
            handle,
            player: DtmfPlayer::new(digits),
            ticker,
            more: true,
        })
    }

    /// One 20 ms step: a frame of silence, and the digit due now.
    fn step(&mut self) {
        self.handle
            .send_frame(AudioFrame::silence(EARLY_FRAME, EARLY_RATE));
        let (digit, more) = self.player.step();
        if let Some(digit) = digit {
            self.handle.send_dtmf(digit, DIGIT_MS);
        }
        self.more = more;
    }
}

/// Resolves at the next early tick while digits are left; never without any.
async fn early_tick(early: &mut Option<EarlyDigits>) {
    match early.as_mut() {
        Some(e) if e.more => {
            e.ticker.tick().await;
        }
        _ => std::future::pending().await,
    }
}

/// Waits for the INVITE's outcome, the ring timeout or another destination's answer; the
/// first 18x is reported as ringing. With `send_on_preanswer`, the first 18x with SDP starts
/// the media and the digits (`early`).
async fn ring(
    ctx: &CallContext,
    request: &DialRequest,
    mut outcome: oneshot::Receiver<DialOutcome>,
    events: &mut mpsc::UnboundedReceiver<LegEvent>,
    reporter: &mut CallStatusReporter,
    prepared: &mut Prepared,
    early: &mut Option<EarlyDigits>,
) -> Rang {
    let deadline = tokio::time::sleep(request.ring_timeout);
    tokio::pin!(deadline);
    let early_digits = request
        .after_answer
        .send_digits
        .as_deref()
        .filter(|_| request.after_answer.send_on_preanswer);
    loop {
        let wake = tokio::select! {
            result = &mut outcome => RingWake::Outcome(result.ok()),
            () = &mut deadline => return Rang::Timeout,
            () = request.race.lost() => return Rang::Lost,
            () = early_tick(early) => RingWake::EarlyTick,
            event = events.recv() => RingWake::Event(event),
        };
        match wake {
            RingWake::Outcome(Some(outcome)) => return Rang::Outcome(outcome),
            RingWake::Outcome(None) | RingWake::Event(None) => return Rang::Gone,
            RingWake::EarlyTick => {
                if let Some(e) = early.as_mut() {
                    e.step();
                }
            }
            RingWake::Event(Some(LegEvent::Progress(status, sdp))) => {
                tracing::debug!(status, "the dialled participant's phone rings");
                reporter.ringing();
                if let Some(digits) = early_digits.filter(|_| early.is_none() && !sdp.is_empty()) {
                    *early = EarlyDigits::start(ctx, prepared, &sdp, digits);
                }
            }
            RingWake::Event(Some(other)) => tracing::debug!(?other, "leg event while ringing"),
        }
    }
}

/// What woke the ringing loop.
enum RingWake {
    /// The INVITE's outcome (None: the SIP side dropped it).
    Outcome(Option<DialOutcome>),
    /// Time for the next early digit step.
    EarlyTick,
    /// A leg event (None: the channel closed).
    Event(Option<LegEvent>),
}

/// The answered leg: media started (or, after early digits, moved to the answer's address),
/// then the digits or confirm key, then its document.
#[allow(clippy::too_many_arguments)]
async fn run_answered(
    ctx: &Arc<CallContext>,
    request: DialRequest,
    uuid: &CallUuid,
    leg: LegId,
    prepared: Prepared,
    early: Option<EarlyDigits>,
    sdp: &[u8],
    events: mpsc::UnboundedReceiver<LegEvent>,
    reporter: &mut CallStatusReporter,
) {
    let negotiated = match huddle_sdp::parse_answer(sdp, &[PCMU, PCMA], &prepared.local) {
        Ok(n) => n,
        Err(error) => {
            tracing::warn!(%error, "unusable SDP answer: hanging up");
            ctx.sip.hangup(leg);
            unanswered(&request.race, reporter, Unanswered::Failed);
            if let Some(early) = early {
                early.handle.stop().await;
            }
            return;
        }
    };
    let mut after_answer = request.after_answer;
    let mut digits_left = None;
    let handle = match (early, prepared.session) {
        (Some(early), _) => {
            // The digits started on early media: the answer does not send them again.
            after_answer.send_digits = None;
            early.handle.update(
                negotiated.remote_rtp,
                media_setup::direction(negotiated.remote_direction),
            );
            digits_left = early.more.then_some(early.player);
            Some(early.handle)
        }
        (None, Some(session)) => session
            .start(media_setup::answered_params(&ctx.media, &negotiated))
            .ok(),
        (None, None) => None,
    };
    let Some(handle) = handle else {
        // Plain RTP toward the trunk: there are no keys to refuse.
        ctx.sip.hangup(leg);
        unanswered(&request.race, reporter, Unanswered::Failed);
        return;
    };
    reporter.answered();
    let call_params = CallParams {
        call_uuid: uuid.to_string(),
        from: request.call.from.as_str().to_string(),
        to: request.call.to.as_str().to_string(),
        direction: "outbound",
    };
    let mut call = XmlCall::answered(ctx.clone(), leg, call_params, events, handle, prepared.port)
        .after_answer(after_answer);
    if let Some(player) = digits_left {
        call = call.early_digits_left(player);
    }
    let ending = call.run(FirstDocument::Inline(request.document)).await;
    match ending {
        Ending::Remote(_) => reporter.completed("Normal Hangup", 4000, "Callee"),
        Ending::Local { cause, .. } => reporter.completed(cause.name(), cause.code(), "Plivo"),
        Ending::Transferred(_) => reporter.completed("Normal Hangup", 4000, "Plivo"),
    }
}
