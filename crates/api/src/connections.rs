//! The HTTP listener's table of open connections: caps in all and per source IP, and which
//! connection to close when the total cap is reached.
//!
//! A flood of half-sent requests (a TCP connect and a few bytes, never the blank line) costs
//! the attacker nothing, so it must not be able to hold every slot: when the table is full, a
//! new connection takes the slot of the oldest one that has not sent a complete request yet.
//! Such a connection has nothing in progress, so closing it loses no work, and a real client
//! (a balancer's `/health` probe, the API) sends its request at once and so is never the
//! oldest waiting one for long. Connections that have sent a request are never closed to make
//! room; when every open connection has, the new one is refused.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source already has `max_connections_per_source` open.
    PerSource,
    /// All `max_connections` are open and every one has sent a request.
    Total,
}

impl Refusal {
    /// The `reason` label of the refusal metric.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::PerSource => "max_connections_per_source",
            Refusal::Total => "max_connections",
        }
    }
}

/// What [`ConnectionTable::admit`] decided.
pub enum Admission {
    /// Served: the slot (freed on drop), a receiver that fires when another connection takes
    /// this one's slot, and whether an older connection was closed to make room.
    Admitted {
        /// The connection's place in the table.
        slot: Slot,
        /// Fires when this connection is closed to make room for a newer one.
        shed: oneshot::Receiver<()>,
        /// True when an older connection was closed for this one.
        shed_other: bool,
    },
    /// Not served: close it at once.
    Refused(Refusal),
}

/// Open connections, bounded in all and per source IP.
pub struct ConnectionTable {
    max_total: usize,
    max_per_source: usize,
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Open>,
    /// Connections that have not sent a complete request yet, oldest (lowest id) first.
    waiting: BTreeSet<u64>,
    /// Open connections per source; an address leaves the map with its last connection, so
    /// the map never holds more entries than there are connections.
    per_source: HashMap<IpAddr, usize>,
}

struct Open {
    source: IpAddr,
    shed: oneshot::Sender<()>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Open> {
        let open = self.open.remove(&id)?;
        self.waiting.remove(&id);
        if let Some(n) = self.per_source.get_mut(&open.source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&open.source);
            }
        }
        Some(open)
    }
}

impl ConnectionTable {
    /// A table of at most `max_total` connections, `max_per_source` of them from one address
    /// (both at least 1).
    pub fn new(max_total: usize, max_per_source: usize) -> Arc<Self> {
        Arc::new(ConnectionTable {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            inner: Mutex::new(Table::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides about a new connection from `source`.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Admission {
        let mut table = self.lock();
        if table.per_source.get(&source).copied().unwrap_or(0) >= self.max_per_source {
            return Admission::Refused(Refusal::PerSource);
        }
        let mut shed_other = false;
        if table.open.len() >= self.max_total {
            let Some(oldest) = table.waiting.first().copied() else {
                return Admission::Refused(Refusal::Total);
            };
            if let Some(open) = table.remove(oldest) {
                // Its task may have ended already; then there is nobody to tell.
                let _ = open.shed.send(());
                shed_other = true;
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let (tx, rx) = oneshot::channel();
        table.open.insert(id, Open { source, shed: tx });
        table.waiting.insert(id);
        *table.per_source.entry(source).or_insert(0) += 1;
        metrics::gauge!("huddle_http_connections_open").set(table.open.len() as f64);
        Admission::Admitted {
            slot: Slot {
                table: self.clone(),
                id,
                requested: AtomicBool::new(false),
            },
            shed: rx,
            shed_other,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }
}

/// One admitted connection's place in the table; dropping it frees the place.
pub struct Slot {
    table: Arc<ConnectionTable>,
    id: u64,
    requested: AtomicBool,
}

impl Slot {
    /// Notes that the connection sent a complete request: from now on it is never closed to
    /// make room for another. Cheap after the first call.
    pub fn request_arrived(&self) {
        if !self.requested.swap(true, Ordering::Relaxed) {
            self.table.lock().waiting.remove(&self.id);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.table.lock();
        table.remove(self.id);
        metrics::gauge!("huddle_http_connections_open").set(table.open.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn admitted(a: Admission) -> (Slot, oneshot::Receiver<()>, bool) {
        match a {
            Admission::Admitted {
                slot,
                shed,
                shed_other,
            } => (slot, shed, shed_other),
            Admission::Refused(r) => panic!("refused: {r:?}"),
        }
    }

    #[test]
    fn a_source_over_its_cap_is_refused_until_one_of_its_connections_closes() {
        let table = ConnectionTable::new(10, 2);
        let first = admitted(table.admit(A));
        let _second = admitted(table.admit(A));
        assert!(matches!(
            table.admit(A),
            Admission::Refused(Refusal::PerSource)
        ));
        let _other = admitted(table.admit(B));
        drop(first);
        let _third = admitted(table.admit(A));
        assert_eq!(table.open(), 3);
    }

    #[test]
    fn when_full_the_oldest_connection_without_a_request_makes_room() {
        let table = ConnectionTable::new(3, 3);
        let (served, mut served_shed, _) = admitted(table.admit(A));
        served.request_arrived();
        let (_w1, mut w1_shed, _) = admitted(table.admit(A));
        let (_w2, mut w2_shed, _) = admitted(table.admit(B));
        let (_new, _, shed_other) = admitted(table.admit(B));
        assert!(shed_other);
        assert!(w1_shed.try_recv().is_ok(), "the oldest waiting one goes");
        assert!(w2_shed.try_recv().is_err());
        assert!(served_shed.try_recv().is_err(), "a served one stays");
        assert_eq!(table.open(), 3);
    }

    #[test]
    fn when_every_connection_has_sent_a_request_a_new_one_is_refused() {
        let table = ConnectionTable::new(2, 2);
        let (a, _, _) = admitted(table.admit(A));
        let (b, _, _) = admitted(table.admit(B));
        a.request_arrived();
        b.request_arrived();
        assert!(matches!(table.admit(A), Admission::Refused(Refusal::Total)));
        drop(a);
        let _c = admitted(table.admit(A));
    }

    #[test]
    fn a_shed_connection_frees_its_source_count_at_once() {
        let table = ConnectionTable::new(1, 1);
        let (old, _shed, _) = admitted(table.admit(A));
        let (_new, _, shed_other) = admitted(table.admit(B));
        assert!(shed_other);
        // The shed slot's own drop later must not free anyone else's place.
        drop(old);
        assert_eq!(table.open(), 1);
        assert!(matches!(
            table.admit(B),
            Admission::Refused(Refusal::PerSource)
        ));
        let (_a, _, _) = admitted(table.admit(A));
        assert_eq!(table.open(), 1);
    }
}
