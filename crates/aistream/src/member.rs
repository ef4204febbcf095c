//! An ai-agent stream member: joined to its MPC through [`Rooms`] like any call, with the
//! stream's queues as its audio, so it has a MemberID, hears by the hearing table, shows in
//! lists and events and is muted, held and kicked like anyone. Its own task relays digits to
//! the stream, stops the stream when the room lets the member go, and takes the member out
//! when the stream ends for good.

use huddle_roomport::{
    HangupCause, JoinRefused, JoinRequest, Left, MemberId, MemberOutput, RoomExit, Rooms,
};
use tokio::sync::{mpsc, oneshot};

use crate::queue::frame_queues;
use crate::settings::StreamSettings;
use crate::stream::{Control, Stream, StreamDeps, StreamEnd, StreamIdentity};

/// How a stream member's stay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The room let it go (kicked, MPC ended, …), as it would tell a call.
    Room(RoomExit),
    /// The stream ended (stopped by the service or failed for good), so the member left.
    Stream(StreamEnd),
    /// Its owner took it out.
    Left,
}

/// A joined stream member.
pub struct StreamMember {
    /// The member's id in the room.
    pub member_id: MemberId,
    /// The stream's uuid.
    pub stream_id: String,
    finished: oneshot::Receiver<Finished>,
    leave: Option<oneshot::Sender<Left>>,
}

impl StreamMember {
    /// Waits until the member's stay ends.
    pub async fn finished(&mut self) -> Finished {
        (&mut self.finished).await.unwrap_or(Finished::Left)
    }

    /// Takes the member out of the room (its anchor call hung up).
    pub fn leave(&mut self, why: Left) {
        if let Some(tx) = self.leave.take() {
            let _ = tx.send(why);
        }
    }

    /// Lets the member live on its own until the room or the stream ends it (the API's
    /// members have no call to follow).
    pub fn detach(self) {
        // Dropping the leave sender tells the task that only the room or the stream end it.
        drop(self);
    }
}

/// Joins the stream member `request` describes (its role is ai-agent) and starts its stream;
/// `direction` is its call's (`inbound` for an anchor call, `outbound` for the API's member),
/// reported in the stream's status callbacks.
pub async fn join(
    rooms: &dyn Rooms,
    deps: StreamDeps,
    request: JoinRequest,
    settings: StreamSettings,
    direction: &'static str,
) -> Result<StreamMember, JoinRefused> {
    // The stream exchanges frames with the room at the rate the request names; a room mixing
    // at another rate (a wideband room) converts them for this member, so the stream's own
    // converters stay right whatever the room's rate is or becomes.
    let room_rate = request.sample_rate;
    let (audio, port) = frame_queues(room_rate);
    let identity = |member_id: MemberId, mpc_uuid: String, stream_id: String| StreamIdentity {
        call_uuid: request.call_uuid.to_string(),
        stream_id,
        mpc_name: request.mpc.name.clone(),
        mpc_uuid,
        member_id: member_id.get(),
        from: request.from.clone(),
        to: request.to.clone(),
        direction,
    };
    let membership = rooms.join(request.clone(), Box::new(audio)).await?;
    let stream_id = uuid::Uuid::new_v4().to_string();
    let member_id = membership.member_id;
    let (control_tx, control_rx) = mpsc::channel(64);
    let stream = Stream::new(
        settings,
        identity(
            member_id,
            membership.mpc_uuid.to_string(),
            stream_id.clone(),
        ),
        deps,
        port,
        room_rate,
        control_rx,
    );
    let mut stream_task = tokio::spawn(stream.run());
    let (finished_tx, finished) = oneshot::channel();
    let (leave_tx, mut leave_rx) = oneshot::channel::<Left>();
    tokio::spawn(async move {
        let huddle_roomport::Membership {
            mut to_room,
            mut from_room,
            mut exit,
            ..
        } = membership;
        let mut leave_open = true;
        let mut room_open = true;
        let finished = loop {
            tokio::select! {
                room_exit = &mut exit => {
                    let _ = control_tx.try_send(Control::Stop);
                    let _ = (&mut stream_task).await;
                    break match room_exit {
                        Ok(e) => Finished::Room(e),
                        Err(_) => Finished::Left,
                    };
                }
                end = &mut stream_task => {
                    let end = end.unwrap_or_else(|e| StreamEnd::Failed(e.to_string()));
                    let cause = match end {
                        StreamEnd::Stopped => HangupCause::NormalHangup,
                        StreamEnd::Failed(_) => HangupCause::MediaFailure,
                    };
                    to_room.leave(Left::Hangup(cause));
                    break Finished::Stream(end);
                }
                why = &mut leave_rx, if leave_open => match why {
                    Ok(why) => {
                        to_room.leave(why);
                        let _ = control_tx.try_send(Control::Stop);
                        let _ = (&mut stream_task).await;
                        break Finished::Left;
                    }
                    // Detached: only the room or the stream end the member now.
                    Err(_) => leave_open = false,
                },
                output = from_room.recv(), if room_open => match output {
                    Some(MemberOutput::Dtmf { digit, .. }) => {
                        if control_tx.try_send(Control::Dtmf(digit)).is_err() {
                            metrics::counter!("huddle_aistream_frames_dropped_total", "direction" => "to_service", "what" => "dtmf").increment(1);
                        }
                    }
                    // The room is gone; its exit follows.
                    None => room_open = false,
                },
            }
        };
        let _ = finished_tx.send(finished);
    });
    Ok(StreamMember {
        member_id,
        stream_id,
        finished,
        leave: Some(leave_tx),
    })
}
