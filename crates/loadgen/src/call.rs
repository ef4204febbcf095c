//! One task per call: the INVITE client transaction with its UDP retransmissions, the ACK,
//! the hold, and the BYE (RFC 3261 §17.1), over a SIP socket all calls share.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use huddle_sdp::CryptoSuite;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::{timeout_at, Instant};

use crate::media::{MediaCall, PoolHandle, PortPairs, Srtp};
use crate::offer::{answer, offer, AnswerError, LocalKey};
use crate::sip::{response, Leg, Message};

/// RFC 3261's round-trip estimate: the first retransmission interval.
const T1: Duration = Duration::from_millis(500);
/// The longest retransmission interval of a non-INVITE request.
const T2: Duration = Duration::from_secs(4);
/// How long an INVITE may ring once the server said it is working on it.
const RING_LIMIT: Duration = Duration::from_secs(60);

/// The SIP socket all calls share, and where its messages go.
pub struct Sip {
    socket: UdpSocket,
    server: SocketAddr,
    local: SocketAddr,
    calls: Mutex<HashMap<String, UnboundedSender<Message>>>,
    /// Datagrams that did not parse as SIP.
    pub malformed: AtomicU64,
    /// Datagrams from anywhere but the server.
    pub foreign: AtomicU64,
}

impl Sip {
    /// Binds `ip:port` (port 0: any) for calls to `server`.
    pub async fn bind(ip: IpAddr, port: u16, server: SocketAddr) -> std::io::Result<Arc<Sip>> {
        let socket = UdpSocket::bind((ip, port)).await?;
        let local = socket.local_addr()?;
        Ok(Arc::new(Sip {
            socket,
            server,
            local,
            calls: Mutex::new(HashMap::new()),
            malformed: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
        }))
    }

    async fn send(&self, text: &str) {
        // UDP: a lost send is a lost datagram, which the retransmissions are there for.
        let _ = self.socket.send_to(text.as_bytes(), self.server).await;
    }

    fn register(&self, call_id: &str) -> UnboundedReceiver<Message> {
        let (tx, rx) = unbounded_channel();
        self.lock().insert(call_id.to_string(), tx);
        rx
    }

