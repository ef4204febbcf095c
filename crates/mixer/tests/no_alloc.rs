//! A tick allocates nothing: counted with a global allocator wrapper, per thread. The test
//! harness's own thread may allocate while the test runs (its progress reports on a loaded
//! machine), so only the allocations of the thread that runs the tick are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use huddle_mixer::{
    HearingTable, ListenerClass, Mixer, SpeakerClass, VadConfig, VoiceActivity, LISTENER_CLASSES,
};

struct Counting;

thread_local! {
    // Const-initialised and without a destructor, so reading it never allocates.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

/// Allocations made so far by the calling thread.
fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn a_ten_party_tick_does_not_allocate() {
    // The counter does count: building the mixer allocates its buffers.
    let before_new = allocations();
    let mut mixer = Mixer::new(160, HearingTable::default());
    assert!(allocations() > before_new);

    let classes = [
        (SpeakerClass::Customer, ListenerClass::Customer),
        (SpeakerClass::Agent, ListenerClass::Agent),
        (SpeakerClass::Coach, ListenerClass::Supervisor),
        (SpeakerClass::Supervisor, ListenerClass::Supervisor),
        (SpeakerClass::AiAgent, ListenerClass::AiAgent),
    ];
    let mut frames = [[0i16; 160]; 10];
    for (p, frame) in frames.iter_mut().enumerate() {
        for (i, s) in frame.iter_mut().enumerate() {
            *s = ((i * 37 + p * 1013) % 20_000) as i16 - 10_000;
        }
    }
    let mut vads: Vec<VoiceActivity> = (0..10)
        .map(|_| VoiceActivity::new(VadConfig::default()))
        .collect();
    let mut outs = [[0i16; 160]; 10];
    let mut recording = [0i16; 160];
    let beep = [100i16; 160];

    let before = allocations();
    for tick in 0..100 {
        mixer.begin();
        for (i, (frame, vad)) in frames.iter().zip(&mut vads).enumerate() {
            // A muted participant every few ticks: not added, still mixed for.
            if (tick + i) % 7 != 0 {
                mixer.add(classes[i % 5].0, frame);
            }
            std::hint::black_box(vad.push(frame));
        }
        mixer.finish();
        for (i, (frame, out)) in frames.iter().zip(&mut outs).enumerate() {
            let (speaker, listener) = classes[i % 5];
            let own = ((tick + i) % 7 != 0).then_some((speaker, &frame[..]));
            let extra: &[&[i16]] = if tick % 10 == 0 { &[&beep] } else { &[] };
            mixer.mix_for(listener, own, extra, out);
        }
        for listener in LISTENER_CLASSES {
            mixer.mix_for(listener, None, &[], &mut recording);
        }
        // The per-role recording's channels: one class, two classes, an absent one.
        for classes in [
            &[SpeakerClass::Agent][..],
            &[SpeakerClass::Supervisor, SpeakerClass::Coach],
            &[SpeakerClass::AiAgent],
        ] {
            mixer.speakers_into(classes, &mut recording);
        }
        if tick == 50 {
            let mut table = HearingTable::default();
            table.set(ListenerClass::Customer, SpeakerClass::Coach, true);
            mixer.set_table(table);
        }
        std::hint::black_box((&outs, &recording));
    }
    assert_eq!(allocations(), before);
}
