//! `huddle-loadgen`: places five-member MPC calls on huddle's member route from one process,
//! with plain RTP or SRTP (SDES keys), for the load run (`benches/load/run.sh`).
//!
//! Room K gets `agent-rK`, three `customer-rK` and `supervisor-rK`, as the sipp scenario
//! does. Each call offers PCMU (or Opus with `--codec opus`), sends a tone of its own member
//! slot every 20 ms (or, with `--talk turns`, only in its slot's turn and silence otherwise),
//! counts what
//! it hears (decrypting it under SRTP), holds, and hangs up. At the end it prints its own CPU
//! time and what it received per call. The exit status is 2 when a call failed or a packet
//! did not authenticate, 1 on a setup error.

mod call;
mod media;
mod offer;
mod sip;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use huddle_sdp::CryptoSuite;
use tokio::task::JoinSet;

use crate::call::{CallPlan, Outcome, Progress, Sip};
use crate::media::{MediaStats, Pool, PortPairs, ThreadReport};

/// The member slots of a room, in placing order.
const ROLES: [&str; 5] = ["agent", "customer", "customer", "customer", "supervisor"];

/// Packets a member hears per second: one mix every 20 ms.
const EXPECTED_RATE: f64 = 50.0;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Media {
    /// RTP/AVP, no encryption.
    Plain,
    /// RTP/SAVP with AES_CM_128_HMAC_SHA1_80.
    AesCm,
    /// RTP/SAVP with AEAD_AES_128_GCM.
    AesGcm,
}

impl Media {
    fn suite(self) -> Option<CryptoSuite> {
        match self {
            Media::Plain => None,
            Media::AesCm => Some(CryptoSuite::AesCm128HmacSha1_80),
            Media::AesGcm => Some(CryptoSuite::AeadAes128Gcm),
        }
    }
}

/// The codec the calls speak.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum CodecArg {
    /// G.711 µ-law.
    Pcmu,
    /// Opus (mono, 16 kHz audio, in-band FEC), offered as `opus/48000/2` with
    /// `maxplaybackrate=16000;sprop-maxcapturerate=16000`.
    Opus,
}

/// Who talks when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TalkArg {
    /// Every member of every room, all the time.
    All,
    /// One member of each room at a time, in turns.
    Turns,
}

/// Load caller for huddle's MPC member route: many SIP calls over UDP from one process, with
/// plain RTP or SDES-keyed SRTP.
#[derive(Debug, Parser)]
#[command(name = "huddle-loadgen", version)]
struct Args {
    /// huddle's SIP address (UDP).
    #[arg(long, default_value = "127.0.0.1:5060")]
    server: SocketAddr,
    /// Rooms to fill; each gets five calls (an agent, three customers, a supervisor).
    #[arg(long)]
    rooms: usize,
    /// Room names are this prefix and the room's number (`agent-r0`, …).
    #[arg(long, default_value = "r")]
    room_prefix: String,
    /// New calls per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds each call stays after it is answered.
    #[arg(long, default_value_t = 30)]
    hold: u64,
    /// Media: plain RTP or SRTP with one of the two suites.
    #[arg(long, value_enum, default_value_t = Media::AesCm)]
    media: Media,
    /// Codec offered and sent: PCMU, or Opus (each slot's tone encoded once at start-up).
    #[arg(long, value_enum, default_value_t = CodecArg::Pcmu)]
    codec: CodecArg,
    /// Who talks: every member at once (the worst case), or the members of a room in turns of
    /// `--turn-secs` (one talker per room at a time, as in a real call).
    #[arg(long, value_enum, default_value_t = TalkArg::All)]
    talk: TalkArg,
    /// Length of one member's turn with `--talk turns`.
    #[arg(long, default_value_t = 2.0)]
    turn_secs: f64,
    /// Threads sending and receiving media, each owning an equal share of the calls.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Local address for SIP and media.
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: IpAddr,
    /// Local SIP port (0: any free port).
    #[arg(long, default_value_t = 0)]
    sip_port: u16,
    /// First port of the RTP/RTCP pairs (two per call, upwards; taken ports are skipped).
    #[arg(long, default_value_t = 40_000)]
    rtp_base: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("huddle-loadgen: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs the load; Ok(false) when a call failed or a packet did not authenticate.
fn run(args: Args) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.rate > 0.0 && args.rate.is_finite(),
        "--rate must be above 0"
    );
    anyhow::ensure!(args.rooms > 0, "--rooms must be above 0");
    anyhow::ensure!(
        args.turn_secs >= 0.02 && args.turn_secs.is_finite(),
        "--turn-secs must be at least one frame (0.02)"
    );
    raise_file_limit();
    let started = Instant::now();
    // SIP is a few messages per call: one thread is plenty, and the media threads keep the
    // rest of what this process may use.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let pool = Pool::start(args.threads).context("media threads")?;
    let (outcomes, sip) = runtime.block_on(place_all(&args, &pool))?;
    let threads = pool.join();
    let wall = started.elapsed();
    Ok(report(&args, &outcomes, &threads, &sip, wall))
}

