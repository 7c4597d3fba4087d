//! Voice capture: a live transcript segment that starts with a trigger phrase ("remember that …")
//! becomes a memory at once.

/// The phrases used when none are configured. Longer phrases first, so "remember that" wins over a
/// shorter phrase it contains.
pub const DEFAULT_TRIGGERS: [&str; 3] =
    ["angel, remember that", "angel, remember", "remember that"];

/// The words of `text` with their byte ranges; punctuation separates words and is not part of them.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
}

/// What to remember, if the segment starts with one of the trigger phrases: the text after the phrase,
/// compared word by word ignoring case and punctuation ("Angel: remember…" matches "angel, remember").
pub fn capture<S: AsRef<str>>(text: &str, triggers: &[S]) -> Option<String> {
    let mut triggers: Vec<&str> = triggers.iter().map(AsRef::as_ref).collect();
    triggers.sort_by_key(|t| std::cmp::Reverse(t.split_whitespace().count()));
    for trigger in triggers {
        let wanted: Vec<String> = words(trigger).map(|(_, w)| w.to_lowercase()).collect();
        if wanted.is_empty() {
            continue;
        }
        let spoken: Vec<(usize, &str)> = words(text).take(wanted.len()).collect();
        let matches = spoken.len() == wanted.len()
            && spoken
                .iter()
                .zip(&wanted)
                .all(|((_, s), w)| s.to_lowercase() == *w);
        if !matches {
            continue;
        }
        let (start, last) = spoken[spoken.len() - 1];
        let rest = text[start + last.len()..]
            .trim_start_matches(|c: char| c.is_whitespace() || ",:;-—.".contains(c))
            .trim();
        if !rest.is_empty() {
            return Some(rest.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_to_remember() {
        let t = DEFAULT_TRIGGERS;
        assert_eq!(
            capture("Remember that Sam's birthday is May 3rd.", &t).as_deref(),
            Some("Sam's birthday is May 3rd.")
        );
        assert_eq!(
            capture("Angel, remember: the wifi password is on the fridge", &t).as_deref(),
            Some("the wifi password is on the fridge")
        );
        assert_eq!(
            capture("angel remember that I parked on level 3", &t).as_deref(),
            Some("I parked on level 3")
        );
        assert_eq!(
            capture("  ...remember that, the keys are in the drawer", &t).as_deref(),
            Some("the keys are in the drawer")
        );
        assert_eq!(
            capture("Do you remember that place?", &t),
            None,
            "only at the start"
        );
        assert_eq!(capture("Remember that", &t), None, "nothing to remember");
        assert_eq!(capture("Rememberthat x", &t), None);
        assert_eq!(
            capture("note to self: buy milk", &["note to self"]).as_deref(),
            Some("buy milk")
        );
    }
}
