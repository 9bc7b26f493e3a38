//! Posting lists of the folded search text: for every letter, every pair and every triple of
//! adjacent letters, the people whose text contains it, as a compressed bitmap of their ids. A
//! search word of up to three letters is answered by one lookup; a longer word by intersecting
//! its triples, whose few candidates are then checked against the text. Grams straddling
//! whitespace are not kept: a search word never contains any.
//!
//! Letters and pairs below 128 live in flat tables (the common case, and fast to build a
//! million people with); others, and all triples, in maps with a cheap hash of the packed
//! letters. Triples cost little: most people's triples repeat between their username, names and
//! email, and without them a three-letter word such as `ter` would check every person holding
//! `te` and `er` (at a million people, a fifth of them) against the text.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use roaring::RoaringBitmap;

const ASCII: usize = 128;

pub(super) struct Grams {
    letters: Vec<RoaringBitmap>,
    pairs: Vec<RoaringBitmap>,
    other_letters: HashMap<char, RoaringBitmap>,
    other_pairs: HashMap<(char, char), RoaringBitmap>,
    triples: HashMap<u64, RoaringBitmap, BuildHasherDefault<PackedHasher>>,
}

/// Hashes a packed triple (three 21-bit letters in a `u64`): a multiply and a shift, where
/// the standard SipHash would dominate building the index.
#[derive(Default)]
struct PackedHasher(u64);

impl Hasher for PackedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        let x = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 32)
    }
}

fn pack(a: char, b: char, c: char) -> u64 {
    (u64::from(a) << 42) | (u64::from(b) << 21) | u64::from(c)
}

/// One letter or one pair, as a key of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Gram {
    Letter(char),
    Pair(char, char),
    Triple(char, char, char),
}

impl Default for Grams {
    fn default() -> Self {
        Self {
            letters: vec![RoaringBitmap::new(); ASCII],
            pairs: vec![RoaringBitmap::new(); ASCII * ASCII],
            other_letters: HashMap::new(),
            other_pairs: HashMap::new(),
            triples: HashMap::default(),
        }
    }
}

impl Grams {
    pub fn add(&mut self, slot: u32, text: &str) {
        for gram in grams_of(text) {
            self.bitmap_mut(gram).insert(slot);
        }
    }

    pub fn remove(&mut self, slot: u32, text: &str) {
        for gram in grams_of(text) {
            self.bitmap_mut(gram).remove(slot);
        }
    }

    /// The people whose text contains `letter`.
    pub fn letter(&self, letter: char) -> Option<&RoaringBitmap> {
        match ascii(letter) {
            Some(a) => Some(&self.letters[a]),
            None => self.other_letters.get(&letter),
        }
    }

    /// The people whose text contains `a` directly followed by `b`.
    pub fn pair(&self, a: char, b: char) -> Option<&RoaringBitmap> {
        match (ascii(a), ascii(b)) {
            (Some(x), Some(y)) => Some(&self.pairs[x * ASCII + y]),
            _ => self.other_pairs.get(&(a, b)),
        }
    }

    /// The people whose text contains `a`, `b`, `c` in a row.
    pub fn triple(&self, a: char, b: char, c: char) -> Option<&RoaringBitmap> {
        self.triples.get(&pack(a, b, c))
    }

    fn bitmap_mut(&mut self, gram: Gram) -> &mut RoaringBitmap {
        match gram {
            Gram::Letter(c) => match ascii(c) {
                Some(a) => &mut self.letters[a],
                None => self.other_letters.entry(c).or_default(),
            },
            Gram::Pair(a, b) => match (ascii(a), ascii(b)) {
                (Some(x), Some(y)) => &mut self.pairs[x * ASCII + y],
                _ => self.other_pairs.entry((a, b)).or_default(),
            },
            Gram::Triple(a, b, c) => self.triples.entry(pack(a, b, c)).or_default(),
        }
    }

    /// Bytes held, for the index's size report (roaring's serialized size, close to its heap).
    pub fn heap_bytes(&self) -> usize {
        self.letters
            .iter()
            .chain(&self.pairs)
            .chain(self.other_letters.values())
            .chain(self.other_pairs.values())
            .chain(self.triples.values())
            .map(RoaringBitmap::serialized_size)
            .sum()
    }
}

fn ascii(c: char) -> Option<usize> {
    let code = c as usize;
    (code < ASCII).then_some(code)
}

/// The distinct letters and pairs of `text`, whitespace left out.
fn grams_of(text: &str) -> Vec<Gram> {
    let mut grams = Vec::with_capacity(text.len() * 3);
    let (mut before, mut previous): (Option<char>, Option<char>) = (None, None);
    for c in text.chars() {
        if c.is_whitespace() {
            (before, previous) = (None, None);
            continue;
        }
        grams.push(Gram::Letter(c));
        if let Some(p) = previous {
            grams.push(Gram::Pair(p, c));
            if let Some(b) = before {
                grams.push(Gram::Triple(b, p, c));
            }
        }
        (before, previous) = (previous, Some(c));
    }
    grams.sort_unstable();
    grams.dedup();
    grams
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grams_skip_whitespace_and_repeat_once() {
        assert_eq!(
            grams_of("aa b"),
            vec![Gram::Letter('a'), Gram::Letter('b'), Gram::Pair('a', 'a'),]
        );
    }

    #[test]
    fn lookups_find_letters_and_pairs_in_and_out_of_ascii() {
        let mut grams = Grams::default();
        grams.add(1, "ana.b ñu");
        grams.add(2, "bob");
        assert_eq!(grams.letter('a').unwrap().iter().collect::<Vec<_>>(), [1]);
        assert_eq!(grams.letter('b').unwrap().len(), 2);
        assert_eq!(
            grams.pair('a', '.').unwrap().iter().collect::<Vec<_>>(),
            [1]
        );
        assert_eq!(
            grams.pair('ñ', 'u').unwrap().iter().collect::<Vec<_>>(),
            [1]
        );
        assert!(grams.pair('b', ' ').unwrap().is_empty());
        assert_eq!(
            grams
                .triple('n', 'a', '.')
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            [1]
        );
        assert!(grams.triple('a', 'b', ' ').is_none());
        grams.remove(1, "ana.b ñu");
        assert!(grams.pair('ñ', 'u').unwrap().is_empty());
        assert_eq!(grams.letter('b').unwrap().iter().collect::<Vec<_>>(), [2]);
    }
}
