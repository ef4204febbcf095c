//! Byte-capped LRU cache of decoded prompts with single-flight loading.
//!
//! The first request for a key starts one loader task; requests arriving while it runs wait
//! for its result instead of fetching again. The loader runs in its own task so a caller that
//! gives up (its call hung up) neither cancels the work for the others nor leaves them waiting
//! forever. Only successes are cached; a failure is handed to the waiters of that one attempt
//! and the next request tries again.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::{Pcm, PromptError};

/// What a prompt is cached by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// Audio file by URL (fragment removed: it never reaches the server, so it cannot change
    /// the bytes) and output rate.
    Audio { url: String, rate: u32 },
    /// Synthesized speech by its inputs and output rate.
    Speech {
        text: String,
        voice: String,
        language: String,
        rate: u32,
    },
}

type Outcome = Option<Result<Pcm, PromptError>>;

pub(crate) struct Cache {
    cap_bytes: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// Last-use tick to key, oldest first: the eviction order.
    order: BTreeMap<u64, Key>,
    tick: u64,
    bytes: usize,
    inflight: HashMap<Key, watch::Receiver<Outcome>>,
}

struct Entry {
    pcm: Pcm,
    tick: u64,
}

fn cost(pcm: &Pcm) -> usize {
    pcm.samples.len() * std::mem::size_of::<i16>()
}

impl State {
    fn get(&mut self, key: &Key) -> Option<Pcm> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(key)?;
        self.order.remove(&entry.tick);
        entry.tick = tick;
        self.order.insert(tick, key.clone());
        Some(entry.pcm.clone())
    }

    fn insert(&mut self, key: Key, pcm: Pcm, cap: usize) {
        let size = cost(&pcm);
        if size > cap {
            // Caching it would flush everything else and still not fit.
            return;
        }
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&old.tick);
            self.bytes -= cost(&old.pcm);
        }
        while self.bytes + size > cap {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(old) = self.entries.remove(&oldest) {
                self.bytes -= cost(&old.pcm);
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.entries.insert(
            key,
            Entry {
                pcm,
                tick: self.tick,
            },
        );
        self.bytes += size;
    }
}

impl Cache {
    pub(crate) fn new(cap_bytes: usize) -> Self {
        Self {
            cap_bytes,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements, so a panic elsewhere while holding
        // the lock does not make it unusable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of PCM currently cached.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Returns the cached PCM for `key`, or the result of `load` run once for all concurrent
    /// callers. Must be called within a tokio runtime.
    pub(crate) async fn get_or_load<F>(
        self: &Arc<Self>,
        key: Key,
        load: F,
    ) -> Result<Pcm, PromptError>
    where
        F: Future<Output = Result<Pcm, PromptError>> + Send + 'static,
    {
        let mut rx = {
            let mut state = self.lock();
            if let Some(pcm) = state.get(&key) {
                metrics::counter!("huddle_prompt_cache_hits_total").increment(1);
                return Ok(pcm);
            }
            if let Some(rx) = state.inflight.get(&key) {
                // Somebody is already loading it: sharing that load is a hit for this caller.
                metrics::counter!("huddle_prompt_cache_hits_total").increment(1);
                rx.clone()
            } else {
                metrics::counter!("huddle_prompt_cache_misses_total").increment(1);
                let (tx, rx) = watch::channel(None);
                state.inflight.insert(key.clone(), rx.clone());
                let guard = InflightGuard {
                    cache: Arc::clone(self),
                    key: Some(key),
                };
                tokio::spawn(async move {
                    let result = load.await;
                    guard.complete(&result);
                    // Nobody waiting any more is fine: the result is cached regardless.
                    let _ = tx.send(Some(result));
                });
                rx
            }
        };
        let outcome = rx.wait_for(Option::is_some).await;
        match outcome.as_deref() {
            Ok(Some(result)) => result.clone(),
            _ => Err(PromptError::Internal {
                what: "a prompt".into(),
                detail: "the loading task ended without a result".into(),
            }),
        }
    }
}

/// Removes the in-flight marker however the loader ends, so a panicking loader cannot block
/// its key forever.
struct InflightGuard {
    cache: Arc<Cache>,
    key: Option<Key>,
}

impl InflightGuard {
    fn complete(mut self, result: &Result<Pcm, PromptError>) {
        if let Some(key) = self.key.take() {
            let mut state = self.cache.lock();
            state.inflight.remove(&key);
            if let Ok(pcm) = result {
                state.insert(key, pcm.clone(), self.cache.cap_bytes);
            }
        }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.cache.lock().inflight.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn pcm(n: usize) -> Pcm {
        Pcm {
            samples: vec![0i16; n].into(),
            rate: 8000,
        }
    }

    fn key(name: &str) -> Key {
        Key::Audio {
            url: name.into(),
            rate: 8000,
        }
    }

    #[test]
    fn lru_evicts_least_recently_used_within_the_byte_cap() {
        let mut s = State::default();
        s.insert(key("a"), pcm(10), 60); // 20 bytes
        s.insert(key("b"), pcm(10), 60);
        s.insert(key("c"), pcm(10), 60);
        assert!(s.get(&key("a")).is_some()); // a is now the most recent
        s.insert(key("d"), pcm(10), 60); // evicts b
        assert!(s.get(&key("b")).is_none());
        assert!(s.get(&key("a")).is_some());
        assert!(s.get(&key("c")).is_some());
        assert!(s.get(&key("d")).is_some());
        assert_eq!(s.bytes, 60);
        s.insert(key("huge"), pcm(31), 60); // larger than the cap: not cached
        assert!(s.get(&key("huge")).is_none());
        assert_eq!(s.bytes, 60);
        assert_eq!(s.entries.len(), s.order.len());
    }

    #[tokio::test]
    async fn failures_are_shared_but_not_cached_and_panics_release_the_key() {
        let cache = Arc::new(Cache::new(1 << 20));
        let runs = Arc::new(AtomicUsize::new(0));
        let load = |fail: bool| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                if fail {
                    Err(PromptError::Tts {
                        detail: "no".into(),
                    })
                } else {
                    Ok(pcm(4))
                }
            }
        };
        let (a, b) = tokio::join!(
            cache.get_or_load(key("x"), load(true)),
            cache.get_or_load(key("x"), load(true))
        );
        assert!(a.is_err() && b.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(cache.get_or_load(key("x"), load(false)).await.is_ok());
        assert!(cache.get_or_load(key("x"), load(false)).await.is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(cache.bytes(), 8);

        let r = cache
            .get_or_load(key("p"), async { panic!("loader bug") })
            .await;
        assert!(matches!(r, Err(PromptError::Internal { .. })));
        assert!(cache.get_or_load(key("p"), load(false)).await.is_ok());
    }
}
