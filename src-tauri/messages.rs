//! The texts the app's Rust side shows people (its desktop notifications), through one
//! catalogue per language like the UI's `t()`: English and Dutch. The language is the one the
//! UI speaks (the app's switch, `status::set_language`), at start the OS locale's.

use std::sync::atomic::{AtomicU8, Ordering};

/// A language the app speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// English, the first and the fallback.
    English,
    /// Dutch.
    Dutch,
}

impl Language {
    /// The language of a BCP 47 tag (`nl`, `nl-BE`) or a POSIX locale (`nl_NL.UTF-8`), by its
    /// language part; `None` for one the app does not speak.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let language = tag.split(['-', '_', '.', '@']).next()?.to_ascii_lowercase();
        match language.as_str() {
            "en" => Some(Self::English),
            "nl" => Some(Self::Dutch),
            _ => None,
        }
    }

    /// From the POSIX locale: the first of `LC_ALL`, `LC_MESSAGES`, `LANG` that is set decides
    /// (as for any program); English where it names a language the app does not speak.
    pub fn from_env() -> Self {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|var| std::env::var(var).ok())
            .find(|v| !v.is_empty())
            .and_then(|v| Self::from_tag(&v))
            .unwrap_or(Self::English)
    }

    fn table(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::English => ENGLISH,
            Self::Dutch => DUTCH,
        }
    }
}

/// The language the notifications speak, shared by the command that changes it and the
/// notifier that reads it at each notice.
#[derive(Debug)]
pub struct SharedLanguage(AtomicU8);

impl SharedLanguage {
    /// Starting in `language`.
    pub fn new(language: Language) -> Self {
        Self(AtomicU8::new(language as u8))
    }

    /// The language now.
    pub fn get(&self) -> Language {
        match self.0.load(Ordering::Relaxed) {
            x if x == Language::Dutch as u8 => Language::Dutch,
            _ => Language::English,
        }
    }

    /// Switches to `language`.
    pub fn set(&self, language: Language) {
        self.0.store(language as u8, Ordering::Relaxed);
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
    (
        "notice.study-available.title",
        "Imaging study ready: {patient}",
    ),
    (
        "notice.study-available.body",
        "{modality}, {images} image(s). {description}",
    ),
    (
        "notice.emergency-access.title",
        "Emergency access granted to {organisation}",
    ),
    (
        "notice.emergency-access.body",
        "{doctor} may read a patient's record until {until}, without the patient's approval. The patient is e-mailed; review it under Patients.",
    ),
    (
        "notice.emergency-access.body-private",
        "A patient's record may be read until {until}. Open CareBridge for details.",
    ),
    // chrono format strings for the notice's day and time.
    ("format.day", "%A %-d %B"),
    ("format.time", "%H:%M"),
];

const DUTCH: &[(&str, &str)] = &[
    (
        "notice.kiosk-booking.title",
        "Nieuwe boeking via de zuil: {patient}, {time}",
    ),
    (
        "notice.kiosk-booking.body",
        "{day} — wacht op uw bevestiging. {reason}",
    ),
    (
        "notice.kiosk-booking.body-private",
        "{day} — wacht op uw bevestiging.",
    ),
    ("notice.a-patient", "een patiënt"),
    ("notice.admin-update.title", "Bericht van {from}: {title}"),
    (
        "notice.admin-update.body",
        "Open CareBridge om het te lezen en als gelezen te markeren.",
    ),
    (
        "notice.transmission-failed.title",
        "Niet afgeleverd bij {peer}",
    ),
    ("notice.transmission-failed.body", "{summary} — {error}"),
    (
        "notice.transmission-failed.body-private",
        "Open CareBridge voor de details.",
    ),
    (
        "notice.transmission-overdue.title",
        "Nog steeds niet afgeleverd bij {peer}",
    ),
    (
        "notice.transmission-overdue.body",
        "Wacht sinds {time}, na {attempts} pogingen: {error}",
    ),
    (
        "notice.reports-received.title",
        "Verslagen ontvangen van {source}",
    ),
    (
        "notice.reports-received.body",
        "{count} verslag(en) wachten op beoordeling.",
    ),
    (
        "notice.study-available.title",
        "Beeldvormend onderzoek klaar: {patient}",
    ),
    (
        "notice.study-available.body",
        "{modality}, {images} beeld(en). {description}",
    ),
    (
        "notice.emergency-access.title",
        "Spoedinzage verleend aan {organisation}",
    ),
    (
        "notice.emergency-access.body",
        "{doctor} mag tot {until} het dossier van een patiënt inzien, zonder toestemming van de patiënt. De patiënt krijgt een e-mail; bekijk het onder Patiënten.",
    ),
    (
        "notice.emergency-access.body-private",
        "Het dossier van een patiënt mag tot {until} worden ingezien. Open CareBridge voor de details.",
    ),
    // The day is written from the names below (chrono names days and months in English only).
    ("format.day", "{weekday} %-d {month}"),
    ("format.time", "%H:%M"),
];

/// Dutch names of the days (Monday first, as `chrono::Weekday::num_days_from_monday`) and the
/// months, for `format.day`'s `{weekday}` and `{month}`.
const DUTCH_WEEKDAYS: [&str; 7] = [
    "maandag",
    "dinsdag",
    "woensdag",
    "donderdag",
    "vrijdag",
    "zaterdag",
    "zondag",
];
const DUTCH_MONTHS: [&str; 12] = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];

