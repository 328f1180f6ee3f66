//! The rules for text that people type: one home for the node and the client core.
//!
//! Every write that carries free text (names, reasons, report sections, labels, update texts)
//! goes through [`Clean::clean`] before anything decides on it: the node's `Json` extractor
//! calls it for every body, and the client core calls it before queueing an offline write, so
//! both refuse the same input with the same field named.
//!
//! The rules (issue "hardening: bad input", December 2026):
//! - **NFC.** Text is stored in Unicode Normalisation Form C, so that "é" typed as one code
//!   point or as "e" + combining accent is the same name to search, compare and sign.
//!   Normalising comes first; the other rules judge the normalised text.
//! - **No control characters** (Unicode category Cc: C0, DEL, C1). They are invisible on
//!   screen, break CSV and PDF exports, and were seen in a family name. Only the multi-line
//!   fields ([`Shape::Lines`]: report findings and conclusion, an admin update's body) may
//!   hold a line feed or a tab; a carriage return is refused there too (browsers send `\n`).
//! - **Bounded lengths**, counted in characters (Unicode scalar values) of the NFC text.
//! - **E-mail**: `local@domain`, no whitespace or control characters, exactly one `@`, a
//!   non-empty local part, and a domain with a dot that neither starts nor ends the domain.
//!   Deliberately simple: it catches typing mistakes, not every address RFC 5322 allows.
//! - **Phone**: only digits, spaces and `+ - ( )`, with 6 to 20 digits.
//!
//! Lone surrogates cannot reach a Rust `String` at all: `serde_json` refuses a `"\ud800"`
//! escape and invalid UTF-8 while parsing, and the node answers that as a validation problem
//! naming the field (`api/extract.rs`).

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use crate::problem::FieldError;

/// The longest person's name part (family name, given names).
pub const PERSON_NAME_MAX: usize = 100;
/// The longest display name of a staff account.
pub const DISPLAY_NAME_MAX: usize = 200;
/// The longest reason (for a visit, an override, a cancellation, an absence, an error).
pub const REASON_MAX: usize = 500;
/// The longest title (of a report, of an admin update).
pub const TITLE_MAX: usize = 200;
/// The longest report section (findings, conclusion).
pub const REPORT_SECTION_MAX: usize = 20_000;
/// The longest admin update body.
pub const UPDATE_BODY_MAX: usize = 5_000;
/// The longest kiosk device label.
pub const LABEL_MAX: usize = 100;
/// The longest peer (node) name given in a request.
pub const PEER_NAME_MAX: usize = 100;
/// The longest e-mail address.
pub const EMAIL_MAX: usize = 200;
/// The longest telephone number as typed (with spaces and punctuation).
pub const PHONE_MAX: usize = 40;
/// The fewest and most digits in a telephone number.
pub const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 6..=20;

/// Whether a field holds one line or several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One line: no control character at all.
    Line,
    /// Several lines: line feeds and tabs allowed, no other control character.
    Lines,
}

/// Why a text is refused; its `Display` is the message shown beside the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// A control character (e.g. U+0001), at this character position (0-based).
    #[error("must not contain control characters (U+{code:04X} at position {at})")]
    ControlCharacter {
        /// The character's code point.
        code: u32,
        /// Its position in the text, in characters.
        at: usize,
    },
    /// Longer than allowed.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Not `local@domain.tld`.
    #[error("must be an e-mail address like name@example.org (no spaces)")]
    Email,
    /// Not a telephone number.
    #[error("must be a telephone number: 6 to 20 digits, with only spaces, +, -, ( and )")]
    Phone,
}

/// `s` in Unicode Normalisation Form C (borrowed work only when it is not already).
pub fn nfc(s: &str) -> String {
    if is_nfc_quick(s.chars()) == IsNormalized::Yes {
        s.to_owned()
    } else {
        s.nfc().collect()
    }
}

/// Checks text already in NFC against the control-character rule of `shape` and `max`.
pub fn check(s: &str, shape: Shape, max: usize) -> Result<(), TextError> {
    if let Some((at, c)) = s
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !(shape == Shape::Lines && matches!(c, '\n' | '\t')))
    {
        return Err(TextError::ControlCharacter {
            code: u32::from(c),
            at,
        });
    }
    if s.chars().count() > max {
        return Err(TextError::TooLong { max });
    }
    Ok(())
}

/// Checks an e-mail address's shape (see the module doc for the rule).
pub fn check_email(s: &str) -> Result<(), TextError> {
    if s.chars().count() > EMAIL_MAX {
        return Err(TextError::TooLong { max: EMAIL_MAX });
    }
    let Some((local, domain)) = s.split_once('@') else {
        return Err(TextError::Email);
    };
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '@';
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || local.chars().any(bad) || domain.chars().any(bad) || !domain_ok {
        return Err(TextError::Email);
    }
    Ok(())
}