async fn place_all(args: &Args, pool: &Pool) -> anyhow::Result<(Vec<Outcome>, Arc<Sip>)> {
    let sip = Sip::bind(args.local_ip, args.sip_port, args.server)
        .await
        .context("SIP socket")?;
    let reader = tokio::spawn(sip.clone().read_loop());
    let ports = Arc::new(PortPairs::new(args.local_ip, args.rtp_base));
    let codec = match args.codec {
        CodecArg::Pcmu => media::CodecChoice::Pcmu,
        CodecArg::Opus => media::CodecChoice::Opus,
    };
    let epoch = std::time::Instant::now();
    let talk = |slot: u32| match args.talk {
        TalkArg::All => media::Talk::Always,
        TalkArg::Turns => media::Talk::Turns {
            epoch,
            turn: Duration::from_secs_f64(args.turn_secs),
            slot,
            slots: ROLES.len() as u32,
        },
    };
    let tones = (0..ROLES.len() as u32)
        .map(|slot| media::tone(310 + slot * 270, codec, talk(slot)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("the tones")?;
    let progress = Arc::new(Progress::default());
    let calls = args.rooms * ROLES.len();
    let ticker = tokio::spawn(show_progress(progress.clone(), calls));
    let handle = pool.handle();
    let mut tasks = JoinSet::new();
    let start = tokio::time::Instant::now();
    let gap = Duration::from_secs_f64(1.0 / args.rate);
    for index in 0..calls {
        tokio::time::sleep_until(start + gap.mul_f64(index as f64)).await;
        let slot = index % ROLES.len();
        let plan = CallPlan {
            index,
            room: index / ROLES.len(),
            user: format!(
                "{}-{}{}",
                ROLES[slot],
                args.room_prefix,
                index / ROLES.len()
            ),
            tone: tones[slot].clone(),
            hold: Duration::from_secs(args.hold),
            suite: args.media.suite(),
        };
        tasks.spawn(call::place(
            sip.clone(),
            ports.clone(),
            handle.clone(),
            progress.clone(),
            plan,
        ));
    }
    eprintln!(
        "placed {calls} calls in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    drop(handle);
    let mut outcomes = Vec::with_capacity(calls);
    while let Some(done) = tasks.join_next().await {
        outcomes.push(done.context("call task")?);
    }
    ticker.abort();
    reader.abort();
    Ok((outcomes, sip))
}

async fn show_progress(progress: Arc<Progress>, calls: usize) {
    let start = tokio::time::Instant::now();
    let mut every = tokio::time::interval(Duration::from_secs(5));
    every.tick().await;
    loop {
        every.tick().await;
        let answered = progress.answered.load(Ordering::Relaxed);
        let failed = progress.failed.load(Ordering::Relaxed);
        let ended = progress.ended.load(Ordering::Relaxed);
        eprintln!(
            "{:>4.0} s: {answered}/{calls} answered, {} up, {failed} failed",
            start.elapsed().as_secs_f64(),
            answered.saturating_sub(ended)
        );
    }
}

/// Prints the figures; false when something failed.
fn report(
    args: &Args,
    outcomes: &[Outcome],
    threads: &[ThreadReport],
    sip: &Sip,
    wall: Duration,
) -> bool {
    let calls = outcomes.len();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let (mut completed, mut secure, mut by_server, mut bye_ok) = (0, 0, 0, 0);
    for outcome in outcomes {
        match outcome {
            Outcome::Completed {
                srtp,
                by_server: server,
                bye_status,
            } => {
                completed += 1;
                secure += usize::from(*srtp);
                by_server += usize::from(*server);
                bye_ok += usize::from(*bye_status == Some(200));
            }
            Outcome::Failed(why) => *failures.entry(why.to_string()).or_default() += 1,
        }
    }
    println!(
        "calls: {calls} placed ({} rooms, {:?}), {completed} answered ({secure} with SRTP), \
         {bye_ok} ended by our BYE with 200, {by_server} by the server's BYE",
        args.rooms, args.media
    );
    let failed: usize = failures.values().sum();
    if failed > 0 {
        println!("failed calls: {failed}: {failures:?}");
    }

    let media: Vec<&MediaStats> = threads.iter().flat_map(|t| &t.calls).collect();
    let sum = |f: fn(&MediaStats) -> u64| media.iter().map(|m| f(m)).sum::<u64>();
    let auth_failures = sum(|m| m.auth_failures);
    let rtcp_auth_failures = sum(|m| m.rtcp_auth_failures);
    let received_total = sum(|m| m.received);
    println!(
        "rtp: sent {} (send errors {}), received {received_total} {} ({:.1} % with sound), \
         auth failures {auth_failures}, malformed {}; rtcp received {}, rtcp auth failures \
         {rtcp_auth_failures}",
        sum(|m| m.sent),
        sum(|m| m.send_errors),
        if args.media.suite().is_some() {
            "authenticated"
        } else {
            "valid"
        },
        sum(|m| m.audible) as f64 * 100.0 / received_total.max(1) as f64,
        sum(|m| m.malformed),
        sum(|m| m.rtcp),
    );
    let mut received: Vec<u64> = media.iter().map(|m| m.received).collect();
    let mut rates: Vec<f64> = media.iter().map(|m| m.received_rate()).collect();
    received.sort_unstable();
    rates.sort_by(f64::total_cmp);
    if let (Some(min), Some(max)) = (received.first(), received.last()) {
        println!(
            "received per call: min {min}, median {}, max {max} packets; \
             rate min {:.1}/s, median {:.1}/s (a member hears {EXPECTED_RATE:.0}/s over {} s)",
            received[received.len() / 2],
            rates[0],
            rates[rates.len() / 2],
            args.hold,
        );
    }
    if let Some(worst) = media
        .iter()
        .min_by(|a, b| a.received_rate().total_cmp(&b.received_rate()))
        .filter(|m| m.received_rate() < EXPECTED_RATE * 0.9)
    {
        println!(
            "lowest: call {} ({}-{}{}), {} packets in {:.1} s",
            worst.index,
            ROLES[worst.index % ROLES.len()],
            args.room_prefix,
            worst.index / ROLES.len(),
            worst.received,
            worst.duration.as_secs_f64()
        );
    }
    let slots: u64 = threads.iter().map(|t| t.timing.slots).sum();
    let late: u64 = threads.iter().map(|t| t.timing.late).sum();
    let restarts: u64 = threads.iter().map(|t| t.timing.restarts).sum();
    let skipped = threads
        .iter()
        .map(|t| t.timing.skipped_frames)
        .max()
        .unwrap_or(0);
    let max_late = threads
        .iter()
        .map(|t| t.timing.max_late)
        .max()
        .unwrap_or_default();
    println!(
        "sending: {} threads, {late} of {slots} 2 ms slots started over 2 ms late, latest {:.1} ms, \
         {restarts} times over 100 ms behind (up to {skipped} frames per call skipped)",
        threads.len(),
        max_late.as_secs_f64() * 1000.0
    );
    let malformed = sip.malformed.load(Ordering::Relaxed);
    let foreign = sip.foreign.load(Ordering::Relaxed);
    if malformed + foreign > 0 {
        println!("sip: {malformed} unparsable datagrams, {foreign} from other sources");
    }
    let cpu = own_cpu();
    let share = cpu.as_secs_f64() / wall.as_secs_f64().max(1e-3) * 100.0;
    println!(
        "loadgen cpu: {:.1} s in {:.1} s = {share:.1} % of one core, {:.4} % per call",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        share / calls.max(1) as f64
    );
    failed == 0 && auth_failures == 0 && rtcp_auth_failures == 0
}

/// User plus system time of this process.
fn own_cpu() -> Duration {
    // SAFETY: getrusage writes a rusage struct, which all-zero initializes validly.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage for the duration of the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Two sockets per call: lift the soft limit on open files to the hard one.
fn raise_file_limit() {
    // SAFETY: getrlimit and setrlimit read and write one rlimit struct we own.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
