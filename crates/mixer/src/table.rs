//! Who hears whom, as data (design.md's normative table).

/// A contributor's class. A supervisor in coach mode is its own class, `Coach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpeakerClass {
    /// Customer.
    Customer,
    /// Agent.
    Agent,
    /// AI agent.
    AiAgent,
    /// Supervisor with coachMode=false (barging).
    Supervisor,
    /// Supervisor with coachMode=true.
    Coach,
}

/// A listener's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerClass {
    /// Customer.
    Customer,
    /// Agent.
    Agent,
    /// Supervisor.
    Supervisor,
    /// AI agent.
    AiAgent,
    /// The MPC recording without coach voice.
    Recording,
    /// The MPC recording with recordCoachVoice=true.
    RecordingWithCoach,
}

/// Every speaker class, in index order.
pub const SPEAKER_CLASSES: [SpeakerClass; 5] = [
    SpeakerClass::Customer,
    SpeakerClass::Agent,
    SpeakerClass::AiAgent,
    SpeakerClass::Supervisor,
    SpeakerClass::Coach,
];

/// Every listener class, in index order.
pub const LISTENER_CLASSES: [ListenerClass; 6] = [
    ListenerClass::Customer,
    ListenerClass::Agent,
    ListenerClass::Supervisor,
    ListenerClass::AiAgent,
    ListenerClass::Recording,
    ListenerClass::RecordingWithCoach,
];

impl SpeakerClass {
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl ListenerClass {
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// (listener class, speaker class) → heard, one bit per cell (a `u8` row per listener class).
/// Silent monitoring, whisper or an AI coach are changes to these bits, not new mixing code:
///
/// ```
/// use huddle_mixer::{HearingTable, ListenerClass, SpeakerClass};
///
/// let mut table = HearingTable::default();
/// // Barge: the customer hears the coach too.
/// table.set(ListenerClass::Customer, SpeakerClass::Coach, true);
/// // Whisper to the agent only: other supervisors stop hearing the coach.
/// table.set(ListenerClass::Supervisor, SpeakerClass::Coach, false);
/// assert!(table.hears(ListenerClass::Customer, SpeakerClass::Coach));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HearingTable {
    rows: [u8; LISTENER_CLASSES.len()],
}

impl Default for HearingTable {
    /// design.md: everyone hears customers, agents, AI agents and barging supervisors; a
    /// coaching supervisor is heard by agents, supervisors and a recording that asked for it.
    fn default() -> Self {
        let everyone_but_coach = [
            SpeakerClass::Customer,
            SpeakerClass::Agent,
            SpeakerClass::AiAgent,
            SpeakerClass::Supervisor,
        ];
        let mut table = HearingTable {
            rows: [0; LISTENER_CLASSES.len()],
        };
        for listener in LISTENER_CLASSES {
            for speaker in everyone_but_coach {
                table.set(listener, speaker, true);
            }
        }
        for listener in [
            ListenerClass::Agent,
            ListenerClass::Supervisor,
            ListenerClass::RecordingWithCoach,
        ] {
            table.set(listener, SpeakerClass::Coach, true);
        }
        table
    }
}

impl HearingTable {
    /// A table where nobody hears anybody.
    pub fn silent() -> Self {
        HearingTable {
            rows: [0; LISTENER_CLASSES.len()],
        }
    }

    /// Sets one cell.
    pub fn set(&mut self, listener: ListenerClass, speaker: SpeakerClass, heard: bool) {
        let bit = 1u8 << speaker.index();
        let row = &mut self.rows[listener.index()];
        if heard {
            *row |= bit;
        } else {
            *row &= !bit;
        }
    }

    /// Reads one cell.
    pub fn hears(&self, listener: ListenerClass, speaker: SpeakerClass) -> bool {
        self.rows[listener.index()] & (1 << speaker.index()) != 0
    }

    /// One listener's row: bit `s` set when it hears speaker class index `s`.
    pub(crate) fn row(&self, listener: ListenerClass) -> u8 {
        self.rows[listener.index()]
    }
}
