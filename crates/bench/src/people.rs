//! The people of the workload, generated deterministically from seed 42: names built from
//! syllables (ASCII letters only, 4 or more), username `first.last` with a numeric suffix where
//! the pair was already taken, email `username@example.test`, password `Temp-` + 12 letters and
//! digits. Person `i` is the same in every run and every phase, so that a phase can load "the
//! first N people" and another can ask for people it knows are stored.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The seed of every random choice of the benchmark.
pub const SEED: u64 = 42;

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "ne", "to", "vi", "sa", "be", "du", "ga", "ho", "ju", "le", "mo", "na",
    "pe", "ri", "su", "ta", "ve", "zo", "an", "el", "or", "is", "ul", "ber", "dan", "fin", "gar",
    "hel", "kin", "lin", "mar", "nor", "pol", "ros", "sen", "tam", "vin", "wal",
];

const PASSWORD_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub password: String,
}

/// Person 0, 1, 2, … in order.
pub struct Generator {
    rng: StdRng,
    /// How many times each `first.last` was handed out.
    taken: HashMap<String, u32>,
}

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

impl Generator {
    pub fn new() -> Self {
        Self {
            rng: StdRng::seed_from_u64(SEED),
            taken: HashMap::new(),
        }
    }

    fn name(&mut self, min_syllables: usize, max_syllables: usize) -> String {
        let count = self.rng.gen_range(min_syllables..=max_syllables);
        let mut name = String::new();
        for _ in 0..count {
            name.push_str(SYLLABLES[self.rng.gen_range(0..SYLLABLES.len())]);
        }
        let mut chars = name.chars();
        let first = chars.next().expect("at least one syllable");
        first.to_ascii_uppercase().to_string() + chars.as_str()
    }

    pub fn next_person(&mut self) -> Person {
        let first_name = self.name(2, 3);
        let last_name = self.name(2, 4);
        let password: String = (0..12)
            .map(|_| PASSWORD_CHARS[self.rng.gen_range(0..PASSWORD_CHARS.len())] as char)
            .collect();
        let base = format!(
            "{}.{}",
            first_name.to_ascii_lowercase(),
            last_name.to_ascii_lowercase()
        );
        let seen = self.taken.entry(base.clone()).or_insert(0);
        *seen += 1;
        // Names hold no digits, so `base2` can never be another pair's base.
        let username = if *seen == 1 {
            base
        } else {
            format!("{base}{seen}")
        };
        Person {
            email: format!("{username}@example.test"),
            username,
            first_name,
            last_name,
            password: format!("Temp-{password}"),
        }
    }

    /// The next `n` people.
    pub fn take(&mut self, n: usize) -> Vec<Person> {
        (0..n).map(|_| self.next_person()).collect()
    }
}

/// How a CSV file of people is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvShape {
    pub passwords: bool,
    /// Every last name changed (the update path): `son` appended.
    pub changed_last_names: bool,
}

/// A CSV file of people of a fresh generator, the people at the indexes asked for in `keep`,
/// which the caller uses for searches and mass actions, and the folded search text of every
/// person generated (as the store folds it), which checks search totals, without holding the
/// whole file as values.
pub struct CsvFile {
    pub bytes: Vec<u8>,
    pub kept: BTreeMap<usize, Person>,
    pub search_texts: Vec<String>,
}

/// Writes people `0..rows` of a fresh generator.
pub fn csv_file(rows: usize, shape: CsvShape, keep: &[usize]) -> CsvFile {
    let mut generator = Generator::new();
    let wanted: std::collections::BTreeSet<usize> = keep.iter().copied().collect();
    let mut kept = BTreeMap::new();
    let mut search_texts = Vec::with_capacity(rows);
    let mut bytes = Vec::with_capacity(rows * 90 + 64);
    bytes.extend_from_slice(if shape.passwords {
        b"userName,firstName,lastName,password,email\n".as_slice()
    } else {
        b"userName,firstName,lastName,email\n".as_slice()
    });
    for index in 0..rows {
        let person = generator.next_person();
        write_row(&mut bytes, &person, shape);
        search_texts.push(search_text_of(&person, shape));
        if wanted.contains(&index) {
            kept.insert(index, person);
        }
    }
    CsvFile {
        bytes,
        kept,
        search_texts,
    }
}

/// People given as values (W1, and the W2 files, which are small enough), as a CSV file.
pub fn csv_of(people: &[Person], shape: CsvShape) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(people.len() * 90 + 64);
    bytes.extend_from_slice(if shape.passwords {
        b"userName,firstName,lastName,password,email\n".as_slice()
    } else {
        b"userName,firstName,lastName,email\n".as_slice()
    });
    for person in people {
        write_row(&mut bytes, person, shape);
    }
    bytes
}

/// The text the store searches in for this person once the file is applied.
pub fn search_text_of(p: &Person, shape: CsvShape) -> String {
    let suffix = if shape.changed_last_names { "son" } else { "" };
    usher_core::fold::search_text(
        &p.username,
        &p.first_name,
        &format!("{}{suffix}", p.last_name),
        &p.email,
    )
}

/// One row. No cell needs quoting: every value is ASCII letters, digits, `.`, `-` and `@`.
fn write_row(out: &mut Vec<u8>, p: &Person, shape: CsvShape) {
    let suffix = if shape.changed_last_names { "son" } else { "" };
    let line = if shape.passwords {
        format!(
            "{},{},{}{suffix},{},{}\n",
            p.username, p.first_name, p.last_name, p.password, p.email
        )
    } else {
        format!(
            "{},{},{}{suffix},{}\n",
            p.username, p.first_name, p.last_name, p.email
        )
    };
    out.extend_from_slice(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn people_are_deterministic_unique_and_well_formed() {
        let a = Generator::new().take(20_000);
        let b = Generator::new().take(20_000);
        assert_eq!(a, b);
        let names: HashSet<&str> = a.iter().map(|p| p.username.as_str()).collect();
        assert_eq!(names.len(), a.len());
        for p in &a {
            assert!(p.first_name.len() >= 4 && p.last_name.len() >= 4);
            assert!(p.first_name.chars().all(|c| c.is_ascii_alphabetic()));
            assert!(p.username.starts_with(&p.first_name.to_ascii_lowercase()));
            assert_eq!(p.email, format!("{}@example.test", p.username));
            assert_eq!(p.password.len(), 17);
            assert!(p.password[5..].chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn a_file_holds_the_same_people_as_the_generator() {
        let people = Generator::new().take(100);
        let shape = CsvShape {
            passwords: true,
            changed_last_names: false,
        };
        let file = csv_file(100, shape, &[3, 50]);
        assert_eq!(file.bytes, csv_of(&people, shape));
        assert_eq!(file.search_texts[7], search_text_of(&people[7], shape));
        assert_eq!(file.kept[&3], people[3]);
        assert_eq!(file.kept[&50], people[50]);
        let text = String::from_utf8(csv_of(
            &people[..1],
            CsvShape {
                passwords: false,
                changed_last_names: true,
            },
        ))
        .unwrap();
        assert!(text.contains(&format!("{}son,", people[0].last_name)));
    }
}