    fn unregister(&self, call_id: &str) {
        self.lock().remove(call_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UnboundedSender<Message>>> {
        // A poisoned map is still a map: no call task panics while holding it anyway.
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the socket for ever, handing each message to its call's task; a request for a
    /// call we do not have gets 481.
    pub async fn read_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((len, from)) = self.socket.recv_from(&mut buf).await else {
                continue;
            };
            if from != self.server {
                self.foreign.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Some(msg) = Message::parse(&buf[..len]) else {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let call = msg.call_id().and_then(|id| self.lock().get(id).cloned());
            match call {
                Some(task) => {
                    let _ = task.send(msg);
                }
                None if msg.method().is_some_and(|m| m != "ACK") => {
                    if let Some(text) = response(&msg, 481, "Call/Transaction Does Not Exist") {
                        self.send(&text).await;
                    }
                }
                None => {}
            }
        }
    }

    /// Answers a request of the server's that is not a BYE: we take no re-INVITE (our keys
    /// and address do not change), answer OPTIONS and refuse the rest.
    async fn answer_other(&self, request: &Message) {
        let (status, reason) = match request.method() {
            None | Some("ACK") => return,
            Some("OPTIONS") => (200, "OK"),
            Some("INVITE") => (488, "Not Acceptable Here"),
            Some(_) => (501, "Not Implemented"),
        };
        if let Some(text) = response(request, status, reason) {
            self.send(&text).await;
        }
    }
}

/// Counts shown while calls ramp up.
#[derive(Default)]
pub struct Progress {
    /// Calls answered.
    pub answered: AtomicUsize,
    /// Calls that failed.
    pub failed: AtomicUsize,
    /// Calls ended (hung up by either side).
    pub ended: AtomicUsize,
}

/// One call to place.
pub struct CallPlan {
    /// Its number, in placing order.
    pub index: usize,
    /// The room its member joins (its number).
    pub room: usize,
    /// The user called (`customer-r12`).
    pub user: String,
    /// What its member says (and in which codec).
    pub tone: Arc<crate::media::Voice>,
    /// How long it stays after the answer.
    pub hold: Duration,
    /// SRTP suite offered, or plain RTP.
    pub suite: Option<CryptoSuite>,
}

/// Why a call did not happen.
#[derive(Debug, Clone)]
pub enum Failure {
    /// A final response other than 2xx.
    Status(u16),
    /// No final response in time.
    NoAnswer,
    /// A 2xx we cannot use.
    BadResponse(&'static str),
    /// An SDP answer we cannot use.
    BadAnswer(AnswerError),
    /// Something on our side (ports, keys).
    Local(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(code) => write!(f, "final response {code}"),
            Failure::NoAnswer => write!(f, "no final response"),
            Failure::BadResponse(why) => write!(f, "unusable 2xx: {why}"),
            Failure::BadAnswer(why) => write!(f, "unusable SDP answer: {why}"),
            Failure::Local(why) => write!(f, "local: {why}"),
        }
    }
}

/// How a call went.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Answered, held, hung up.
    Completed {
        /// SRTP was agreed.
        srtp: bool,
        /// The server sent the BYE.
        by_server: bool,
        /// The final response to our BYE (None when the server hung up, or gave none).
        bye_status: Option<u16>,
    },
    /// Not answered, or not usable.
    Failed(Failure),
}

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    // Identifiers, not secrets: should the OS generator fail, the call number still keeps
    // Call-IDs apart.
    let _ = getrandom::fill(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn branch() -> String {
    format!("z9hG4bK{}", random_hex(8))
}

/// Places one call and sees it through.
pub async fn place(
    sip: Arc<Sip>,
    ports: Arc<PortPairs>,
    media: PoolHandle,
    progress: Arc<Progress>,
    plan: CallPlan,
) -> Outcome {
    let mut leg = Leg {
        local: sip.local,
        server: sip.server,
        user: plan.user.clone(),
        call_id: format!("{}-{}@loadgen", plan.index, random_hex(8)),
        local_tag: random_hex(4),
        remote_tag: None,
        remote_target: None,
    };
    let mut inbox = sip.register(&leg.call_id);
    let outcome = run(&sip, &mut inbox, &mut leg, &ports, &media, &progress, &plan).await;
    sip.unregister(&leg.call_id);
    let counter = match outcome {
        Outcome::Completed { .. } => &progress.ended,
        Outcome::Failed(_) => &progress.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    outcome
}

async fn run(
    sip: &Sip,
    inbox: &mut UnboundedReceiver<Message>,
    leg: &mut Leg,
    ports: &PortPairs,
    media: &PoolHandle,
    progress: &Progress,
    plan: &CallPlan,
) -> Outcome {
    let sockets = match ports.bind() {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(Failure::Local(format!("RTP ports: {e}"))),
    };
    let key = match plan.suite.map(LocalKey::generate).transpose() {
        Ok(k) => k,
        Err(e) => return Outcome::Failed(Failure::Local(format!("key: {e}"))),
    };
    let opus = plan.tone.pt == crate::media::OPUS_PT;
    let sdp = offer(sip.local.ip(), sockets.rtp_port(), key.as_ref(), opus);
    let ok = match invite(sip, inbox, leg, &sdp).await {
        Ok(ok) => ok,
        Err(failure) => return Outcome::Failed(failure),
    };
    let Some(tag) = ok.to_tag() else {
        // Without the server's tag there is no dialog to acknowledge or end.
        return Outcome::Failed(Failure::BadResponse("no To tag"));
    };
    leg.remote_tag = Some(tag.to_string());
    leg.remote_target = ok.contact_uri().map(str::to_string);
    let ack = leg.in_dialog("ACK", 1, &branch());
    sip.send(&ack).await;

    let agreed = match answer(&ok.body, key.as_ref(), plan.tone.pt) {
        Ok(a) => a,
        Err(e) => {
            bye(sip, inbox, leg).await;
            return Outcome::Failed(Failure::BadAnswer(e));
        }
    };
    let srtp = match (&key, &agreed.remote_key) {
        (Some(ours), Some(theirs)) => match Srtp::new(ours.suite, &ours.key_salt, theirs) {
            Ok(s) => Some(s),
            Err(e) => {
                bye(sip, inbox, leg).await;
                return Outcome::Failed(Failure::Local(format!("SRTP: {e}")));
            }
        },
        _ => None,
    };
    let secure = srtp.is_some();
    let stop = match MediaCall::new(
        plan.index,
        plan.room,
        sockets,
        agreed.rtp,
        srtp,
        plan.tone.clone(),
    ) {
        Ok((call, stop)) => {
            media.add(call);
            stop
        }
        Err(e) => {
            bye(sip, inbox, leg).await;
            return Outcome::Failed(Failure::Local(format!("media: {e}")));
        }
    };
    progress.answered.fetch_add(1, Ordering::Relaxed);

    let end = Instant::now() + plan.hold;
    let mut by_server = false;
    while let Ok(Some(msg)) = timeout_at(end, inbox.recv()).await {
        if msg.status().is_some_and(|c| (200..300).contains(&c))
            && msg.cseq() == Some((1, "INVITE"))
        {
            // The 2xx again: our ACK was lost.
            sip.send(&ack).await;
        } else if msg.method() == Some("BYE") {
            if let Some(text) = response(&msg, 200, "OK") {
                sip.send(&text).await;
            }
            by_server = true;
            break;
        } else {
            sip.answer_other(&msg).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let bye_status = if by_server {
        None
    } else {
        bye(sip, inbox, leg).await
    };
    Outcome::Completed {
        srtp: secure,
        by_server,
        bye_status,
    }
}

/// The INVITE client transaction over UDP: resent at T1, 2T1, 4T1 … until a provisional
/// response; a non-2xx final response is acknowledged here; the 2xx is returned.
async fn invite(
    sip: &Sip,
    inbox: &mut UnboundedReceiver<Message>,
    leg: &Leg,
    sdp: &str,
) -> Result<Message, Failure> {
    let branch = branch();
    let text = leg.invite(&branch, sdp);
    sip.send(&text).await;
    let start = Instant::now();
    let mut give_up = start + 64 * T1;
    let mut wait = T1;
    let mut resend_at = start + T1;
    let mut ringing = false;
    loop {
        let deadline = if ringing {
            give_up
        } else {
            resend_at.min(give_up)
        };
        match timeout_at(deadline, inbox.recv()).await {
            Err(_) if Instant::now() >= give_up => return Err(Failure::NoAnswer),
            Err(_) => {
                sip.send(&text).await;
                wait *= 2;
                resend_at = Instant::now() + wait;
            }
            Ok(None) => return Err(Failure::NoAnswer),
            Ok(Some(msg)) => match (msg.status(), msg.cseq()) {
                (Some(code), Some((1, "INVITE"))) if code < 200 => {
                    // The first provisional response stops the retransmissions and starts
                    // the wait for an answer; later ones change nothing.
                    if !ringing {
                        give_up = Instant::now() + RING_LIMIT;
                    }
                    ringing = true;
                }
                (Some(code), Some((1, "INVITE"))) if code >= 300 => {
                    sip.send(&leg.ack_failure(&branch, &msg)).await;
                    return Err(Failure::Status(code));
                }
                (Some(_), Some((1, "INVITE"))) => return Ok(msg),
                (None, _) => sip.answer_other(&msg).await,
                _ => {}
            },
        }
    }
}

/// The BYE's client transaction: resent at T1, doubling up to T2, for 64·T1 at most. Returns
/// its final response's status.
async fn bye(sip: &Sip, inbox: &mut UnboundedReceiver<Message>, leg: &Leg) -> Option<u16> {
    let text = leg.in_dialog("BYE", 2, &branch());
    sip.send(&text).await;
    let give_up = Instant::now() + 64 * T1;
    let mut wait = T1;
    let mut resend_at = Instant::now() + T1;
    loop {
        match timeout_at(resend_at.min(give_up), inbox.recv()).await {
            Err(_) if Instant::now() >= give_up => return None,
            Err(_) => {
                sip.send(&text).await;
                wait = (wait * 2).min(T2);
                resend_at = Instant::now() + wait;
            }
            Ok(None) => return None,
            Ok(Some(msg)) => match msg.status() {
                Some(code) if code >= 200 && msg.cseq() == Some((2, "BYE")) => return Some(code),
                Some(_) => {}
                None if msg.method() == Some("BYE") => {
                    // Both sides hung up at once: answer theirs and keep waiting for ours.
                    if let Some(ok) = response(&msg, 200, "OK") {
                        sip.send(&ok).await;
                    }
                }
                None => sip.answer_other(&msg).await,
            },
        }
    }
}
