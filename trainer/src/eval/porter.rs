//! NLTK's Porter stemmer (`nltk.stem.PorterStemmer()`, default `NLTK_EXTENSIONS` mode), the
//! stemmer `rouge_score` applies when asked to stem.
//!
//! This is Porter's (1980) five-step suffix stripper with NLTK's changes: a table of irregular
//! forms, one- and two-letter words left alone, four-letter `-ies` / `-ied` words kept as `-ie`,
//! `y → i` only after a consonant that is not the whole stem, `-alli` reduced before the other
//! step-2 rules, the extra step-2 rules `-fulli` and `-logi`, and a vowel-consonant pair counted
//! as a short syllable. Snowball (Porter2) stems differently, so it cannot stand in for it.

/// A suffix rule: a word ending in `.0`, whose remaining stem satisfies `.2`, has the suffix
/// replaced by `.1`.
type Rule = (&'static str, &'static str, fn(&str) -> bool);

/// The stem of `word`, exactly as `PorterStemmer().stem(word)` returns it (the word is
/// lowercased first).
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some(base) = irregular_form(&lower) {
        return base.to_owned();
    }
    if word.chars().count() <= 2 {
        return lower;
    }
    let word = step1a(lower);
    let word = step1b(word);
    let word = step1c(word);
    let word = step2(word);
    let word = step3(word);
    let word = step4(word);
    let word = step5a(word);
    step5b(word)
}

/// Words whose stems the rules get wrong, mapped to the right stem.
fn irregular_form(word: &str) -> Option<&'static str> {
    Some(match word {
        "sky" | "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "news" => "news",
        "inning" | "innings" => "inning",
        "outing" | "outings" => "outing",
        "canning" | "cannings" => "canning",
        "howe" => "howe",
        "proceed" => "proceed",
        "exceed" => "exceed",
        "succeed" => "succeed",
        _ => return None,
    })
}

/// For each character, whether it is a consonant: anything but `a e i o u`, except that `y`
/// is a vowel when it follows a consonant.
fn consonants(word: &str) -> impl Iterator<Item = bool> + '_ {
    word.chars().scan(false, |previous_is_consonant, c| {
        let is_consonant = match c {
            'a' | 'e' | 'i' | 'o' | 'u' => false,
            'y' => !*previous_is_consonant,
            _ => true,
        };
        *previous_is_consonant = is_consonant;
        Some(is_consonant)
    })
}

/// Porter's measure `m`: the number of vowel-to-consonant transitions, i.e. the `m` in
/// `[C](VC)^m[V]`.
fn measure(stem: &str) -> usize {
    let mut m = 0;
    let mut after_vowel = false;
    for is_consonant in consonants(stem) {
        if is_consonant && after_vowel {
            m += 1;
        }
        after_vowel = !is_consonant;
    }
    m
}

/// The measure of `stem` followed by an `l` (the rules that keep an `l` of the suffix with
/// the stem).
fn measure_with_l(stem: &str) -> usize {
    measure(&format!("{stem}l"))
}

fn contains_vowel(stem: &str) -> bool {
    consonants(stem).any(|is_consonant| !is_consonant)
}

fn ends_with_consonant(stem: &str) -> bool {
    consonants(stem).last() == Some(true)
}

/// Condition `*d`: the word ends in two equal consonants.
fn ends_double_consonant(word: &str) -> bool {
    let mut last = word.chars().rev();
    matches!((last.next(), last.next()), (Some(a), Some(b)) if a == b) && ends_with_consonant(word)
}

/// Condition `*o`: the word ends consonant-vowel-consonant with the last not `w`, `x` or `y`,
/// or is exactly vowel-consonant.
fn ends_cvc(word: &str) -> bool {
    let flags: Vec<bool> = consonants(word).collect();
    match flags[..] {
        [.., true, false, true] => !matches!(word.chars().last(), Some('w' | 'x' | 'y')),
        [false, true] => true,
        _ => false,
    }
}

fn drop_last_char(word: &str) -> String {
    let mut shorter = word.to_owned();
    shorter.pop();
    shorter
}

/// Applies the first rule whose suffix ends `word`; when its condition fails the word is
/// returned unchanged and later rules are not tried.
fn apply_first(word: String, rules: &[Rule]) -> String {
    for &(suffix, replacement, applies) in rules {
        if let Some(stem) = word.strip_suffix(suffix) {
            if applies(stem) {
                return format!("{stem}{replacement}");
            }
            return word;
        }
    }
    word
}

fn always(_: &str) -> bool {
    true
}

fn m_positive(stem: &str) -> bool {
    measure(stem) > 0
}

fn m_above_one(stem: &str) -> bool {
    measure(stem) > 1
}

/// Plurals: `-sses`, `-ies`, `-ss`, `-s`.
fn step1a(word: String) -> String {
    if word.chars().count() == 4
        && let Some(stem) = word.strip_suffix("ies")
    {
        return format!("{stem}ie");
    }
    apply_first(
        word,
        &[
            ("sses", "ss", always),
            ("ies", "i", always),
            ("ss", "ss", always),
            ("s", "", always),
        ],
    )
}

/// Past tenses and participles: `-ied`, `-eed`, `-ed`, `-ing`, then tidying of what remains.
fn step1b(word: String) -> String {
    if let Some(stem) = word.strip_suffix("ied") {
        let ending = if word.chars().count() == 4 { "ie" } else { "i" };
        return format!("{stem}{ending}");
    }
    if let Some(stem) = word.strip_suffix("eed") {
        if measure(stem) > 0 {
            return format!("{stem}ee");
        }
        return word;
    }
    let stripped = ["ed", "ing"].into_iter().find_map(|suffix| {
        word.strip_suffix(suffix)
            .filter(|stem| contains_vowel(stem))
    });
    match stripped {
        Some(stem) => tidy_step1b(stem),
        None => word,
    }
}

