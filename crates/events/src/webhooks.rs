//! Webhook delivery: callbacks of one key (one MPC) go out one at a time in the order they
//! were queued, so a receiver sees `ParticipantJoin` before that participant's
//! `ParticipantExit`; different keys are delivered in parallel, so one slow receiver holds up
//! only its own MPC's callbacks.
//!
//! A callback whose delivery round fails for a reason that may pass (see
//! [`RequestError::is_transient`]) stays at the head of its key's queue and is tried again on
//! the [`RetrySchedule`] until its horizon; the key's later callbacks wait behind it, other
//! keys do not. Each key has a task of its own while it has work, and nothing is shared
//! between keys but the queue's bounds, of which one receiver may take only its share.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use huddle_xml::HttpMethod;
use tokio::sync::Notify;

use crate::request::{HttpClient, RequestError};
use crate::retry::{draw_jitter, Next, RetrySchedule};
use crate::url_options;

/// One callback request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The URL as configured (fragment options honoured, never sent).
    pub url: String,
    /// GET (parameters in the query) or POST (form body).
    pub method: HttpMethod,
    /// The parameters, in the order they are written.
    pub params: Vec<(String, String)>,
}

/// Where queued callbacks are written down, so that callbacks not yet delivered when the
/// process stops go out after it starts again, with their horizon and round count. Calls must
/// not block: they run on the paths that queue and deliver callbacks.
pub trait Journal: Send + Sync {
    /// `webhook` was queued under `key` with `id` at `queued_at`.
    fn queued(&self, id: u64, key: &str, webhook: &Webhook, queued_at: SystemTime);
    /// Callback `id` failed `rounds` delivery rounds so far and waits for the next.
    fn retrying(&self, id: u64, rounds: u32);
    /// Callback `id` was delivered or given up on.
    fn finished(&self, id: u64);
}

/// How much may wait and how failed callbacks are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Callbacks waiting at once, all keys together; beyond it new ones are dropped and
    /// counted rather than let memory grow without bound while receivers are down.
    pub capacity: usize,
    /// Callbacks waiting at once for one receiver (scheme, host and port of the URL), so that
    /// one application that is down cannot fill the queue for the others.
    pub per_receiver: usize,
    /// When a failed callback is tried again.
    pub retry: RetrySchedule,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            capacity: 100_000,
            per_receiver: 50_000,
            retry: RetrySchedule::default(),
        }
    }
}

/// Ordered, bounded webhook delivery; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Entry {
    id: u64,
    webhook: Webhook,
    queued_at: SystemTime,
    /// Delivery rounds made so far (before a restart included).
    rounds: u32,
    receiver: String,
}

#[derive(Default)]
struct Queues {
    /// Keys with a delivery task, and what waits behind the callback in delivery.
    keys: HashMap<String, VecDeque<Entry>>,
    /// Callbacks waiting per receiver (entries only while non-zero).
    receivers: HashMap<String, usize>,
}

struct Inner {
    http: HttpClient,
    journal: Option<Arc<dyn Journal>>,
    next_id: AtomicU64,
    queues: Mutex<Queues>,
    /// Queued or in delivery, all keys together.
    pending: AtomicUsize,
    options: DeliveryOptions,
    /// Keys whose head callback waits out a backoff.
    backing_off: AtomicUsize,
    /// Signalled when `pending` drops to zero or a key starts a backoff.
    idle: Notify,
}

/// Why a callback left the queue.
enum Outcome {
    Delivered,
    /// A failure that would recur (4xx other than 429, an unusable URL).
    Rejected(RequestError),
    /// Transient failures until the horizon passed.
    Expired(RequestError),
}

impl Webhooks {
    /// Delivers through `http` with `options`, keeping nothing on disk.
    pub fn new(http: HttpClient, options: DeliveryOptions) -> Self {
        Webhooks::build(http, options, None, 1)
    }

