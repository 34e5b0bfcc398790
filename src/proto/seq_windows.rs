//! [`SeqWindows`]: which recent sequence numbers of each origin the store holds, a bit each.
//!
//! An origin numbers its broadcasts 1, 2, 3, ... (per incarnation), so the ids a node remembers
//! form dense runs per origin. Most lookups are announcements of recent ids; answering them from
//! a bit in a window of a few kilobytes, instead of a probe into the store's table of megabytes
//! (a cache miss per announcement, about a tenth of the runtime's CPU), is the point.
//!
//! The windows mirror the store exactly: an id of a windowed origin with `seq >= base` is in the
//! store if and only if its bit is set; below `base` they only count the ids held, and the store
//! answers. A window lives while the store holds any id of its origin, so an origin without a
//! window has no id in the store, unless the windows were all taken when one arrived (an
//! *orphan*, counted): while orphans are held, no new window starts (it could not know of
//! them) and the store answers for origins without one. Memory is bounded three ways: at most
//! [`MAX_WINDOWS`] windows, at most [`MAX_WORDS`] words each, and a window grows by a word only
//! while it holds at least as many ids as words (forged ids far apart cannot inflate it).

use std::collections::{HashMap, VecDeque};

use crate::message::MessageId;

/// Origins tracked at once; others are left to the store. Small in tests, so that property
/// tests run out of windows.
const MAX_WINDOWS: usize = if cfg!(test) { 8 } else { 64 };

/// Words per window: 65,536 sequence numbers, 8 KiB.
const MAX_WORDS: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct SeqWindows {
    /// Keyed by origin tag and incarnation.
    windows: HashMap<(u64, u64), Window, foldhash::fast::RandomState>,
    /// Ids held whose origin has no window.
    orphans: usize,
}

#[derive(Debug)]
struct Window {
    /// Sequence number of the lowest bit of `words[0]`; a multiple of 64.
    base: u64,
    words: VecDeque<u64>,
    /// Bits set.
    ones: usize,
    /// Ids held below `base`.
    below: usize,
}

impl Window {
    /// Word index and bit mask of `seq`, if it is in the window's range.
    fn position(&self, seq: u64) -> Option<(usize, u64)> {
        let offset = seq.checked_sub(self.base)?;
        let word = usize::try_from(offset / 64).ok()?;
        Some((word, 1 << (offset % 64)))
    }

    /// Drops the first word; its ids fall below `base`, to the store.
    fn pop_front(&mut self) {
        if let Some(bits) = self.words.pop_front() {
            self.ones -= bits.count_ones() as usize;
            self.below += bits.count_ones() as usize;
            self.base += 64;
        }
    }
}

impl SeqWindows {
    /// Whether the store holds `id`, when the windows know.
    pub(crate) fn get(&self, id: &MessageId) -> Option<bool> {
        let Some(window) = self.windows.get(&key(id)) else {
            return (self.orphans == 0).then_some(false);
        };
        let (word, bit) = window.position(id.seq())?;
        // Past the end: no id that far was ever stored (stored ids above `base` have bits).
        Some(window.words.get(word).is_some_and(|bits| bits & bit != 0))
    }

    /// The store took `id` (it did not hold it before).
    pub(crate) fn insert(&mut self, id: &MessageId) {
        let seq = id.seq();
        let open = self.windows.len() < MAX_WINDOWS && self.orphans == 0;
        let window = match self.windows.get_mut(&key(id)) {
            Some(window) => window,
            None if !open => {
                self.orphans += 1;
                return;
            }
            None => self.windows.entry(key(id)).or_insert(Window {
                base: seq & !63,
                words: VecDeque::new(),
                ones: 0,
                below: 0,
            }),
        };
        let Some((mut word, bit)) = window.position(seq) else {
            window.below += 1; // only the store knows which
            return;
        };
        if word >= window.words.len() {
            if word > window.ones {
                // Far beyond what this window holds: start again at `seq`. Every id held was
                // below the old end, so below the new base too: the store answers for them.
                window.words.clear();
                window.base = seq & !63;
                window.below += window.ones;
                window.ones = 0;
                word = 0;
            }
            // Slide so that `seq` is in the last word of at most `MAX_WORDS`, dropping words from
            // the front (all of them, and then some, for a long jump) before growing.
            let excess = (word + 1).saturating_sub(MAX_WORDS);
            let dropped = excess.min(window.words.len());
            for _ in 0..dropped {
                window.pop_front();
            }
            window.base += (excess - dropped) as u64 * 64;
            word -= excess;
            window.words.resize(word + 1, 0);
        }
        let bits = &mut window.words[word];
        if *bits & bit == 0 {
            *bits |= bit;
            window.ones += 1;
        }
    }