/// After `-ed` / `-ing` is removed: restore the `e` of `-ate`, `-ble`, `-ize`, undouble a final
/// consonant other than `l`, `s`, `z`, or add `e` to a short single-syllable stem.
fn tidy_step1b(stem: &str) -> String {
    if ["at", "bl", "iz"]
        .iter()
        .any(|suffix| stem.ends_with(suffix))
    {
        return format!("{stem}e");
    }
    if ends_double_consonant(stem) {
        if matches!(stem.chars().last(), Some('l' | 's' | 'z')) {
            return stem.to_owned();
        }
        return drop_last_char(stem);
    }
    if measure(stem) == 1 && ends_cvc(stem) {
        return format!("{stem}e");
    }
    stem.to_owned()
}

/// `y → i` after a consonant, unless that consonant is all that precedes it.
fn step1c(word: String) -> String {
    fn after_consonant(stem: &str) -> bool {
        stem.chars().count() > 1 && ends_with_consonant(stem)
    }
    apply_first(word, &[("y", "i", after_consonant)])
}

/// Double suffixes reduced to single ones (`-ational → -ate`, `-fulness → -ful`, ...).
fn step2(word: String) -> String {
    if let Some(stem) = word.strip_suffix("alli")
        && m_positive(stem)
    {
        return step2(format!("{stem}al"));
    }
    fn logi_stem(stem: &str) -> bool {
        measure_with_l(stem) > 0
    }
    apply_first(
        word,
        &[
            ("ational", "ate", m_positive),
            ("tional", "tion", m_positive),
            ("enci", "ence", m_positive),
            ("anci", "ance", m_positive),
            ("izer", "ize", m_positive),
            ("bli", "ble", m_positive),
            ("alli", "al", m_positive),
            ("entli", "ent", m_positive),
            ("eli", "e", m_positive),
            ("ousli", "ous", m_positive),
            ("ization", "ize", m_positive),
            ("ation", "ate", m_positive),
            ("ator", "ate", m_positive),
            ("alism", "al", m_positive),
            ("iveness", "ive", m_positive),
            ("fulness", "ful", m_positive),
            ("ousness", "ous", m_positive),
            ("aliti", "al", m_positive),
            ("iviti", "ive", m_positive),
            ("biliti", "ble", m_positive),
            ("fulli", "ful", m_positive),
            ("logi", "log", logi_stem),
        ],
    )
}

/// `-icate`, `-ative`, `-alize`, `-iciti`, `-ical`, `-ful`, `-ness`.
fn step3(word: String) -> String {
    apply_first(
        word,
        &[
            ("icate", "ic", m_positive),
            ("ative", "", m_positive),
            ("alize", "al", m_positive),
            ("iciti", "ic", m_positive),
            ("ical", "ic", m_positive),
            ("ful", "", m_positive),
            ("ness", "", m_positive),
        ],
    )
}

/// Removes the remaining derivational suffixes from stems of measure above one.
fn step4(word: String) -> String {
    fn ion_stem(stem: &str) -> bool {
        m_above_one(stem) && matches!(stem.chars().last(), Some('s' | 't'))
    }
    apply_first(
        word,
        &[
            ("al", "", m_above_one),
            ("ance", "", m_above_one),
            ("ence", "", m_above_one),
            ("er", "", m_above_one),
            ("ic", "", m_above_one),
            ("able", "", m_above_one),
            ("ible", "", m_above_one),
            ("ant", "", m_above_one),
            ("ement", "", m_above_one),
            ("ment", "", m_above_one),
            ("ent", "", m_above_one),
            ("ion", "", ion_stem),
            ("ou", "", m_above_one),
            ("ism", "", m_above_one),
            ("ate", "", m_above_one),
            ("iti", "", m_above_one),
            ("ous", "", m_above_one),
            ("ive", "", m_above_one),
            ("ize", "", m_above_one),
        ],
    )
}

/// Drops a final `e` from long stems, and from measure-one stems not ending in `*o`.
fn step5a(word: String) -> String {
    if let Some(stem) = word.strip_suffix('e') {
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            return stem.to_owned();
        }
    }
    word
}

/// `-ll → -l` in long words.
fn step5b(word: String) -> String {
    fn long_stem(stem: &str) -> bool {
        measure_with_l(stem) > 1
    }
    apply_first(word, &[("ll", "l", long_stem)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_follows_the_paper_examples() {
        for (word, m) in [
            ("tr", 0),
            ("ee", 0),
            ("tree", 0),
            ("y", 0),
            ("by", 0),
            ("trouble", 1),
            ("oats", 1),
            ("trees", 1),
            ("ivy", 1),
            ("troubles", 2),
            ("private", 2),
            ("oaten", 2),
            ("orrery", 2),
        ] {
            assert_eq!(measure(word), m, "{word}");
        }
    }

    #[test]
    fn y_alternates_between_consonant_and_vowel() {
        let flags: Vec<bool> = consonants("syzygy").collect();
        assert_eq!(flags, [true, false, true, false, true, false]);
        let flags: Vec<bool> = consonants("yyyy").collect();
        assert_eq!(flags, [true, false, true, false]);
    }
}
