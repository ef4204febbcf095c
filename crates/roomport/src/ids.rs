//! The identifiers that cross the port, each a type of its own so that a member id is never
//! passed where a count is expected nor a call's uuid where an MPC's is. They serialize as
//! the bare value (`serde(transparent)`), so JSON and form parameters are what they were
//! with plain numbers and strings.
//!
//! Where the room draws new ones (MPC uuids, recording ids) it draws them from an
//! [`IdSource`]: the operating system's randomness in production ([`OsIds`]), a seeded
//! generator in tests ([`SeededIds`]), so that a scenario's events are the same on every run.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A participant's MemberID: unique within the process, written in decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub u64);

impl MemberId {
    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for MemberId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(MemberId)
    }
}

impl From<u64> for MemberId {
    fn from(id: u64) -> Self {
        MemberId(id)
    }
}

/// Declares a string identifier: built from any string, shown and serialized as it is, and
/// compared with and looked up by `&str`.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The identifier `id`.
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The identifier's text.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

string_id!(
    /// A call leg's CallUUID.
    CallUuid
);
string_id!(
    /// An MPC's MPCUUID: a new one for every MPC, even under a name used before.
    MpcUuid
);
string_id!(
    /// A recording's RecordingUUID (`recording_id`), also its file's name.
    RecordingId
);

/// A source of new identifiers.
pub trait IdSource: fmt::Debug + Send {
    /// A new random (version 4) UUID.
    fn uuid(&mut self) -> uuid::Uuid;

    /// A source of its own for a part that draws independently (one per room), taken from
    /// this one: seeded sources give seeded children, so a whole run stays reproducible.
    fn fork(&mut self) -> Box<dyn IdSource>;

    /// A new CallUUID.
    fn call_uuid(&mut self) -> CallUuid {
        CallUuid(self.uuid().to_string())
    }

    /// A new MPCUUID.
    fn mpc_uuid(&mut self) -> MpcUuid {
        MpcUuid(self.uuid().to_string())
    }

    /// A new recording id.
    fn recording_id(&mut self) -> RecordingId {
        RecordingId(self.uuid().to_string())
    }
}

/// UUIDs from the operating system's randomness.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsIds;

impl IdSource for OsIds {
    fn uuid(&mut self) -> uuid::Uuid {
        uuid::Uuid::new_v4()
    }

    fn fork(&mut self) -> Box<dyn IdSource> {
        Box::new(OsIds)
    }
}

/// Deterministic UUIDs from a seed (SplitMix64): the same seed gives the same sequence. For
/// tests and reproductions only; the values are predictable.
#[derive(Debug, Clone)]
pub struct SeededIds {
    state: u64,
}

impl SeededIds {
    /// A source that starts from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededIds { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl IdSource for SeededIds {
    fn uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        // Version and variant bits set: it looks like any other v4 UUID.
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn fork(&mut self) -> Box<dyn IdSource> {
        Box::new(SeededIds::new(self.next_u64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_and_show_as_their_bare_value() {
        assert_eq!(serde_json::to_string(&MemberId(10_001)).unwrap(), "10001");
        assert_eq!(MemberId(10_001).to_string(), "10001");
        assert_eq!("10001".parse::<MemberId>(), Ok(MemberId(10_001)));
        assert!("x".parse::<MemberId>().is_err());
        let call = CallUuid::new("c-1");
        assert_eq!(serde_json::to_string(&call).unwrap(), "\"c-1\"");
        assert_eq!(
            serde_json::from_str::<MpcUuid>("\"m-1\"").unwrap(),
            MpcUuid::from("m-1")
        );
        assert_eq!(call, "c-1");
        assert_eq!(call.to_string(), "c-1");
        let mut by_uuid = std::collections::HashMap::new();
        by_uuid.insert(call, 1);
        assert_eq!(by_uuid.get("c-1"), Some(&1), "looked up by text");
    }

    #[test]
    fn seeded_sources_repeat_per_seed_and_look_like_v4_uuids() {
        let draw = |seed| {
            let mut ids = SeededIds::new(seed);
            let mut child = ids.fork();
            (ids.mpc_uuid(), ids.recording_id(), child.call_uuid())
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let (mpc, recording, call) = draw(7);
        assert_ne!(mpc.as_str(), recording.as_str());
        assert_ne!(mpc.as_str(), call.as_str());
        let parsed = uuid::Uuid::parse_str(mpc.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn os_sources_draw_fresh_uuids() {
        let mut ids = OsIds;
        assert_ne!(ids.mpc_uuid(), ids.mpc_uuid());
        assert_ne!(ids.fork().uuid(), ids.uuid());
    }
}