    /// Like [`Webhooks::new`], writing every callback down in `journal` until it is delivered
    /// or given up on; ids start at `first_id` (above any id the journal still holds).
    pub fn durable(
        http: HttpClient,
        options: DeliveryOptions,
        journal: Arc<dyn Journal>,
        first_id: u64,
    ) -> Self {
        Webhooks::build(http, options, Some(journal), first_id)
    }

    fn build(
        http: HttpClient,
        options: DeliveryOptions,
        journal: Option<Arc<dyn Journal>>,
        first_id: u64,
    ) -> Self {
        Webhooks {
            inner: Arc::new(Inner {
                http,
                journal,
                next_id: AtomicU64::new(first_id),
                queues: Mutex::new(Queues::default()),
                pending: AtomicUsize::new(0),
                options,
                backing_off: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Queues `webhook` behind the earlier ones of `key`. Returns false when it was dropped
    /// (the queue or the receiver's share of it is full, or there is no runtime to deliver it).
    pub fn send(&self, key: &str, webhook: Webhook) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            dropped(key, &webhook.url, "no runtime");
            return false;
        };
        let receiver = receiver_of(&webhook.url);
        let queued_at = SystemTime::now();
        let mut queues = lock(&self.inner.queues);
        if self.inner.pending.load(Ordering::Acquire) >= self.inner.options.capacity {
            drop(queues);
            dropped(key, &webhook.url, "callback queue full");
            return false;
        }
        let waiting = queues.receivers.get(&receiver).copied().unwrap_or(0);
        if waiting >= self.inner.options.per_receiver {
            drop(queues);
            dropped(
                key,
                &webhook.url,
                "the receiver's share of the callback queue is full",
            );
            return false;
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        // Under the lock, so the journal hears of the callback before its delivery can finish.
        if let Some(journal) = &self.inner.journal {
            journal.queued(id, key, &webhook, queued_at);
        }
        let entry = Entry {
            id,
            webhook,
            queued_at,
            rounds: 0,
            receiver,
        };
        self.enqueue(&mut queues, &runtime, key, entry);
        true
    }

    /// Queues a callback the journal kept from before a restart, with when it was first
    /// queued and the rounds already made, so its horizon goes on rather than starting over
    /// (already written down, and accepted whatever the queue's length: it was accepted once).
    pub fn resume(&self, key: &str, id: u64, webhook: Webhook, queued_at: SystemTime, rounds: u32) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let entry = Entry {
            id,
            receiver: receiver_of(&webhook.url),
            webhook,
            queued_at,
            rounds,
        };
        let mut queues = lock(&self.inner.queues);
        self.enqueue(&mut queues, &runtime, key, entry);
    }

    fn enqueue(
        &self,
        queues: &mut Queues,
        runtime: &tokio::runtime::Handle,
        key: &str,
        entry: Entry,
    ) {
        self.inner.pending.fetch_add(1, Ordering::AcqRel);
        *queues.receivers.entry(entry.receiver.clone()).or_default() += 1;
        match queues.keys.get_mut(key) {
            Some(queue) => queue.push_back(entry),
            None => {
                queues.keys.insert(key.to_string(), VecDeque::from([entry]));
                runtime.spawn(deliver_key(self.inner.clone(), key.to_string()));
            }
        }
    }

    /// Callbacks queued or in delivery.
    pub fn pending(&self) -> usize {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// Waits until every queued callback has been delivered or given up on, at most `within`;
    /// returns whether the queue is empty. Returns false early once every key with work is
    /// waiting out a backoff, since nothing will go out before it ends (what is left is in the
    /// journal, for a durable queue).
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.pending() == 0 {
                return true;
            }
            if self.all_backing_off() {
                return false;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.pending() == 0;
            }
        }
    }

    fn all_backing_off(&self) -> bool {
        let keys = lock(&self.inner.queues).keys.len();
        keys > 0 && self.inner.backing_off.load(Ordering::Acquire) >= keys
    }
}

fn dropped(key: &str, url: &str, why: &str) {
    metrics::counter!("huddle_callbacks_dropped_total").increment(1);
    metrics::counter!("huddle_callbacks_total", "result" => "dropped").increment(1);
    let url = url_options::split(url).0;
    tracing::warn!(mpc_uuid = %key, %url, "{why}: callback dropped");
}

/// The share of the queue a URL counts against: its origin (scheme, host, port).
fn receiver_of(configured_url: &str) -> String {
    let url = url_options::split(configured_url).0;
    match reqwest::Url::parse(url) {
        Ok(parsed) => parsed.origin().ascii_serialization(),
        // Fails at once when delivered; meanwhile all such URLs share one share.
        Err(_) => "invalid".to_string(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Delivers `key`'s callbacks in order until its queue is empty, then retires the key.
async fn deliver_key(inner: Arc<Inner>, key: String) {
    loop {
        let mut entry = {
            let mut queues = lock(&inner.queues);
            match queues.keys.get_mut(&key).and_then(VecDeque::pop_front) {
                Some(entry) => entry,
                None => {
                    queues.keys.remove(&key);
                    return;
                }
            }
        };
        let outcome = deliver(&inner, &key, &mut entry).await;
        let url = url_options::split(&entry.webhook.url).0;
        match outcome {
            Outcome::Delivered => {
                metrics::counter!("huddle_callbacks_total", "result" => "delivered").increment(1)
            }
            Outcome::Rejected(error) => {
                metrics::counter!("huddle_callbacks_total", "result" => "rejected").increment(1);
                tracing::warn!(mpc_uuid = %key, %url, %error, rounds = entry.rounds,
                    "callback refused by its receiver, given up");
            }
            Outcome::Expired(error) => {
                metrics::counter!("huddle_callbacks_total", "result" => "expired").increment(1);
                tracing::warn!(mpc_uuid = %key, %url, %error, rounds = entry.rounds,
                    horizon_secs = inner.options.retry.horizon.as_secs(),
                    "callback not delivered within its retry horizon, given up");
            }
        }
        if let Some(journal) = &inner.journal {
            journal.finished(entry.id);
        }
        {
            let mut queues = lock(&inner.queues);
            if let Some(n) = queues.receivers.get_mut(&entry.receiver) {
                *n -= 1;
                if *n == 0 {
                    queues.receivers.remove(&entry.receiver);
                }
            }
        }
        // Only now: the key stays in the map (and new callbacks queue behind) while in delivery.
        if inner.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            inner.idle.notify_waiters();
        }
    }
}

/// Delivery rounds of one callback until it is delivered or given up on.
async fn deliver(inner: &Inner, key: &str, entry: &mut Entry) -> Outcome {
    loop {
        entry.rounds = entry.rounds.saturating_add(1);
        let webhook = &entry.webhook;
        let result = inner
            .http
            .notify_round(&webhook.url, webhook.method, &webhook.params, entry.rounds)
            .await;
        let error = match result {
            Ok(()) => return Outcome::Delivered,
            Err(error) if !error.is_transient() => return Outcome::Rejected(error),
            Err(error) => error,
        };
        let next = inner.options.retry.after_failure(
            entry.rounds,
            entry.queued_at,
            SystemTime::now(),
            error.retry_after(),
            draw_jitter(),
        );
        let delay = match next {
            Next::GiveUp => return Outcome::Expired(error),
            Next::RetryIn(delay) => delay,
        };
        if let Some(journal) = &inner.journal {
            journal.retrying(entry.id, entry.rounds);
        }
        metrics::counter!("huddle_callback_retries_total").increment(1);
        tracing::info!(mpc_uuid = %key, url = %url_options::split(&entry.webhook.url).0, %error,
            round = entry.rounds, delay_ms = delay.as_millis() as u64,
            "callback not delivered, trying again later");
        inner.backing_off.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!("huddle_callbacks_backing_off").increment(1.0);
        inner.idle.notify_waiters();
        tokio::time::sleep(delay).await;
        inner.backing_off.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("huddle_callbacks_backing_off").decrement(1.0);
    }
}
