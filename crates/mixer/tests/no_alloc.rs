//! A tick allocates nothing: counted with a global allocator wrapper.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use huddle_mixer::{HearingTable, ListenerClass, Mixer, SpeakerClass};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn a_ten_party_tick_does_not_allocate() {
    let mut mixer = Mixer::new(160, HearingTable::default());
    let frames = [[1234i16; 160]; 10];
    let classes = [
        SpeakerClass::Customer,
        SpeakerClass::Agent,
        SpeakerClass::Coach,
        SpeakerClass::Supervisor,
        SpeakerClass::AiAgent,
    ];
    let mut out = [0i16; 160];
    let beep = [100i16; 160];
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..100 {
        mixer.begin();
        for (i, f) in frames.iter().enumerate() {
            mixer.add(classes[i % 5], f);
        }
        mixer.finish();
        for (i, f) in frames.iter().enumerate() {
            mixer.mix_for(
                ListenerClass::Agent,
                Some((classes[i % 5], f)),
                &[&beep],
                &mut out,
            );
        }
    }
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), before);
}
