//! Webhook delivery: callbacks of one key (one MPC) go out one at a time in the order they
//! were queued, so a receiver sees `ParticipantJoin` before that participant's
//! `ParticipantExit`; different keys are delivered in parallel, so one slow receiver holds up
//! only its own MPC's callbacks.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use huddle_xml::HttpMethod;
use tokio::sync::Notify;

use crate::request::HttpClient;

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
/// process stops go out after it starts again. Calls must not block: they run on the path
/// that queues callbacks.
pub trait Journal: Send + Sync {
    /// `webhook` was queued under `key` with `id`.
    fn queued(&self, id: u64, key: &str, webhook: &Webhook);
    /// Callback `id` was delivered or given up on.
    fn finished(&self, id: u64);
}

/// Ordered, bounded webhook delivery; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    journal: Option<Arc<dyn Journal>>,
    next_id: AtomicU64,
    /// Keys with a delivery task, and what waits behind the request in flight.
    queues: Mutex<HashMap<String, VecDeque<(u64, Webhook)>>>,
    /// Queued or in flight, all keys together.
    pending: AtomicUsize,
    capacity: usize,
    /// Signalled when `pending` drops to zero.
    idle: Notify,
}

impl Webhooks {
    /// Delivers through `http`; at most `capacity` callbacks wait at once, beyond which new
    /// ones are dropped and counted rather than let memory grow without bound while a
    /// receiver is down.
    pub fn new(http: HttpClient, capacity: usize) -> Self {
        Webhooks::build(http, capacity, None, 1)
    }

    /// Like [`Webhooks::new`], writing every callback down in `journal` until it is delivered
    /// or given up on; ids start at `first_id` (above any id the journal still holds).
    pub fn durable(
        http: HttpClient,
        capacity: usize,
        journal: Arc<dyn Journal>,
        first_id: u64,
    ) -> Self {
        Webhooks::build(http, capacity, Some(journal), first_id)
    }

    fn build(
        http: HttpClient,
        capacity: usize,
        journal: Option<Arc<dyn Journal>>,
        first_id: u64,
    ) -> Self {
        Webhooks {
            inner: Arc::new(Inner {
                http,
                journal,
                next_id: AtomicU64::new(first_id),
                queues: Mutex::new(HashMap::new()),
                pending: AtomicUsize::new(0),
                capacity,
                idle: Notify::new(),
            }),
        }
    }

    /// Queues `webhook` behind the earlier ones of `key`. Returns false when it was dropped
    /// (the queue is full, or there is no runtime to deliver it).
    pub fn send(&self, key: &str, webhook: Webhook) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            metrics::counter!("huddle_callbacks_dropped_total").increment(1);
            return false;
        };
        let queued = self
            .inner
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.inner.capacity).then_some(n + 1)
            });
        if queued.is_err() {
            metrics::counter!("huddle_callbacks_dropped_total").increment(1);
            tracing::warn!(url = %webhook.url, "callback queue full, callback dropped");
            return false;
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(journal) = &self.inner.journal {
            journal.queued(id, key, &webhook);
        }
        self.enqueue(&runtime, key, id, webhook);
        true
    }

    /// Queues a callback the journal kept from before a restart (already written down, and
    /// accepted whatever the queue's length: it was accepted once).
    pub fn resume(&self, key: &str, id: u64, webhook: Webhook) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.inner.pending.fetch_add(1, Ordering::AcqRel);
        self.enqueue(&runtime, key, id, webhook);
    }

    fn enqueue(&self, runtime: &tokio::runtime::Handle, key: &str, id: u64, webhook: Webhook) {
        let mut queues = lock(&self.inner.queues);
        match queues.get_mut(key) {
            Some(queue) => queue.push_back((id, webhook)),
            None => {
                queues.insert(key.to_string(), VecDeque::from([(id, webhook)]));
                runtime.spawn(deliver_key(self.inner.clone(), key.to_string()));
            }
        }
    }

    /// Callbacks queued or in flight.
    pub fn pending(&self) -> usize {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// Waits until every queued callback has been delivered or given up on, at most `within`;
    /// returns whether the queue is empty.
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.pending() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.pending() == 0;
            }
        }
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
        let (id, next) = {
            let mut queues = lock(&inner.queues);
            match queues.get_mut(&key).and_then(VecDeque::pop_front) {
                Some(item) => item,
                None => {
                    queues.remove(&key);
                    return;
                }
            }
        };
        let result = inner
            .http
            .notify(&next.url, next.method, &next.params)
            .await;
        match result {
            Ok(()) => {
                metrics::counter!("huddle_callbacks_total", "result" => "delivered").increment(1)
            }
            Err(error) => {
                metrics::counter!("huddle_callbacks_total", "result" => "failed").increment(1);
                tracing::warn!(%error, key = %key, "callback not delivered");
            }
        }
        if let Some(journal) = &inner.journal {
            journal.finished(id);
        }
        // Only now: the key stays in the map (and new callbacks queue behind) while in flight.
        if inner.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            inner.idle.notify_waiters();
        }
    }
}
