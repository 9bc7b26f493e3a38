//! Posting lists of the folded search text: for every letter and every pair of adjacent
//! letters, the people whose text contains it, as a compressed bitmap of their ids. A search
//! word of one or two letters is answered by one lookup; a longer word by intersecting its
//! pairs, whose candidates are then checked against the text. Pairs straddling whitespace are
//! not kept: a search word never contains any.
//!
//! Letters below 128 live in flat tables (the common case, and fast to build a million
//! people with); others in maps.

use std::collections::HashMap;

use roaring::RoaringBitmap;

const ASCII: usize = 128;

pub(super) struct Grams {
    letters: Vec<RoaringBitmap>,
    pairs: Vec<RoaringBitmap>,
    other_letters: HashMap<char, RoaringBitmap>,
    other_pairs: HashMap<(char, char), RoaringBitmap>,
}

/// One letter or one pair, as a key of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Gram {
    Letter(char),
    Pair(char, char),
}

impl Default for Grams {
    fn default() -> Self {
        Self {
            letters: vec![RoaringBitmap::new(); ASCII],
            pairs: vec![RoaringBitmap::new(); ASCII * ASCII],
            other_letters: HashMap::new(),
            other_pairs: HashMap::new(),
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
        }
    }

    /// Bytes held, for the index's size report (roaring's serialized size, close to its heap).
    pub fn heap_bytes(&self) -> usize {
        self.letters
            .iter()
            .chain(&self.pairs)
            .chain(self.other_letters.values())
            .chain(self.other_pairs.values())
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
    let mut grams = Vec::with_capacity(text.len() * 2);
    let mut previous: Option<char> = None;
    for c in text.chars() {
        if c.is_whitespace() {
            previous = None;
            continue;
        }
        grams.push(Gram::Letter(c));
        if let Some(p) = previous {
            grams.push(Gram::Pair(p, c));
        }
        previous = Some(c);
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
        grams.remove(1, "ana.b ñu");
        assert!(grams.pair('ñ', 'u').unwrap().is_empty());
        assert_eq!(grams.letter('b').unwrap().iter().collect::<Vec<_>>(), [2]);
    }
}