/// Checks a telephone number's shape (see the module doc for the rule).
pub fn check_phone(s: &str) -> Result<(), TextError> {
    if s.chars().count() > PHONE_MAX {
        return Err(TextError::TooLong { max: PHONE_MAX });
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')'))
    {
        return Err(TextError::Phone);
    }
    if !PHONE_DIGITS.contains(&s.chars().filter(char::is_ascii_digit).count()) {
        return Err(TextError::Phone);
    }
    Ok(())
}

/// Normalises one field to NFC in place and checks it; the error names the field.
pub fn clean(field: &str, s: &mut String, shape: Shape, max: usize) -> Result<(), FieldError> {
    *s = nfc(s);
    check(s, shape, max).map_err(|e| FieldError {
        field: field.to_owned(),
        message: e.to_string(),
    })
}

/// Free text in a request: normalised to NFC and checked against the text rules in place.
///
/// Implemented by every request body the node accepts as JSON; a body without free text
/// (times, ids, flags) implements it as a no-op, so that a new body must decide.
pub trait Clean {
    /// Normalises every free-text field to NFC and checks the text rules; lists every wrong
    /// field by its name in the request (`content.title` for a nested one).
    fn clean(&mut self) -> Result<(), Vec<FieldError>>;
}

/// Collects the wrong fields of one request while cleaning it.
#[derive(Debug, Default)]
pub struct Checks {
    prefix: String,
    errors: Vec<FieldError>,
}

