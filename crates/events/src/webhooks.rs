//! Webhook delivery: callbacks of one key (one MPC) go out one at a time in the order they
//! were queued, so a receiver sees `ParticipantJoin` before that participant's
//! `ParticipantExit`; different keys are delivered in parallel, so one slow receiver holds up
//! only its own MPC's callbacks.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Ordered, bounded webhook delivery; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    /// Keys with a delivery task, and what waits behind the request in flight.
    queues: Mutex<HashMap<String, VecDeque<Webhook>>>,
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
        Webhooks {
            inner: Arc::new(Inner {
                http,
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
        let mut queues = lock(&self.inner.queues);
        match queues.get_mut(key) {
            Some(queue) => queue.push_back(webhook),
            None => {
                queues.insert(key.to_string(), VecDeque::from([webhook]));
                runtime.spawn(deliver_key(self.inner.clone(), key.to_string()));
            }
        }
        true
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
        let next = {
            let mut queues = lock(&inner.queues);
            match queues.get_mut(&key).and_then(VecDeque::pop_front) {
                Some(webhook) => webhook,
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
        // Only now: the key stays in the map (and new callbacks queue behind) while in flight.
        if inner.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            inner.idle.notify_waiters();
        }
    }
}
