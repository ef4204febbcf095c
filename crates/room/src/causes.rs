//! Why an MPC ended and why a participant left (mpc-api.md §2–3).

/// MPC termination causes with Plivo's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminationCause {
    /// 1000: the last participant left.
    NoActiveParticipants,
    /// 1010: one participant was left and it may not stay alone.
    StayAloneNotPermitted,
    /// 1020 (huddle extension): a participant with `endMpcOnExit` left. Plivo documents the
    /// behaviour but no cause for it; the code sits next to its siblings.
    EndMpcOnExit,
    /// 2000: `maxDuration` elapsed.
    MaxDurationReached,
    /// 3000: ended through the API.
    HangupApiTriggered,
    /// 5030 (huddle extension): the server was stopped (SIGTERM) while the MPC was live, and
    /// ended it when the shutdown grace period ran out. The code is the one its members'
    /// calls hang up with (hangup cause 5030 "Server Shutdown").
    ServerShutdown,
    /// 5100 (huddle extension): the server stopped without ending the MPC (it crashed or was
    /// killed) and ended it when it started again. Plivo has no such condition; the code sits
    /// in the 5000 range huddle uses for a self-hosted server's own conditions.
    ServerRestarted,
}

impl TerminationCause {
    /// Plivo's `termination_cause_code`.
    pub fn code(self) -> u16 {
        match self {
            TerminationCause::NoActiveParticipants => 1000,
            TerminationCause::StayAloneNotPermitted => 1010,
            TerminationCause::EndMpcOnExit => 1020,
            TerminationCause::MaxDurationReached => 2000,
            TerminationCause::HangupApiTriggered => 3000,
            TerminationCause::ServerShutdown => 5030,
            TerminationCause::ServerRestarted => 5100,
        }
    }

    /// The cause of a `termination_cause_code`.
    pub fn from_code(code: u16) -> Option<Self> {
        [
            TerminationCause::NoActiveParticipants,
            TerminationCause::StayAloneNotPermitted,
            TerminationCause::EndMpcOnExit,
            TerminationCause::MaxDurationReached,
            TerminationCause::HangupApiTriggered,
            TerminationCause::ServerShutdown,
            TerminationCause::ServerRestarted,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    /// Plivo's `termination_cause`.
    pub fn name(self) -> &'static str {
        match self {
            TerminationCause::NoActiveParticipants => "No Active Participants",
            TerminationCause::StayAloneNotPermitted => "Stay Alone Not Permitted",
            TerminationCause::EndMpcOnExit => "Participant With End MPC On Exit Left",
            TerminationCause::MaxDurationReached => "Max Duration Reached",
            TerminationCause::HangupApiTriggered => "Hangup API Triggered",
            TerminationCause::ServerShutdown => "Server Shutdown",
            TerminationCause::ServerRestarted => "Server Restarted",
        }
    }
}

/// Why a participant left (`exit_cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitCause {
    /// The participant's call hung up.
    CallHangup,
    /// Removed through the API.
    KickedOut,
    /// The MPC ended.
    MpcEnded,
    /// The call was moved out of the MPC (add participant with its CallUUID elsewhere).
    Transferred,
}

impl ExitCause {
    /// Plivo's `exit_cause` text.
    pub fn name(self) -> &'static str {
        match self {
            ExitCause::CallHangup => "Participant Call Hangup",
            ExitCause::KickedOut => "Kicked Out of Multiparty Call",
            ExitCause::MpcEnded => "Multiparty Call Ended",
            ExitCause::Transferred => "Participant Call Transferred",
        }
    }
}
