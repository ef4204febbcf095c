//! Role-aware mix-minus for multi-party calls.
//!
//! Hand-written because it is the hottest loop of the server and no crate mixes by role: every
//! listener gets the sum of the speakers its role may hear (design.md's "Who hears whom",
//! stored as data in [`HearingTable`]), minus its own voice. The work per tick is
//! O(participants): contributors are summed once per speaker class ([`Mixer::add`]), each
//! listener class's sum is derived from the classes it hears ([`Mixer::finish`], a fixed
//! 6 × 5 table, independent of the participant count), and each listener's mix is its class
//! sum minus its own frame ([`Mixer::mix_for`]). No I/O, no async, no dependency on the rest of
//! huddle, and no allocation after [`Mixer::new`]: every buffer is sized for [`MAX_FRAME`] at
//! construction.
//!
//! ```
//! use huddle_mixer::{HearingTable, ListenerClass, Mixer, SpeakerClass};
//!
//! let mut mixer = Mixer::new(160, HearingTable::default());
//! let customer = [1000i16; 160];
//! let agent = [200i16; 160];
//! mixer.begin();
//! mixer.add(SpeakerClass::Customer, &customer);
//! mixer.add(SpeakerClass::Agent, &agent);
//! mixer.finish();
//! let mut out = [0i16; 160];
//! // The customer hears the agent, not itself.
//! mixer.mix_for(ListenerClass::Customer, Some((SpeakerClass::Customer, &customer)), &[], &mut out);
//! assert_eq!(out, agent);
//! ```

mod limiter;
mod table;
mod vad;

pub use limiter::soft_limit;
use limiter::KNEE;
pub use table::{HearingTable, ListenerClass, SpeakerClass, LISTENER_CLASSES, SPEAKER_CLASSES};
pub use vad::{VadConfig, VoiceActivity, VoiceEvent};

/// Largest frame: 20 ms at 48 kHz.
pub const MAX_FRAME: usize = 960;

const SPEAKERS: usize = SPEAKER_CLASSES.len();
const LISTENERS: usize = LISTENER_CLASSES.len();

/// The mix engine of one room at one sample rate.
///
/// # Overflow bound
///
/// Sums are i32. One sample is at most 2^15 in magnitude, so 2^16 = 65,536 contributors
/// (in all classes together, plus beeps) fit before an i32 could overflow — four orders of
/// magnitude above any room (a Plivo MPC has at most 10 participants). Beyond that bound a
/// release build wraps rather than panics; the bound is far out of reach of real callers.
pub struct Mixer {
    frame_len: usize,
    table: HearingTable,
    /// Per speaker class: the sum of this tick's contributors of that class.
    speaker_sums: Box<[[i32; MAX_FRAME]; SPEAKERS]>,
    /// Bit `s` set: speaker class `s` has contributed this tick (only those sums hold data).
    present: u8,
    /// Contributors of each speaker class this tick.
    counts: [u16; SPEAKERS],
    /// Distinct listener sums of this tick. Listener classes that hear the same set of present
    /// speaker classes share one (with the default table and no coach, all six do), so
    /// `finish` does as few frame passes as the table allows.
    listener_sums: Box<[[i32; MAX_FRAME]; LISTENERS]>,
    /// Which present speaker classes each slot of `listener_sums` holds.
    slot_mask: [u8; LISTENERS],
    /// Slots filled by the last `finish` (the others hold older ticks' sums).
    slots: usize,
    /// Listener class → its slot in `listener_sums`, as of the last `finish`.
    slot_of: [u8; LISTENERS],
    /// Listener class → its hearing-table row, as of the last `finish`.
    rows: [u8; LISTENERS],
}