impl Checks {
    /// Checks whose field names are prefixed (`content.`), for a nested object.
    pub fn within(prefix: &str) -> Self {
        Self {
            prefix: format!("{prefix}."),
            errors: Vec::new(),
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    /// A required or optional text field: NFC, then the rules of `shape` and `max`.
    pub fn text(&mut self, field: &str, s: &mut String, shape: Shape, max: usize) -> &mut Self {
        if let Err(e) = clean(&self.name(field), s, shape, max) {
            self.errors.push(e);
        }
        self
    }

    /// A one-line field, if present.
    pub fn line_opt(&mut self, field: &str, s: &mut Option<String>, max: usize) -> &mut Self {
        if let Some(s) = s {
            self.text(field, s, Shape::Line, max);
        }
        self
    }

    /// A one-line field.
    pub fn line(&mut self, field: &str, s: &mut String, max: usize) -> &mut Self {
        self.text(field, s, Shape::Line, max)
    }

    /// An e-mail address, if present and not blank (blank clears it where allowed).
    pub fn email(&mut self, field: &str, s: &mut Option<String>) -> &mut Self {
        self.formatted(field, s, check_email)
    }

    /// A telephone number, if present and not blank (blank clears it where allowed).
    pub fn phone(&mut self, field: &str, s: &mut Option<String>) -> &mut Self {
        self.formatted(field, s, check_phone)
    }

    fn formatted(
        &mut self,
        field: &str,
        s: &mut Option<String>,
        rule: fn(&str) -> Result<(), TextError>,
    ) -> &mut Self {
        let Some(s) = s else { return self };
        let before = self.errors.len();
        self.text(field, s, Shape::Line, usize::MAX);
        let value = s.trim();
        if self.errors.len() == before
            && !value.is_empty()
            && let Err(e) = rule(value)
        {
            self.errors.push(FieldError {
                field: self.name(field),
                message: e.to_string(),
            });
        }
        self
    }

    /// Adds the errors of a nested object's checks.
    pub fn nested(&mut self, inner: Result<(), Vec<FieldError>>) -> &mut Self {
        if let Err(mut e) = inner {
            self.errors.append(&mut e);
        }
        self
    }

    /// The wrong fields, if any.
    pub fn finish(&mut self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(std::mem::take(&mut self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use proptest::prelude::*;

    use super::*;
    use crate::patient::NewPatient;
    use crate::report::{NewReport, ReportContent};

    #[test]
    fn decomposed_text_is_composed() {
        let decomposed = "Mu\u{0308}ller Jose\u{0301}";
        assert_eq!(nfc(decomposed), "M\u{00FC}ller Jos\u{00E9}");
        assert_eq!(nfc("Müller"), "Müller");
    }

    #[test]
    fn a_line_refuses_every_control_character_and_names_where() {
        for c in ['\u{1}', '\n', '\t', '\r', '\u{7F}', '\u{85}', '\u{9F}'] {
            let s = format!("ab{c}");
            assert_eq!(
                check(&s, Shape::Line, 100),
                Err(TextError::ControlCharacter {
                    code: u32::from(c),
                    at: 2
                }),
                "{c:?}"
            );
        }
        assert_eq!(check("Anne-Marie O'Neil", Shape::Line, 100), Ok(()));
    }

    #[test]
    fn lines_allow_line_feed_and_tab_only() {
        assert_eq!(check("a\n\tb", Shape::Lines, 100), Ok(()));
        for c in ['\r', '\u{0}', '\u{1B}', '\u{7F}'] {
            assert!(
                check(&format!("a\n{c}"), Shape::Lines, 100).is_err(),
                "{c:?}"
            );
        }
    }

    #[test]
    fn length_is_counted_in_characters_after_nfc() {
        assert_eq!(check(&"é".repeat(5), Shape::Line, 5), Ok(()));
        assert_eq!(
            check(&"é".repeat(6), Shape::Line, 5),
            Err(TextError::TooLong { max: 5 })
        );
        let mut decomposed = "e\u{0301}".repeat(5);
        assert_eq!(clean("f", &mut decomposed, Shape::Line, 5), Ok(()));
        assert_eq!(decomposed, "é".repeat(5));
    }

    #[test]
    fn emails_need_one_at_and_a_dotted_domain_without_spaces() {
        for ok in ["a@b.co", "anne.o'neil+x@mail.example.org", "ü@exämple.de"] {
            assert_eq!(check_email(ok), Ok(()), "{ok}");
        }
        for bad in [
            "anne",
            "@b.co",
            "a@b",
            "a@.b",
            "a@b.",
            "a@b..c",
            "a@@b.co",
            "a@b@c.co",
            "a b@c.co",
            "a@b c.co",
            "a@b.co\u{1}",
        ] {
            assert_eq!(check_email(bad), Err(TextError::Email), "{bad}");
        }
        let long = format!("{}@b.co", "a".repeat(EMAIL_MAX));
        assert_eq!(
            check_email(&long),
            Err(TextError::TooLong { max: EMAIL_MAX })
        );
    }

    #[test]
    fn phones_are_six_to_twenty_digits_with_plain_punctuation() {
        for ok in ["+44 (20) 7946-0958", "123456", "12345678901234567890"] {
            assert_eq!(check_phone(ok), Ok(()), "{ok}");
        }
        for bad in [
            "12345",
            "123456789012345678901",
            "0207 946 0958 ext 2",
            "0207.946.0958",
            "+44 20 7946 0958\u{1}",
            "０２０７９４６０９５８",
        ] {
            assert_eq!(check_phone(bad), Err(TextError::Phone), "{bad}");
        }
    }

    #[test]
    fn checks_name_nested_fields_and_skip_blank_optional_formats() {
        let mut title = "X\u{1}".to_owned();
        let mut email = Some(String::new());
        let mut phone = Some("12".to_owned());
        let errors = Checks::within("content")
            .line("title", &mut title, 10)
            .email("email", &mut email)
            .phone("phone", &mut phone)
            .finish()
            .expect_err("two fields are wrong");
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["content.title", "content.phone"]);
    }

    #[test]
    fn a_new_patient_is_composed_and_every_wrong_field_listed() {
        let mut p = NewPatient {
            id: None,
            family_name: "Mu\u{308}ller".into(),
            given_name: "Ev\u{1}a".into(),
            birth_date: NaiveDate::from_ymd_opt(1980, 1, 2).unwrap_or_default(),
            phone: Some("12-34".into()),
            email: Some("eva@example".into()),
            card_number: None,
            confirm_duplicate: false,
        };
        let errors = p.clean().expect_err("three fields are wrong");
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["given_name", "phone", "email"]);
        assert_eq!(p.family_name, "M\u{fc}ller");
    }

    #[test]
    fn report_content_is_named_under_content_and_keeps_its_lines() {
        let mut r = NewReport {
            id: None,
            patient_id: crate::PatientId::new(),
            content: ReportContent {
                title: "X-ray".into(),
                findings: "One\n\tTwo".into(),
                conclusion: "Fine\r".into(),
                codes: vec!["J18.9".into(), "J\u{0}".into()],
            },
        };
        let errors = r.clean().expect_err("two fields are wrong");
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["content.conclusion", "content.codes"]);
    }

    proptest! {
        /// Normalising is idempotent, so the node cleaning what a client already cleaned
        /// changes nothing (and an idempotent repeat keeps its fingerprint).
        #[test]
        fn cleaning_twice_is_cleaning_once(s in "\\PC*|[a-z\u{300}-\u{36f}\u{1}\n]{0,20}") {
            let once = nfc(&s);
            prop_assert_eq!(nfc(&once), once.clone());
            let mut a = s.clone();
            let first = clean("f", &mut a, Shape::Lines, 1000);
            let mut b = a.clone();
            prop_assert_eq!(clean("f", &mut b, Shape::Lines, 1000), first);
            prop_assert_eq!(a, b);
        }

        /// Whatever a one-line field accepts, a multi-line field accepts too.
        #[test]
        fn a_line_is_also_valid_lines(s in "\\PC*|[a-z\u{1}\n\t\r]{0,20}") {
            if check(&s, Shape::Line, 100).is_ok() {
                prop_assert!(check(&s, Shape::Lines, 100).is_ok());
            }
        }
    }
}