/// A day as a notice names it ("Tuesday 24 November", "dinsdag 24 november").
pub fn day(language: Language, date: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    let pattern = text(language, "format.day", &[]);
    let pattern = match language {
        Language::English => pattern,
        Language::Dutch => pattern
            .replace(
                "{weekday}",
                DUTCH_WEEKDAYS[date.weekday().num_days_from_monday() as usize],
            )
            .replace("{month}", DUTCH_MONTHS[date.month0() as usize]),
    };
    date.format(&pattern).to_string()
}

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
    fn every_key_is_unique_in_each_language() {
        for table in [ENGLISH, DUTCH] {
            let mut keys: Vec<_> = table.iter().map(|(k, _)| *k).collect();
            keys.sort_unstable();
            let before = keys.len();
            keys.dedup();
            assert_eq!(before, keys.len());
        }
    }

    #[test]
    fn dutch_has_exactly_the_english_keys_with_the_same_places() {
        let places = |t: &str| {
            let mut p: Vec<String> = t
                .split('{')
                .skip(1)
                .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
                .collect();
            p.sort();
            p
        };
        fn keys(table: &[(&'static str, &'static str)]) -> Vec<&'static str> {
            let mut k: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
            k.sort_unstable();
            k
        }
        assert_eq!(keys(ENGLISH), keys(DUTCH));
        for (key, english) in ENGLISH {
            if *key == "format.day" {
                continue; // the Dutch day is built from its own names
            }
            assert_eq!(
                places(english),
                places(&text(Language::Dutch, key, &[])),
                "{key}"
            );
        }
    }

    #[test]
    fn a_locale_names_its_language_by_its_language_part() {
        assert_eq!(Language::from_tag("nl_NL.UTF-8"), Some(Language::Dutch));
        assert_eq!(Language::from_tag("nl-BE"), Some(Language::Dutch));
        assert_eq!(Language::from_tag("nl"), Some(Language::Dutch));
        assert_eq!(Language::from_tag("en_GB.UTF-8"), Some(Language::English));
        assert_eq!(Language::from_tag("fr_FR.UTF-8"), None);
        assert_eq!(Language::from_tag("C.UTF-8"), None);
        assert_eq!(Language::from_tag(""), None);
    }

    #[test]
    fn a_day_reads_in_each_language() {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).expect("a date");
        assert_eq!(day(Language::English, date), "Tuesday 24 November");
        assert_eq!(day(Language::Dutch, date), "dinsdag 24 november");
        let sunday = chrono::NaiveDate::from_ymd_opt(2026, 5, 3).expect("a date");
        assert_eq!(day(Language::Dutch, sunday), "zondag 3 mei");
    }

    #[test]
    fn the_shared_language_switches() {
        let shared = SharedLanguage::new(Language::English);
        shared.set(Language::Dutch);
        assert_eq!(shared.get(), Language::Dutch);
        shared.set(Language::English);
        assert_eq!(shared.get(), Language::English);
    }
}
