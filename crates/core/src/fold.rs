//! Accent folding: the one definition of "the same letters" used by search, sorting and the
//! username suggestion, so that `Élodie`, `elodie` and `ELODIE` always meet.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Lower-cases `text` and removes accents: `Élodie Näf` → `elodie naf`, `Straße` → `strasse`.
pub fn fold(text: &str) -> String {
    // ASCII decomposes to itself and has no marks: lower-casing is all there is to do, and
    // most names and addresses are ASCII (decomposing them was about a tenth of an import's
    // planning, profiled).
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    fold_unicode(text)
}

fn fold_unicode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        // Letters that do not decompose into a base letter and a mark.
        match c {
            'ß' | 'ẞ' => out.push_str("ss"),
            'æ' | 'Æ' => out.push_str("ae"),
            'œ' | 'Œ' => out.push_str("oe"),
            'ø' | 'Ø' => out.push('o'),
            'đ' | 'Đ' | 'ð' | 'Ð' => out.push('d'),
            'ł' | 'Ł' => out.push('l'),
            'þ' | 'Þ' => out.push_str("th"),
            'ı' => out.push('i'),
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The text a person is found by: username, names and email, folded, separated by spaces.
pub fn search_text(username: &str, first_name: &str, last_name: &str, email: &str) -> String {
    fold(&format!("{username} {first_name} {last_name} {email}"))
}

/// Splits a search box entry into folded words, each of which must be contained in the text.
pub fn search_words(q: &str) -> Vec<String> {
    fold(q).split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_accents_and_case() {
        assert_eq!(fold("Élodie Näf"), "elodie naf");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("ŁUKASZ Øre"), "lukasz ore");
        assert_eq!(fold("François"), "francois");
    }

    #[test]
    fn ascii_folds_as_the_unicode_path_does() {
        let ascii: String = (0u8..128).map(char::from).collect();
        assert_eq!(fold(&ascii), fold_unicode(&ascii));
        assert_eq!(fold("Jean-Luc O'Neil"), "jean-luc o'neil");
    }

    #[test]
    fn search_words_are_folded_and_split() {
        assert_eq!(search_words("  Éva  DUPONT "), vec!["eva", "dupont"]);
        assert!(search_words("   ").is_empty());
    }
}
