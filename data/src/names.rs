//! Deterministic business names from fixed word lists.

use crate::SplitMix64;
use crate::category::{Category, Style};

#[rustfmt::skip]
const ADJECTIVES: &[&str] = &[
    "Golden", "Silver", "Royal", "Green", "Blue", "Red", "Happy", "Lucky", "Old", "New", "Little",
    "Grand", "Sunny", "Urban", "Corner", "Northern", "Southern", "Central", "Bright", "Quiet",
    "Friendly", "Fresh", "Wild", "Rustic", "Modern", "Classic", "Crystal", "Jade", "Ivory", "Coral",
    "Amber", "Velvet", "Cozy", "Hidden", "Twin", "Morning", "Evening", "Harvest", "Emerald",
    "Sapphire",
];

#[rustfmt::skip]
const THINGS: &[&str] = &[
    "Lotus", "Oak", "Maple", "Lantern", "Harbor", "Garden", "Olive", "Dragon", "Phoenix", "Anchor",
    "Bridge", "Willow", "Pine", "River", "Mountain", "Lion", "Tiger", "Crown", "Sparrow", "Fox",
    "Bear", "Rose", "Lily", "Orchid", "Bamboo", "Palm", "Cedar", "Falcon", "Compass", "Horizon",
    "Meadow", "Stone", "Moon", "Sun", "Spoon", "Kettle", "Barrel", "Bell", "Mill", "Fountain",
];

#[rustfmt::skip]
const SURNAMES: &[&str] = &[
    "Smith", "Garcia", "Chen", "Wang", "Kumar", "Singh", "Müller", "Rossi", "Silva", "Nguyen",
    "Kim", "Tanaka", "Ivanov", "Kowalski", "Dubois", "Hansen", "Okafor", "Mensah", "Haddad",
    "Yilmaz", "Santos", "Fernandez", "Lopez", "Martin", "Novak", "Jensen", "Cohen", "Ali", "Khan",
    "Patel", "Sato", "Park", "Lee", "Murphy", "O'Brien", "Schmidt", "Andersson", "Costa", "Moreau",
    "Petrov",
];

#[rustfmt::skip]
const BRANDS: &[&str] = &[
    "Northstar", "Meridian", "Summit", "Pioneer", "Atlas", "Unity", "Keystone", "Liberty",
    "Horizon", "Crescent", "Evergreen", "Sterling", "Frontier", "Pinnacle", "Beacon", "Zenith",
    "Harbor", "Vista", "Apex", "Orion",
];

#[rustfmt::skip]
const QUARTERS: &[&str] = &[
    "North", "South", "East", "West", "Central", "Old Town", "Main",
];

fn word(rng: &mut SplitMix64, list: &'static [&'static str]) -> &'static str {
    // Lists are short, so the index always fits and is in range.
    let i = usize::try_from(rng.below(list.len() as u64)).unwrap_or(0);
    list.get(i).copied().unwrap_or("")
}

/// Appends the words to `out`, separated by single spaces.
fn push_words(out: &mut String, words: &[&str]) {
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
}

/// Builds a name for a business of `category` near the city named by `city()` (called
/// only when the name uses it), drawing from `rng`.
pub(crate) fn build<'c>(
    rng: &mut SplitMix64,
    category: &Category,
    city: impl Fn() -> &'c str,
    out: &mut String,
) {
    let noun = word(rng, category.nouns);
    let pattern = rng.below(10);
    match category.style {
        Style::Eatery => match pattern {
            0..=3 => push_words(out, &[word(rng, ADJECTIVES), word(rng, THINGS), noun]),
            4..=5 => push_words(out, &["The", word(rng, ADJECTIVES), word(rng, THINGS)]),
            6..=7 => {
                out.push_str(word(rng, SURNAMES));
                out.push_str("'s ");
                out.push_str(noun);
            }
            8 => push_words(out, &[city(), noun]),
            _ => push_words(out, &["The", word(rng, THINGS), "&", word(rng, THINGS)]),
        },
        Style::Shop => match pattern {
            0..=3 => {
                out.push_str(word(rng, SURNAMES));
                out.push_str("'s ");
                out.push_str(noun);
            }
            4..=5 => push_words(out, &[word(rng, ADJECTIVES), noun]),
            6..=7 => push_words(out, &[city(), noun]),
            _ => push_words(out, &[word(rng, THINGS), noun]),
        },
        Style::Brand => match pattern {
            0..=4 => push_words(out, &[word(rng, BRANDS), noun]),
            5..=6 => push_words(out, &[city(), noun]),
            _ => push_words(out, &[word(rng, ADJECTIVES), word(rng, THINGS), noun]),
        },
        Style::Practice => match pattern {
            0..=3 => push_words(out, &[word(rng, SURNAMES), noun]),
            4..=5 => push_words(out, &[city(), noun]),
            6..=7 => push_words(out, &[word(rng, SURNAMES), "&", word(rng, SURNAMES), noun]),
            _ => push_words(out, &[word(rng, ADJECTIVES), noun]),
        },
        Style::Civic => match pattern {
            0..=4 => push_words(out, &[city(), noun]),
            5..=7 => push_words(out, &[word(rng, SURNAMES), noun]),
            _ => push_words(out, &[word(rng, ADJECTIVES), word(rng, THINGS), noun]),
        },
        Style::Post => match pattern {
            0..=5 => push_words(out, &[city(), noun]),
            _ => push_words(out, &[city(), word(rng, QUARTERS), noun]),
        },
        Style::Atm => match pattern {
            0..=5 => push_words(out, &[word(rng, BRANDS), "Bank", noun]),
            _ => push_words(out, &[city(), noun]),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CATEGORIES;

    #[test]
    fn names_are_nonempty_and_deterministic() {
        for (i, c) in CATEGORIES.iter().enumerate() {
            for k in 0..50u64 {
                let mut a = String::new();
                let mut b = String::new();
                build(
                    &mut SplitMix64::new(k * 100 + i as u64),
                    c,
                    || "Springfield",
                    &mut a,
                );
                build(
                    &mut SplitMix64::new(k * 100 + i as u64),
                    c,
                    || "Springfield",
                    &mut b,
                );
                assert_eq!(a, b);
                assert!(
                    a.len() >= 4 && !a.starts_with(' ') && !a.ends_with(' ') && !a.contains("  ")
                );
            }
        }
    }
}
