//! People in the order of one sort column, built in one pass when a search first needs it and
//! rebuilt once too many people have changed since. People changed since the build are marked
//! stale: a search skips them in the built order and merges them back in by their current keys,
//! so the order never has to be rebuilt on each write and every page stays exact.

use roaring::RoaringBitmap;

/// How many changed people a built order tolerates before a search asks for a rebuild.
pub(super) const STALE_LIMIT: u64 = 4096;

#[derive(Debug, Default)]
pub(super) struct Order {
    /// Ascending by the column then username; for a column that may be absent (last login),
    /// the absent ones come last, from `absent_from`.
    slots: Vec<u32>,
    absent_from: usize,
    /// People written since the build: their place in `slots` may be wrong.
    pub stale: RoaringBitmap,
}

impl Order {
    pub fn new(slots: Vec<u32>, absent_from: usize) -> Self {
        Self {
            slots,
            absent_from,
            stale: RoaringBitmap::new(),
        }
    }

    /// The slots in the order of a search: ascending, or descending with absent values still
    /// last (as SQL's `NULLS LAST` in both directions).
    pub fn walk(&self, descending: bool) -> Box<dyn Iterator<Item = u32> + '_> {
        if descending {
            let (present, absent) = self.slots.split_at(self.absent_from);
            Box::new(present.iter().rev().chain(absent.iter().rev()).copied())
        } else {
            Box::new(self.slots.iter().copied())
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4 + self.stale.serialized_size()
    }
}
