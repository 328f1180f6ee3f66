//! A medical report as a PDF.
//!
//! The page says who issued it (the organisation), whom it is about (the patient), who wrote
//! it, its status and revision, and for a signed revision the signature's time and
//! fingerprint, so a printed copy can be matched to the record it came from. Text is set in
//! an embedded TrueType font (any Unicode name prints) by krilla; this crate only lays it out:
//! words wrapped to the column, pages broken between lines, "page n of m" at the foot.

use std::path::{Path, PathBuf};

use carebridge_protocol::ReportId;
use carebridge_protocol::report::{ReportContent, ReportSignature, ReportStatus};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use krilla::Document;
use krilla::color::luma;
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use skrifa::MetadataProvider as _;
use skrifa::instance::{LocationRef, Size};

/// Why a PDF could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// No usable font file.
    #[error(
        "no font to render reports with: install fonts-dejavu-core (or set the report font): looked for {0}"
    )]
    NoFont(String),
    /// A font file could not be read or is not a font.
    #[error("the font {0} could not be used: {1}")]
    BadFont(PathBuf, String),
    /// krilla refused the document.
    #[error("the PDF could not be written: {0}")]
    Write(String),
}

/// A regular and a bold face of one family.
#[derive(Clone)]
pub struct Fonts {
    regular: Face,
    bold: Face,
}

impl std::fmt::Debug for Fonts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fonts(..)")
    }
}

#[derive(Clone)]
struct Face {
    font: Font,
    data: std::sync::Arc<Vec<u8>>,
}

impl Face {
    fn load(path: &Path) -> Result<Self, PdfError> {
        let bytes =
            std::fs::read(path).map_err(|e| PdfError::BadFont(path.to_owned(), e.to_string()))?;
        let data = std::sync::Arc::new(bytes);
        skrifa::FontRef::new(&data)
            .map_err(|e| PdfError::BadFont(path.to_owned(), e.to_string()))?;
        let font = Font::new(data.clone().into(), 0).ok_or_else(|| {
            PdfError::BadFont(path.to_owned(), "not a font krilla can embed".into())
        })?;
        Ok(Self { font, data })
    }

    /// The advance width of `text` at `size` points, without kerning: a little generous,
    /// which is the safe side for wrapping.
    fn width(&self, text: &str, size: f32) -> f32 {
        let Ok(font) = skrifa::FontRef::new(&self.data) else {
            return 0.0;
        };
        let charmap = font.charmap();
        let metrics = font.glyph_metrics(Size::new(size), LocationRef::default());
        text.chars()
            .map(|c| {
                charmap
                    .map(c)
                    .and_then(|g| metrics.advance_width(g))
                    .unwrap_or(size * 0.6)
            })
            .sum()
    }
}

/// Families tried in order: (regular, bold) file paths as Debian and Fedora install them.
const SYSTEM_FONTS: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
    ),
];

impl Fonts {
    /// Loads a regular and a bold TrueType/OpenType file.
    pub fn from_files(regular: &Path, bold: &Path) -> Result<Self, PdfError> {
        Ok(Self {
            regular: Face::load(regular)?,
            bold: Face::load(bold)?,
        })
    }

    /// The first installed family of DejaVu Sans, Liberation Sans and Noto Sans.
    pub fn system() -> Result<Self, PdfError> {
        for (regular, bold) in SYSTEM_FONTS {
            let (r, b) = (Path::new(regular), Path::new(bold));
            if r.exists() && b.exists() {
                return Self::from_files(r, b);
            }
        }
        Err(PdfError::NoFont(
            SYSTEM_FONTS
                .iter()
                .map(|(r, _)| *r)
                .collect::<Vec<_>>()
                .join(", "),
        ))
    }
}

/// Everything printed about one report, at one revision (or its draft).
#[derive(Debug, Clone)]
pub struct ReportView<'a> {
    /// The organisation that issued it, e.g. "St Mary's Hospital".
    pub organisation: &'a str,
    /// The patient's full name.
    pub patient_name: &'a str,
    /// The patient's birth date, as the reader expects it.
    pub patient_birth_date: &'a str,
    /// The patient's global id (`<uuid>@<node>`).
    pub patient_global_id: &'a str,
    /// The report.
    pub report_id: ReportId,
    /// The status of what is printed.
    pub status: ReportStatus,
    /// The revision printed (0 for a draft).
    pub revision: u32,
    /// How many revisions the report has.
    pub revisions: u32,
    /// Who wrote what is printed.
    pub author_name: &'a str,
    /// What it says.
    pub content: &'a ReportContent,
    /// The node's signature over this revision.
    pub signature: Option<&'a ReportSignature>,
    /// Why the report was entered in error.
    pub error_reason: Option<&'a str>,
    /// When what is printed last changed.
    pub changed_at: DateTime<Utc>,
    /// The zone the times are printed in (the node's).
    pub time_zone: Tz,
}

const PAGE_W: f32 = 595.0; // A4, points
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;
const FOOTER: f32 = 28.0;
const COLUMN: f32 = PAGE_W - 2.0 * MARGIN;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Weight {
    Regular,
    Bold,
}