    /// The store forgot `id`.
    pub(crate) fn remove(&mut self, id: &MessageId) {
        let key = key(id);
        let Some(window) = self.windows.get_mut(&key) else {
            self.orphans = self.orphans.saturating_sub(1);
            return;
        };
        match window.position(id.seq()) {
            None => window.below = window.below.saturating_sub(1),
            Some((word, bit)) => {
                // The store held it and it is not below the window, so its bit is set.
                let bits = window.words.get_mut(word).filter(|bits| **bits & bit != 0);
                debug_assert!(bits.is_some(), "a held id without its bit");
                if let Some(bits) = bits {
                    *bits &= !bit;
                    window.ones -= 1;
                }
            }
        }
        if window.ones == 0 && window.below == 0 {
            self.windows.remove(&key);
            return;
        }
        // The store forgets oldest first: trim the words it has emptied, so a window spans only
        // what is still held.
        while window.words.front() == Some(&0) {
            window.pop_front();
        }
    }
}

fn key(id: &MessageId) -> (u64, u64) {
    (id.origin(), id.incarnation())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(origin: u64, seq: u64) -> MessageId {
        MessageId::new(origin, 0, seq)
    }

    #[test]
    fn knows_what_it_holds_and_what_lies_beyond() {
        let mut w = SeqWindows::default();
        assert_eq!(w.get(&id(1, 5)), Some(false), "no window: nothing held");
        for seq in 1..=300 {
            w.insert(&id(1, seq));
        }
        assert_eq!(w.get(&id(1, 150)), Some(true));
        assert_eq!(w.get(&id(1, 301)), Some(false));
        assert_eq!(w.get(&id(1, u64::MAX)), Some(false));
        assert_eq!(w.get(&id(2, 150)), Some(false), "another origin");
        for seq in 1..=200 {
            w.remove(&id(1, seq));
        }
        assert_eq!(w.get(&id(1, 150)), None, "trimmed: below the window");
        assert_eq!(w.get(&id(1, 250)), Some(true));
        for seq in 201..=300 {
            w.remove(&id(1, seq));
        }
        assert!(w.windows.is_empty(), "an empty window goes");
    }

    #[test]
    fn sparse_ids_do_not_grow_a_window() {
        let mut w = SeqWindows::default();
        for seq in (0..100).map(|i| i * 1_000_000) {
            w.insert(&id(1, seq));
        }
        let window = &w.windows[&(1, 0)];
        assert_eq!(window.words.len(), 1);
        assert_eq!(w.get(&id(1, 99_000_000)), Some(true));
        assert_eq!(w.get(&id(1, 98_000_000)), None, "left to the store");
    }

    #[test]
    fn a_window_slides_at_its_size_limit() {
        let mut w = SeqWindows::default();
        let last = (MAX_WORDS as u64 + 10) * 64;
        for seq in 0..last {
            w.insert(&id(1, seq));
        }
        let window = &w.windows[&(1, 0)];
        assert_eq!(window.words.len(), MAX_WORDS);
        assert_eq!(window.ones, MAX_WORDS * 64);
        assert_eq!(w.get(&id(1, 0)), None);
        assert_eq!(w.get(&id(1, last - 1)), Some(true));
        // A jump of 3,000 words: within what the window holds, so it slides all the way.
        let far = last + 3_000 * 64;
        w.insert(&id(1, far));
        let window = &w.windows[&(1, 0)];
        assert_eq!((window.words.len(), window.ones), (MAX_WORDS, 1));
        assert_eq!(w.get(&id(1, far)), Some(true));
        assert_eq!(w.get(&id(1, far - 1)), Some(false));
        assert_eq!(w.get(&id(1, last - 1)), None, "below the window now");
    }

    #[test]
    fn at_most_max_windows_origins() {
        let mut w = SeqWindows::default();
        for origin in 0..(MAX_WINDOWS as u64 + 5) {
            w.insert(&id(origin, 1));
        }
        assert_eq!(w.windows.len(), MAX_WINDOWS);
        assert_eq!(
            w.get(&id(MAX_WINDOWS as u64 + 1, 1)),
            None,
            "an orphan: ask the store"
        );
        assert_eq!(
            w.get(&id(1_000, 1)),
            None,
            "any origin without a window, now"
        );
        for origin in 0..(MAX_WINDOWS as u64 + 5) {
            w.remove(&id(origin, 1));
        }
        assert_eq!((w.windows.len(), w.orphans), (0, 0));
        assert_eq!(w.get(&id(1_000, 1)), Some(false));
    }
}
