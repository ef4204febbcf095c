//! The task that runs one inbound call leg from INVITE to hang-up.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use huddle_events::CallParams;
use huddle_media::codec::Codec;
use huddle_media::session::{MediaEvent, MediaHandle, MediaItem, MediaSession, SrtpKeying};
use huddle_roomport::CallUuid;
use huddle_sip::endpoint::{EndReason, LegId};
use huddle_sip::message::Request;
use huddle_sip::transaction::Peer;
use huddle_xml::HttpMethod;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::executor::{FirstDocument, XmlCall};
use crate::manager::CallContext;
use crate::media_setup::{self, MediaPolicy, Negotiated};
use crate::router::{RouteAction, RouteMatch};

/// What the SIP side tells a running leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// The ACK for our 2xx arrived.
    Established,
    /// A re-INVITE with this offer (empty: offerless).
    ReInvite(Bytes),
    /// The leg ended on the SIP side.
    Ended(EndReason),
    /// Drop the current verb and run this document (the API moved the call).
    Transfer(String),
    /// A provisional response (180, 183) to the INVITE of a leg we dialled, with its
    /// early-media SDP (empty when it has none).
    Progress(u16, Bytes),
}

/// Runs one leg to completion.
pub async fn run_leg(
    ctx: Arc<CallContext>,
    leg: LegId,
    call_uuid: CallUuid,
    invite: Request,
    peer: Peer,
    route: RouteMatch,
    events: mpsc::UnboundedReceiver<LegEvent>,
) {
    let span = tracing::info_span!("call", call_uuid = %call_uuid, leg = leg.0);
    async move {
        let user = invite.uri_user().unwrap_or_default();
        tracing::info!(from = %peer.addr, to = %user, route = route.index, "inbound call");
        match route.action.clone() {
            RouteAction::Echo => run_echo(&ctx, leg, &invite, &route, &peer, events).await,
            RouteAction::Xml(xml) => {
                let params = call_params(&call_uuid, &invite, user);
                XmlCall::new(ctx, leg, invite, params, events, route.max_duration)
                    .media_policy(MediaPolicy::for_route(
                        route.latching,
                        route.srtp,
                        peer.addr,
                    ))
                    .run(FirstDocument::Inline(xml))
                    .await;
            }
            RouteAction::AnswerUrl { url, method } => {
                let params = call_params(&call_uuid, &invite, user);
                let method = if method.eq_ignore_ascii_case("GET") {
                    HttpMethod::Get
                } else {
                    HttpMethod::Post
                };
                XmlCall::new(ctx, leg, invite, params, events, route.max_duration)
                    .media_policy(MediaPolicy::for_route(
                        route.latching,
                        route.srtp,
                        peer.addr,
                    ))
                    .run(FirstDocument::Url { url, method })
                    .await;
            }
        }
    }
    .instrument(span)
    .await;
}

fn call_params(call_uuid: &CallUuid, invite: &Request, to: String) -> CallParams {
    CallParams {
        call_uuid: call_uuid.to_string(),
        from: from_user(invite),
        to,
        direction: "inbound",
    }
}

async fn run_echo(
    ctx: &CallContext,
    leg: LegId,
    invite: &Request,
    route: &RouteMatch,
    peer: &Peer,
    mut events: mpsc::UnboundedReceiver<LegEvent>,
) {
    let session = match MediaSession::bind(&ctx.ports, ctx.media.local_ip).await {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %err, "cannot set up the call's RTP sockets");
            ctx.sip.reject(leg, 503, "No media ports available");
            return;
        }
    };
    let local_port = session.local_rtp_port();
    let mut sdp_version = 1u64;
    let policy = MediaPolicy::for_route(route.latching, route.srtp, peer.addr);
    let negotiated = match media_setup::negotiate(
        &invite.body,
        ctx.media.local_ip,
        local_port,
        sdp_version,
        policy.srtp,
        &ctx.media.codecs,
    ) {
        Ok(n) => n,
        Err(err) => {
            tracing::info!(error = %err, "refusing the offer");
            let (status, reason) = err.sip_status();
            ctx.sip.reject(leg, status, reason);
            return;
        }
    };
    ctx.sip
        .answer(leg, Bytes::from(negotiated.answer_sdp.clone()));
    let params = media_setup::params(&ctx.media, &negotiated, policy.latching);
    let mut media = match session.start(params) {
        Ok(media) => media,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the media");
            ctx.sip.reject(leg, 500, "Media Setup Failed");
            return;
        }
    };
    let limit = route
        .max_duration
        .unwrap_or(Duration::from_secs(u64::MAX / 4));
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut hangup_all = ctx.hangup_all.clone();
    let ended_by_remote = loop {
        tokio::select! {
            item = media.next() => match item {
                Some(MediaItem::Frame(frame)) => media.send_frame(frame),
                Some(MediaItem::Event(MediaEvent::RtpTimeout)) => {
                    tracing::info!("no RTP from the caller: hanging up");
                    break false;
                }
                Some(MediaItem::Event(ev)) => tracing::debug!(?ev, "media event"),
                None => break false,
            },
            ev = events.recv() => match ev {
                Some(LegEvent::Ended(reason)) => {
                    tracing::info!(?reason, "call ended by the remote side");
                    break true;
                }
                Some(LegEvent::ReInvite(offer)) => {
                    sdp_version += 1;
                    let running = (negotiated.srtp.as_ref(), negotiated.codec);
                    reinvite(ctx, leg, &mut media, &offer, local_port, sdp_version, running);
                }
                Some(LegEvent::Established) => tracing::debug!("call established"),
                Some(LegEvent::Transfer(_)) => tracing::info!("an echo call cannot be moved: ignored"),
                Some(LegEvent::Progress(..)) => {}
                None => break true,
            },
            _ = &mut deadline => {
                tracing::info!(limit_secs = limit.as_secs(), "route max_duration reached: hanging up");
                break false;
            }
            _ = hangup_all.wait_for(|v| *v) => {
                tracing::info!("server shutting down: hanging up");
                break false;
            }
        }
    };
    if !ended_by_remote {
        ctx.sip.hangup(leg);
    }
    let stats = media.stop().await;
    tracing::info!(?stats, "call finished");
}

fn reinvite(
    ctx: &CallContext,
    leg: LegId,
    media: &mut MediaHandle,
    offer: &[u8],
    local_port: u16,
    version: u64,
    (srtp, codec): (Option<&SrtpKeying>, Codec),
) {
    match media_setup::renegotiate(
        offer,
        ctx.media.local_ip,
        local_port,
        version,
        srtp,
        Some(codec),
    ) {
        Ok(Negotiated {
            answer_sdp,
            remote_rtp,
            remote_direction,
            ..
        }) => {
            media.update(remote_rtp, remote_direction);
            ctx.sip.answer_reinvite(leg, 200, Bytes::from(answer_sdp));
            tracing::info!(direction = ?remote_direction, "re-INVITE accepted");
        }
        Err(err) => {
            tracing::info!(error = %err, "re-INVITE refused");
            ctx.sip.answer_reinvite(leg, 488, Bytes::new());
        }
    }
}

pub(crate) fn from_user(invite: &Request) -> String {
    invite
        .headers
        .get("From")
        .and_then(|f| huddle_sip::headers::NameAddr::parse(f).ok())
        .and_then(|na| huddle_sip::message::uri_user(&na.uri))
        .unwrap_or_default()
}