/// One laid-out line, or a rule across the column.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Text {
        text: String,
        weight: Weight,
        size: f32,
        grey: u8,
        space_before: f32,
    },
    Rule {
        space_before: f32,
    },
}

impl Block {
    fn height(&self) -> f32 {
        match self {
            Self::Text {
                size, space_before, ..
            } => space_before + size * 1.35,
            Self::Rule { space_before } => space_before + 8.0,
        }
    }
}

fn status_label(s: ReportStatus) -> &'static str {
    match s {
        ReportStatus::Preliminary => "Preliminary (draft, not signed)",
        ReportStatus::Final => "Final",
        ReportStatus::Amended => "Amended",
        ReportStatus::EnteredInError => "Entered in error",
    }
}

struct Layout<'f> {
    fonts: &'f Fonts,
    blocks: Vec<Block>,
}

impl Layout<'_> {
    fn face(&self, w: Weight) -> &Face {
        match w {
            Weight::Regular => &self.fonts.regular,
            Weight::Bold => &self.fonts.bold,
        }
    }

    /// Adds `text` wrapped to the column: at spaces where it can, inside a word longer than
    /// the column where it must. Line breaks in the text are kept.
    fn para(&mut self, text: &str, weight: Weight, size: f32, grey: u8, space_before: f32) {
        let mut first = true;
        for source_line in text.split('\n') {
            for line in self.wrap(source_line.trim_end(), weight, size) {
                self.blocks.push(Block::Text {
                    text: line,
                    weight,
                    size,
                    grey,
                    space_before: if first { space_before } else { 0.0 },
                });
                first = false;
            }
        }
    }

    fn wrap(&self, text: &str, weight: Weight, size: f32) -> Vec<String> {
        let face = self.face(weight);
        let fits = |s: &str| face.width(s, size) <= COLUMN;
        let mut lines = Vec::new();
        let mut line = String::new();
        for word in text.split(' ') {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if fits(&candidate) {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // A word wider than the column is cut where it must be.
            let mut rest = word.to_owned();
            while !fits(&rest) {
                let mut cut = String::new();
                for c in rest.chars() {
                    if !fits(&format!("{cut}{c}")) {
                        break;
                    }
                    cut.push(c);
                }
                if cut.is_empty() {
                    break;
                }
                rest = rest[cut.len()..].to_owned();
                lines.push(cut);
            }
            line = rest;
        }
        lines.push(line);
        lines
    }
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// Lays the report out as lines, before pagination.
fn layout(view: &ReportView<'_>, fonts: &Fonts) -> Vec<Block> {
    let mut l = Layout {
        fonts,
        blocks: Vec::new(),
    };
    l.para(view.organisation, Weight::Bold, 16.0, 0, 0.0);
    l.para("Medical report", Weight::Regular, 11.0, 90, 2.0);
    l.blocks.push(Block::Rule { space_before: 6.0 });

    l.para(
        &format!("Patient: {}", view.patient_name),
        Weight::Bold,
        11.0,
        0,
        4.0,
    );
    l.para(
        &format!("Born: {}", view.patient_birth_date),
        Weight::Regular,
        10.0,
        0,
        0.0,
    );
    l.para(
        &format!("Patient id: {}", view.patient_global_id),
        Weight::Regular,
        10.0,
        60,
        0.0,
    );
    l.blocks.push(Block::Rule { space_before: 6.0 });

    l.para(&view.content.title, Weight::Bold, 14.0, 0, 6.0);
    let version = if view.revision == 0 {
        "draft".to_owned()
    } else {
        format!("version {} of {}", view.revision, view.revisions)
    };
    l.para(
        &format!("Status: {} · {version}", status_label(view.status)),
        Weight::Regular,
        10.0,
        0,
        4.0,
    );
    l.para(
        &format!("Author: {}", view.author_name),
        Weight::Regular,
        10.0,
        0,
        0.0,
    );
    match view.signature {
        Some(sig) => {
            l.para(
                &format!(
                    "Signed by {} on the author's behalf: {}",
                    sig.node,
                    local(sig.signed_at, view.time_zone)
                ),
                Weight::Regular,
                10.0,
                0,
                0.0,
            );
            l.para(
                &format!("Signature fingerprint: {}", sig.fingerprint()),
                Weight::Regular,
                10.0,
                0,
                0.0,
            );
            l.para(
                &format!("Signing key: {}", sig.key_fingerprint),
                Weight::Regular,
                9.0,
                60,
                0.0,
            );
        }
        None => l.para(
            &format!(
                "Not signed · last saved {}",
                local(view.changed_at, view.time_zone)
            ),
            Weight::Regular,
            10.0,
            0,
            0.0,
        ),
    }
    if view.revision != 0 && view.revision < view.revisions {
        l.para(
            &format!(
                "SUPERSEDED: version {} of this report replaces this one",
                view.revisions
            ),
            Weight::Bold,
            11.0,
            0,
            6.0,
        );
    }
    if let Some(reason) = view.error_reason {
        l.para(
            &format!("ENTERED IN ERROR: {reason}"),
            Weight::Bold,
            11.0,
            0,
            6.0,
        );
    }
    for (heading, body) in [
        ("Findings", view.content.findings.as_str()),
        ("Conclusion", view.content.conclusion.as_str()),
    ] {
        l.para(heading, Weight::Bold, 12.0, 0, 12.0);
        let body = if body.trim().is_empty() { "—" } else { body };
        l.para(body, Weight::Regular, 11.0, 0, 2.0);
    }
    if !view.content.codes.is_empty() {
        l.para("Codes", Weight::Bold, 12.0, 0, 12.0);
        l.para(
            &view.content.codes.join(", "),
            Weight::Regular,
            11.0,
            0,
            2.0,
        );
    }
    l.blocks
}

/// Splits the lines into pages.
fn paginate(blocks: Vec<Block>) -> Vec<Vec<Block>> {
    let room = PAGE_H - 2.0 * MARGIN - FOOTER;
    let mut pages = vec![Vec::new()];
    let mut used = 0.0;
    for b in blocks {
        if used + b.height() > room && used > 0.0 {
            pages.push(Vec::new());
            used = 0.0;
        }
        used += b.height();
        if let Some(page) = pages.last_mut() {
            page.push(b);
        }
    }
    pages
}

fn grey_fill(level: u8) -> Fill {
    Fill {
        paint: luma::Color::new(level).into(),
        ..Fill::default()
    }
}

/// Renders the report.
pub fn render(view: &ReportView<'_>, fonts: &Fonts) -> Result<Vec<u8>, PdfError> {
    let pages = paginate(layout(view, fonts));
    let total = pages.len();
    let mut doc = Document::new();
    doc.set_metadata(
        Metadata::new()
            .title(format!("{} — {}", view.content.title, view.patient_name))
            .authors(vec![view.author_name.to_owned()])
            .creator("CareBridge".to_owned()),
    );
    for (n, blocks) in pages.into_iter().enumerate() {
        let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
            .ok_or_else(|| PdfError::Write("page size".into()))?;
        let mut page = doc.start_page_with(settings);
        let mut surface = page.surface();
        let mut y = MARGIN;
        for b in &blocks {
            match b {
                Block::Text {
                    text,
                    weight,
                    size,
                    grey,
                    space_before,
                } => {
                    y += space_before + size;
                    let face = match weight {
                        Weight::Regular => &fonts.regular,
                        Weight::Bold => &fonts.bold,
                    };
                    surface.set_fill(Some(grey_fill(*grey)));
                    surface.draw_text(
                        Point::from_xy(MARGIN, y),
                        face.font.clone(),
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    );
                    y += size * 0.35;
                }
                Block::Rule { space_before } => {
                    y += space_before + 4.0;
                    let mut pb = PathBuilder::new();
                    pb.move_to(MARGIN, y);
                    pb.line_to(PAGE_W - MARGIN, y);
                    if let Some(path) = pb.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: luma::Color::new(150).into(),
                            width: 0.75,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                        surface.set_stroke(None);
                    }
                    y += 4.0;
                }
            }
        }
        surface.set_fill(Some(grey_fill(90)));
        let foot = format!(
            "{} · report {} · page {} of {}",
            view.organisation,
            view.report_id,
            n + 1,
            total
        );
        surface.draw_text(
            Point::from_xy(MARGIN, PAGE_H - MARGIN + 8.0),
            fonts.regular.font.clone(),
            8.0,
            &foot,
            false,
            TextDirection::Auto,
        );
        surface.finish();
        page.finish();
    }
    doc.finish().map_err(|e| PdfError::Write(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fonts() -> Fonts {
        Fonts::system().unwrap()
    }

    #[test]
    fn long_text_wraps_within_the_column_and_keeps_every_word() {
        let f = fonts();
        let l = Layout {
            fonts: &f,
            blocks: Vec::new(),
        };
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let lines = l.wrap(text.trim(), Weight::Regular, 11.0);
        assert!(lines.len() > 3, "{lines:?}");
        for line in &lines {
            assert!(f.regular.width(line, 11.0) <= COLUMN, "{line}");
        }
        assert_eq!(lines.join(" "), text.trim());
        let word = "x".repeat(400);
        let cut = l.wrap(&word, Weight::Regular, 11.0);
        assert!(cut.len() > 1);
        assert_eq!(cut.concat(), word, "a long word is cut, not lost");
    }

    #[test]
    fn many_lines_make_several_pages() {
        let blocks: Vec<Block> = (0..200)
            .map(|i| Block::Text {
                text: format!("line {i}"),
                weight: Weight::Regular,
                size: 11.0,
                grey: 0,
                space_before: 0.0,
            })
            .collect();
        let pages = paginate(blocks.clone());
        assert!(pages.len() >= 3);
        assert_eq!(
            pages.concat(),
            blocks,
            "nothing lost or reordered between pages"
        );
    }
}