impl Mixer {
    /// A mixer for frames of `frame_len` samples per 20 ms (160 at 8 kHz, 320 at 16 kHz, 960
    /// at 48 kHz); larger values are clamped to [`MAX_FRAME`].
    pub fn new(frame_len: usize, table: HearingTable) -> Self {
        Mixer {
            frame_len: frame_len.min(MAX_FRAME),
            table,
            speaker_sums: Box::new([[0; MAX_FRAME]; SPEAKERS]),
            present: 0,
            counts: [0; SPEAKERS],
            listener_sums: Box::new([[0; MAX_FRAME]; LISTENERS]),
            // Before the first `finish` every listener reads slot 0: silence.
            slot_mask: [0; LISTENERS],
            slots: 0,
            slot_of: [0; LISTENERS],
            rows: [0; LISTENERS],
        }
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// The hearing table in use.
    pub fn table(&self) -> &HearingTable {
        &self.table
    }

    /// Replaces the hearing table. It takes effect at the next [`Mixer::finish`]; until then
    /// [`Mixer::mix_for`] keeps mixing by the table the last `finish` used, so a tick is never
    /// half one table and half the other.
    pub fn set_table(&mut self, table: HearingTable) {
        self.table = table;
    }

    /// Starts a tick: clears the per-class sums.
    pub fn begin(&mut self) {
        let n = self.frame_len;
        for (s, sum) in self.speaker_sums.iter_mut().enumerate() {
            // Only classes that contributed last tick hold anything to clear.
            if self.present & (1 << s) != 0 {
                sum[..n].fill(0);
            }
        }
        self.present = 0;
        self.counts = [0; SPEAKERS];
    }

    /// Adds one contributor's frame. The caller adds only participants that contribute
    /// (joined, MPC started, not muted, not on hold). A shorter frame counts as padded with
    /// silence; samples past `frame_len` are ignored.
    pub fn add(&mut self, class: SpeakerClass, pcm: &[i16]) {
        let s = class.index();
        self.present |= 1 << s;
        self.counts[s] = self.counts[s].saturating_add(1);
        let n = self.frame_len.min(pcm.len());
        for (acc, v) in self.speaker_sums[s][..n].iter_mut().zip(&pcm[..n]) {
            *acc += i32::from(*v);
        }
    }

    /// Ends the adding phase: computes, per listener class, the sum of every speaker class it
    /// hears. At most 6 × 5 frame passes whatever the participant count, fewer when listener
    /// classes hear the same present classes.
    pub fn finish(&mut self) {
        let n = self.frame_len;
        let mut slots = 0usize;
        for listener in LISTENER_CLASSES {
            let row = self.table.row(listener);
            let mask = row & self.present;
            let l = listener.index();
            self.rows[l] = row;
            if let Some(slot) = self.slot_mask[..slots].iter().position(|m| *m == mask) {
                self.slot_of[l] = slot as u8;
                continue;
            }
            let out = &mut self.listener_sums[slots][..n];
            out.fill(0);
            for (s, sum) in self.speaker_sums.iter().enumerate() {
                if mask & (1 << s) != 0 {
                    for (o, v) in out.iter_mut().zip(&sum[..n]) {
                        *o += *v;
                    }
                }
            }
            self.slot_mask[slots] = mask;
            self.slot_of[l] = slots as u8;
            slots += 1;
        }
        self.slots = slots;
    }

    /// Which shared mix a listener hears this tick, if it hears one: the set of speaker
    /// classes in its mix (bit `s` for speaker class `s`), or None when its mix is one of its
    /// own (its voice is subtracted from a class that others of its class speak in too).
    ///
    /// The key is what is heard, not who hears it: listeners of different classes whose
    /// tables let them hear the same present speakers hear bit-identical mixes, and so does a
    /// talker who is the only speaker of its class (its class sum minus its own frame is
    /// exactly the sum of the others). With one person talking in a room, everybody else
    /// shares one mix and the talker hears the rest, usually silence, shared with every
    /// silent room's listener of the same codec. Write the mix of a key with
    /// [`Mixer::mix_heard`]. Valid after [`Mixer::finish`], by the table that `finish` used.
    pub fn shared_mix(&self, listener: ListenerClass, own: Option<SpeakerClass>) -> Option<u8> {
        let l = listener.index();
        let heard = self.slot_mask[usize::from(self.slot_of[l])];
        match own {
            Some(class) if heard & (1 << class.index()) != 0 => {
                (self.counts[class.index()] == 1).then_some(heard & !(1 << class.index()))
            }
            _ => Some(heard),
        }
    }

    /// Writes the mix of a [`Mixer::shared_mix`] key: the sum of this tick's contributors of
    /// the speaker classes in `heard`, through [`soft_limit`], bit-identical to what
    /// [`Mixer::mix_for`] writes for every listener with that key (no beeps). Writes
    /// `min(out.len(), frame_len)` samples.
    pub fn mix_heard(&self, heard: u8, out: &mut [i16]) {
        let n = self.frame_len.min(out.len());
        let out = &mut out[..n];
        let heard = heard & self.present;
        if heard == 0 {
            out.fill(0);
            return;
        }
        if let Some(slot) = self.slot_mask[..self.slots]
            .iter()
            .position(|m| *m == heard)
        {
            narrow(&self.listener_sums[slot][..n], out);
            return;
        }
        // A set no listener class hears as a whole (a talker's "everyone but me"): summed
        // here, once per group and tick.
        let mut sum = [0i32; MAX_FRAME];
        let sum = &mut sum[..n];
        for (s, class_sum) in self.speaker_sums.iter().enumerate() {
            if heard & (1 << s) != 0 {
                for (o, v) in sum.iter_mut().zip(&class_sum[..n]) {
                    *o += *v;
                }
            }
        }
        narrow(sum, out);
    }

    /// Writes the sum of this tick's contributors of the speaker classes `classes` into `out`,
    /// through [`soft_limit`]: one channel of the per-role recording (all the agents in one
    /// channel, say). Call after [`Mixer::add`]; writes `min(out.len(), frame_len)` samples.
    pub fn speakers_into(&self, classes: &[SpeakerClass], out: &mut [i16]) {
        let n = self.frame_len.min(out.len());
        let out = &mut out[..n];
        let mut present = classes
            .iter()
            .map(|c| c.index())
            .filter(|s| self.present & (1u8 << *s) != 0);
        match (present.next(), present.next()) {
            (None, _) => out.fill(0),
            // One class (the usual case): a straight narrowing pass.
            (Some(s), None) => {
                for (o, v) in out.iter_mut().zip(&self.speaker_sums[s][..n]) {
                    *o = soft_limit(*v);
                }
            }
            _ => {
                for (i, o) in out.iter_mut().enumerate() {
                    let sum: i32 = classes
                        .iter()
                        .map(|c| c.index())
                        .filter(|s| self.present & (1u8 << *s) != 0)
                        .map(|s| self.speaker_sums[s][i])
                        .sum();
                    *o = soft_limit(sum);
                }
            }
        }
    }

    /// Writes one listener's mix into `out`: its class's sum, minus `own` when the listener
    /// contributed and its class hears its own speaker class (nobody hears themselves), plus
    /// every frame in `extra` (entry/exit beeps or announcements for this listener), through
    /// [`soft_limit`].
    ///
    /// Subtracting the own frame from the class sum is exact, not an approximation: the sums
    /// are plain integer additions of the very samples passed to [`Mixer::add`], with no
    /// clipping or scaling before the limiter, so `sum - own` equals the sum over everybody
    /// else bit for bit. That is what makes a listener O(frame_len) instead of
    /// O(participants × frame_len). `own` must be the same samples the listener was added with.
    ///
    /// Writes `min(out.len(), frame_len)` samples and leaves the rest of `out` alone; a short
    /// `own` or `extra` frame counts as padded with silence. Never panics on any lengths.
    pub fn mix_for(
        &self,
        listener: ListenerClass,
        own: Option<(SpeakerClass, &[i16])>,
        extra: &[&[i16]],
        out: &mut [i16],
    ) {
        let n = self.frame_len.min(out.len());
        let slot = usize::from(self.slot_of[listener.index()]);
        let sum = &self.listener_sums[slot][..n];
        let heard = self.slot_mask[slot];
        // Subtract only what the sum holds: the listener's own class must be heard (and have
        // been added), else its voice never entered this sum.
        let own = own
            .filter(|(class, _)| heard & (1 << class.index()) != 0)
            .map(|(_, pcm)| pcm);
        let out = &mut out[..n];
        match (own, extra) {
            // The common cases (no beep playing) are straight, vectorisable loops: a plain
            // narrowing pass that also tracks the loudest sample, and the soft limiter (a
            // division per loud sample) only for the rare frame that crosses its knee.
            (Some(own), []) if own.len() >= n => {
                let own = &own[..n];
                let mut peak = 0u32;
                for ((o, s), v) in out.iter_mut().zip(sum).zip(own) {
                    let x = *s - i32::from(*v);
                    peak = peak.max(x.unsigned_abs());
                    *o = x as i16;
                }
                if peak > KNEE {
                    for ((o, s), v) in out.iter_mut().zip(sum).zip(own) {
                        *o = soft_limit(*s - i32::from(*v));
                    }
                }
            }
            (None, []) => narrow(sum, out),
            // Beeps are short and rare: per-sample bounds checks are fine here.
            _ => {
                let own = own.unwrap_or(&[]);
                for (i, (o, s)) in out.iter_mut().zip(sum).enumerate() {
                    let mut v = *s - i32::from(own.get(i).copied().unwrap_or(0));
                    for e in extra {
                        v = v.saturating_add(i32::from(e.get(i).copied().unwrap_or(0)));
                    }
                    *o = soft_limit(v);
                }
            }
        }
    }
}

/// Narrows a sum to samples: a straight, vectorisable pass that also tracks the loudest
/// sample, and the soft limiter (a division per loud sample) only for the rare frame that
/// crosses its knee.
fn narrow(sum: &[i32], out: &mut [i16]) {
    let mut peak = 0u32;
    for (o, s) in out.iter_mut().zip(sum) {
        peak = peak.max(s.unsigned_abs());
        *o = *s as i16;
    }
    if peak > KNEE {
        for (o, s) in out.iter_mut().zip(sum) {
            *o = soft_limit(*s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_classes_with_the_same_hearing_share_one_sum() {
        let mut mixer = Mixer::new(160, HearingTable::default());
        mixer.begin();
        mixer.add(SpeakerClass::Customer, &[1; 160]);
        mixer.add(SpeakerClass::Agent, &[2; 160]);
        mixer.finish();
        assert_eq!(mixer.slot_of, [0; LISTENERS], "no coach: one sum for all");
        mixer.begin();
        mixer.add(SpeakerClass::Customer, &[1; 160]);
        mixer.add(SpeakerClass::Coach, &[2; 160]);
        mixer.finish();
        // Customer, AiAgent, Recording hear no coach; Agent, Supervisor, RecordingWithCoach do.
        assert_eq!(mixer.slot_of, [0, 1, 1, 0, 0, 1]);
    }

    /// Every listener class's mix, for a listener that did not contribute.
    fn mixes(mixer: &Mixer) -> Vec<[i16; 160]> {
        LISTENER_CLASSES
            .iter()
            .map(|l| {
                let mut out = [0i16; 160];
                mixer.mix_for(*l, None, &[], &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn listeners_with_the_same_hearing_share_a_mix_key_and_hear_the_same_mix() {
        let mut mixer = Mixer::new(160, HearingTable::default());
        mixer.begin();
        mixer.add(SpeakerClass::Customer, &[100; 160]);
        mixer.add(SpeakerClass::Coach, &[7; 160]);
        mixer.finish();
        let keys: Vec<Option<u8>> = LISTENER_CLASSES
            .iter()
            .map(|l| mixer.shared_mix(*l, None))
            .collect();
        // Customer, AiAgent and Recording hear everyone but the coach; Agent, Supervisor and
        // RecordingWithCoach hear the coach too: two groups.
        assert_eq!(keys[0], keys[3]);
        assert_eq!(keys[0], keys[4]);
        assert_eq!(keys[1], keys[2]);
        assert_eq!(keys[1], keys[5]);
        assert_ne!(keys[0], keys[1]);
        let heard = mixes(&mixer);
        for (a, b) in LISTENER_CLASSES.iter().zip(&keys) {
            for (c, d) in LISTENER_CLASSES.iter().zip(&keys) {
                let same = heard[a.index()] == heard[c.index()];
                assert_eq!(b == d, same, "{a:?} and {c:?}: same key iff same mix");
            }
        }
        assert_eq!(heard[ListenerClass::Customer.index()], [100; 160]);
        assert_eq!(heard[ListenerClass::Agent.index()], [107; 160]);
    }

    #[test]
    fn a_listener_whose_own_voice_is_subtracted_from_a_shared_class_hears_a_mix_of_its_own() {
        let mut mixer = Mixer::new(160, HearingTable::default());
        mixer.begin();
        // Two customers talk: each hears the other, a mix nobody else hears.
        mixer.add(SpeakerClass::Customer, &[100; 160]);
        mixer.add(SpeakerClass::Customer, &[30; 160]);
        mixer.add(SpeakerClass::Agent, &[20; 160]);
        mixer.finish();
        assert_eq!(
            mixer.shared_mix(ListenerClass::Customer, Some(SpeakerClass::Customer)),
            None
        );
        // The agent is the only agent talking: it hears the customers, as anyone would who
        // heard only them.
        let agent = mixer.shared_mix(ListenerClass::Agent, Some(SpeakerClass::Agent));
        assert_eq!(agent, Some(1 << SpeakerClass::Customer.index()));
        let mut mine = [0i16; 160];
        mixer.mix_for(
            ListenerClass::Agent,
            Some((SpeakerClass::Agent, &[20; 160])),
            &[],
            &mut mine,
        );
        let mut shared = [0i16; 160];
        mixer.mix_heard(agent.unwrap(), &mut shared);
        assert_eq!(mine, shared);
        assert_eq!(shared, [130; 160]);
        // Not contributing: the class's mix, shared.
        assert!(mixer.shared_mix(ListenerClass::Agent, None).is_some());
        // A voice the listener's class does not hear is not in its mix: still shared.
        let mut table = HearingTable::default();
        table.set(ListenerClass::Supervisor, SpeakerClass::Coach, false);
        mixer.set_table(table);
        mixer.begin();
        mixer.add(SpeakerClass::Coach, &[9; 160]);
        mixer.add(SpeakerClass::Customer, &[100; 160]);
        mixer.finish();
        assert_eq!(
            mixer.shared_mix(ListenerClass::Supervisor, Some(SpeakerClass::Coach)),
            mixer.shared_mix(ListenerClass::Supervisor, None)
        );
        assert!(mixer
            .shared_mix(ListenerClass::Supervisor, Some(SpeakerClass::Coach))
            .is_some());
    }

    /// Every combination of present speakers, and who talks among the listeners: listeners
    /// with the same key hear bit-identical mixes, [`Mixer::mix_heard`] writes exactly that
    /// mix, and different keys are different mixes.
    #[test]
    fn a_key_names_exactly_what_is_heard() {
        let mut table = HearingTable::default();
        table.set(ListenerClass::Customer, SpeakerClass::Coach, false);
        let mut mixer = Mixer::new(160, table);
        // Distinct powers of two per class, so that different sets sum differently; loud
        // enough together to cross the limiter's knee.
        let voice = |s: usize| [(1i16 << (s + 10)) + 3 * s as i16; 160];
        for present in 0u8..(1 << SPEAKERS) {
            for doubled in 0..SPEAKERS {
                mixer.begin();
                for (s, class) in SPEAKER_CLASSES.iter().enumerate() {
                    if present & (1 << s) != 0 {
                        mixer.add(*class, &voice(s));
                        if s == doubled {
                            mixer.add(*class, &voice(s));
                        }
                    }
                }
                mixer.finish();
                let mut heard: Vec<(Option<u8>, [i16; 160])> = Vec::new();
                for listener in LISTENER_CLASSES {
                    for own in std::iter::once(None).chain(SPEAKER_CLASSES.map(Some)) {
                        if own.is_some_and(|c| present & (1 << c.index()) == 0) {
                            continue;
                        }
                        let mut out = [0i16; 160];
                        let own_frame = own.map(|c| (c, voice(c.index())));
                        mixer.mix_for(
                            listener,
                            own_frame.as_ref().map(|(c, f)| (*c, &f[..])),
                            &[],
                            &mut out,
                        );
                        let key = mixer.shared_mix(listener, own);
                        if let Some(key) = key {
                            let mut shared = [1i16; 160];
                            mixer.mix_heard(key, &mut shared);
                            assert_eq!(out, shared, "{present:b} {listener:?} {own:?}");
                        }
                        heard.push((key, out));
                    }
                }
                for (a, x) in &heard {
                    for (b, y) in &heard {
                        if let (Some(a), Some(b)) = (a, b) {
                            assert_eq!(a == b, x == y, "{present:b}: keys {a:b} and {b:b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn silence_is_one_key() {
        let mut mixer = Mixer::new(160, HearingTable::default());
        mixer.begin();
        mixer.add(SpeakerClass::Customer, &[100; 160]);
        mixer.finish();
        // The only talker hears nobody, as does everyone of a room where nobody talks.
        let talker = mixer.shared_mix(ListenerClass::Customer, Some(SpeakerClass::Customer));
        mixer.begin();
        mixer.finish();
        assert_eq!(talker, Some(0));
        assert_eq!(mixer.shared_mix(ListenerClass::Agent, None), Some(0));
        let mut out = [5i16; 160];
        mixer.mix_heard(0, &mut out);
        assert_eq!(out, [0; 160]);
    }

    #[test]
    fn speaker_sums_give_one_channel_per_role_limited() {
        let mut mixer = Mixer::new(160, HearingTable::default());
        mixer.begin();
        mixer.add(SpeakerClass::Agent, &[100; 160]);
        mixer.add(SpeakerClass::Agent, &[20; 160]);
        mixer.add(SpeakerClass::Customer, &[7; 160]);
        mixer.add(SpeakerClass::Coach, &[30_000; 160]);
        mixer.add(SpeakerClass::Supervisor, &[30_000; 160]);
        mixer.finish();
        let mut out = [1i16; 160];
        mixer.speakers_into(&[SpeakerClass::Agent], &mut out);
        assert_eq!(out, [120; 160], "two agents: their sum");
        mixer.speakers_into(&[SpeakerClass::AiAgent], &mut out);
        assert_eq!(out, [0; 160], "nobody of that role: silence");
        mixer.speakers_into(&[SpeakerClass::Supervisor, SpeakerClass::Coach], &mut out);
        assert_eq!(out, [soft_limit(60_000); 160], "limited, not wrapped");
        assert!(out[0] > 30_000);
        // A class that contributed last tick only is silent now.
        mixer.begin();
        mixer.finish();
        mixer.speakers_into(&[SpeakerClass::Agent], &mut out);
        assert_eq!(out, [0; 160]);
    }

    #[test]
    fn a_class_absent_this_tick_is_cleared_from_last_tick() {
        let mut mixer = Mixer::new(160, HearingTable::default());
        mixer.begin();
        mixer.add(SpeakerClass::Agent, &[5; 160]);
        mixer.finish();
        mixer.begin();
        mixer.add(SpeakerClass::Customer, &[3; 160]);
        mixer.finish();
        let mut out = [0i16; 160];
        mixer.mix_for(ListenerClass::Recording, None, &[], &mut out);
        assert_eq!(out, [3; 160]);
        mixer.begin();
        mixer.finish();
        mixer.mix_for(ListenerClass::Recording, None, &[], &mut out);
        assert_eq!(out, [0; 160]);
    }

    #[test]
    fn a_table_change_waits_for_finish() {
        let mut mixer = Mixer::new(160, HearingTable::default());
        let coach = [700i16; 160];
        mixer.begin();
        mixer.add(SpeakerClass::Coach, &coach);
        mixer.finish();
        mixer.set_table(HearingTable::silent());
        let mut out = [0i16; 160];
        // Still last finish's table: the agent hears the coach, and its own-voice check agrees.
        mixer.mix_for(ListenerClass::Agent, None, &[], &mut out);
        assert_eq!(out, coach);
        mixer.finish();
        mixer.mix_for(ListenerClass::Agent, None, &[], &mut out);
        assert_eq!(out, [0; 160]);
    }
}
