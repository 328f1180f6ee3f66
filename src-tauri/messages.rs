//! The texts the app's Rust side shows people (its desktop notifications), through one
//! catalogue per language like the UI's `t()`: English first; another language is another
//! table, chosen from the environment's locale.

/// A language the app speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// English, the first and the fallback.
    English,
}

impl Language {
    /// From the POSIX locale (`LC_ALL`, `LC_MESSAGES`, `LANG`); English where none is known.
    pub fn from_env() -> Self {
        Self::English
    }

    fn table(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::English => ENGLISH,
        }
    }
}

const ENGLISH: &[(&str, &str)] = &[
    (
        "notice.kiosk-booking.title",
        "New kiosk booking: {patient}, {time}",
    ),
    (
        "notice.kiosk-booking.body",
        "{day} — waiting for your confirmation. {reason}",
    ),
    (
        "notice.kiosk-booking.body-private",
        "{day} — waiting for your confirmation.",
    ),
    ("notice.a-patient", "a patient"),
    ("notice.admin-update.title", "Update from {from}: {title}"),
    (
        "notice.admin-update.body",
        "Open CareBridge to read and acknowledge it.",
    ),
    (
        "notice.transmission-failed.title",
        "Not delivered to {peer}",
    ),
    ("notice.transmission-failed.body", "{summary} — {error}"),
    (
        "notice.transmission-failed.body-private",
        "Open CareBridge for details.",
    ),
    (
        "notice.transmission-overdue.title",
        "Still not delivered to {peer}",
    ),
    (
        "notice.transmission-overdue.body",
        "Waiting since {time} after {attempts} attempts: {error}",
    ),
    (
        "notice.reports-received.title",
        "Reports received from {source}",
    ),
    (
        "notice.reports-received.body",
        "{count} report(s) waiting for review.",
    ),
    // chrono format strings for the notice's day and time.
    ("format.day", "%A %-d %B"),
    ("format.time", "%H:%M"),
];

/// The text for `key` in `language`, with `{name}` replaced by the values given. A key the
/// table lacks comes back as itself, so a gap shows rather than hides.
pub fn text(language: Language, key: &str, values: &[(&str, &str)]) -> String {
    let template = language
        .table()
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .unwrap_or(key);
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fill_their_places_and_a_missing_key_shows_itself() {
        assert_eq!(
            text(
                Language::English,
                "notice.kiosk-booking.title",
                &[("patient", "Anna Jansen"), ("time", "10:30")]
            ),
            "New kiosk booking: Anna Jansen, 10:30"
        );
        assert_eq!(text(Language::English, "no.such.key", &[]), "no.such.key");
    }

    #[test]
    fn every_english_key_is_unique() {
        let mut keys: Vec<_> = ENGLISH.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len());
    }
}
