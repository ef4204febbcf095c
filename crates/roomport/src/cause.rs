//! Why a call ended, as Plivo hangup causes (spec: mpc-api.md §6, callbacks.md §6).

/// A hangup cause with Plivo's numeric code and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HangupCause {
    /// 4000: the caller or our `<Hangup>` ended the call.
    NormalHangup,
    /// 4010: the document ran out of verbs.
    EndOfXml,
    /// 4020: the MPC the call was in ended (API or max duration).
    MpcEnded,
    /// 4030: kicked out of the MPC.
    KickedOut,
    /// 7011: the answer_url could not be reached or did not answer 2xx.
    AnswerUrlUnreachable,
    /// 8011: the answer_url returned something that is not valid Plivo XML.
    InvalidAnswerXml,
    /// 7014: a Redirect URL could not be reached or did not answer 2xx.
    RedirectUrlUnreachable,
    /// 8014: a Redirect URL returned invalid XML.
    InvalidRedirectXml,
    /// The caller sent no RTP for the configured time.
    RtpTimeout,
    /// The route's `max_duration_secs` elapsed.
    MaxDuration,
    /// The server is shutting down.
    ServerShutdown,
    /// The offer could not be accepted or no media port was free.
    MediaFailure,
    /// 9110: a dialled participant did not press the add-participant `confirm_key`.
    ConfirmKeyFailed,
}

impl HangupCause {
    /// Plivo's numeric code. Conditions Plivo's hangup-cause table has no row for (media
    /// timeout, route limit, shutdown, media negotiation) use codes in the 5000 range, which
    /// that table leaves unused; docs/architecture.md lists them.
    pub fn code(self) -> u16 {
        match self {
            HangupCause::NormalHangup => 4000,
            HangupCause::EndOfXml => 4010,
            HangupCause::MpcEnded => 4020,
            HangupCause::KickedOut => 4030,
            HangupCause::AnswerUrlUnreachable => 7011,
            HangupCause::InvalidAnswerXml => 8011,
            HangupCause::RedirectUrlUnreachable => 7014,
            HangupCause::InvalidRedirectXml => 8014,
            HangupCause::RtpTimeout => 5010,
            HangupCause::MaxDuration => 5020,
            HangupCause::ServerShutdown => 5030,
            HangupCause::MediaFailure => 5040,
            HangupCause::ConfirmKeyFailed => 9110,
        }
    }

    /// The cause's name as written in callbacks.
    pub fn name(self) -> &'static str {
        match self {
            HangupCause::NormalHangup => "Normal Hangup",
            HangupCause::EndOfXml => "End Of XML Instructions",
            HangupCause::MpcEnded => "Multiparty Call Ended",
            HangupCause::KickedOut => "Kicked Out Of Multiparty Call",
            HangupCause::AnswerUrlUnreachable => "Error Reaching Answer URL",
            HangupCause::InvalidAnswerXml => "Invalid Answer XML",
            HangupCause::RedirectUrlUnreachable => "Error Reaching Redirect URL",
            HangupCause::InvalidRedirectXml => "Invalid Redirect XML",
            HangupCause::RtpTimeout => "Media Timeout",
            HangupCause::MaxDuration => "Max Duration Reached",
            HangupCause::ServerShutdown => "Server Shutdown",
            HangupCause::MediaFailure => "Media Negotiation Failed",
            HangupCause::ConfirmKeyFailed => "Confirm Key Challenge Failed",
        }
    }

    /// The SIP final response that refuses a call not yet answered for this cause.
    pub fn sip_rejection(self) -> u16 {
        match self {
            HangupCause::AnswerUrlUnreachable | HangupCause::RedirectUrlUnreachable => 502,
            HangupCause::InvalidAnswerXml | HangupCause::InvalidRedirectXml => 500,
            HangupCause::ServerShutdown => 503,
            HangupCause::MediaFailure => 488,
            _ => 480,
        }
    }
}

impl std::fmt::Display for HangupCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.name())
    }
}
