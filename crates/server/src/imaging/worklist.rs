//! Modality Worklist entries: one DICOM file per scheduled order, in the folder Orthanc's
//! worklist plugin serves, so that the modality reads the patient's PatientID and the order's
//! accession number instead of a typist's.
//!
//! The file is a DICOM Part 10 file (preamble, `DICM`, the file meta group) whose data set is
//! Explicit VR Little Endian, in UTF-8 (`ISO_IR 192`). Only the handful of attributes a
//! worklist entry carries are written, so a small encoder does it; `findscu` reads it back in
//! the tests.

use std::io::Write;
use std::path::{Path, PathBuf};

use carebridge_protocol::imaging::{ImagingOrder, dicom_person_name, dicom_text};
use carebridge_protocol::patient::Patient;
use chrono_tz::Tz;

/// Modality Worklist Information Model – FIND, the SOP class of a worklist entry.
const WORKLIST_SOP_CLASS: &str = "1.2.840.10008.5.1.4.31";
/// Explicit VR Little Endian.
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
/// This implementation's class UID (under the UUID-derived root `2.25`).
const IMPLEMENTATION_CLASS: &str = "2.25.223394375419371466125411316372226128337";

/// What a worklist entry says about one order.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The order.
    pub order: &'a ImagingOrder,
    /// Its patient.
    pub patient: &'a Patient,
    /// The patient's medical record number (PatientID).
    pub mrn: &'a str,
    /// The node's name (IssuerOfPatientID).
    pub issuer: &'a str,
    /// The node's zone: a worklist's dates and times are local.
    pub tz: Tz,
}

/// The StudyInstanceUID the modality is to give the order's study: derived from the order's
/// id (`2.25.` and the UUID as a decimal number, as DICOM PS3.5 B.2 allows), so the same order
/// always gets the same one.
pub fn study_uid(order: &ImagingOrder) -> String {
    format!("2.25.{}", order.id.0.as_u128())
}

/// One data element.
struct Element {
    tag: (u16, u16),
    vr: [u8; 2],
    value: Value,
}

enum Value {
    Bytes(Vec<u8>),
    Items(Vec<Vec<Element>>),
}

fn text(tag: (u16, u16), vr: &str, s: &str) -> Element {
    let mut bytes = s.as_bytes().to_vec();
    // Values have even lengths: UIs are padded with NUL, text with a space.
    if bytes.len() % 2 == 1 {
        bytes.push(if vr == "UI" { 0 } else { b' ' });
    }
    let mut v = [0u8; 2];
    v.copy_from_slice(vr.as_bytes());
    Element {
        tag,
        vr: v,
        value: Value::Bytes(bytes),
    }
}

fn long_form(vr: [u8; 2]) -> bool {
    matches!(&vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT" | b"UC" | b"UR")
}

fn encode(out: &mut Vec<u8>, elements: &[Element]) {
    for e in elements {
        out.extend_from_slice(&e.tag.0.to_le_bytes());
        out.extend_from_slice(&e.tag.1.to_le_bytes());
        out.extend_from_slice(&e.vr);
        match &e.value {
            Value::Bytes(b) => {
                if long_form(e.vr) {
                    out.extend_from_slice(&[0, 0]);
                    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                } else {
                    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
                }
                out.extend_from_slice(b);
            }
            Value::Items(items) => {
                // Undefined lengths, closed by delimiters: no lengths to compute first.
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&u32::MAX.to_le_bytes());
                for item in items {
                    out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
                    out.extend_from_slice(&u32::MAX.to_le_bytes());
                    encode(out, item);
                    out.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
                }
                out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
            }
        }
    }
}

/// The worklist file of an entry.
pub fn file(entry: &Entry<'_>) -> Vec<u8> {
    let o = entry.order;
    let p = entry.patient;
    let local = o.scheduled_at.with_timezone(&entry.tz);
    let instance_uid = format!("2.25.{}", uuid::Uuid::new_v4().as_u128());

    let meta_elements = [
        Element {
            tag: (0x0002, 0x0001),
            vr: *b"OB",
            value: Value::Bytes(vec![0, 1]),
        },
        text((0x0002, 0x0002), "UI", WORKLIST_SOP_CLASS),
        text((0x0002, 0x0003), "UI", &instance_uid),
        text((0x0002, 0x0010), "UI", EXPLICIT_LE),
        text((0x0002, 0x0012), "UI", IMPLEMENTATION_CLASS),
    ];
    let mut meta = Vec::new();
    encode(&mut meta, &meta_elements);

    let step = vec![
        text((0x0008, 0x0060), "CS", o.modality.as_str()),
        text((0x0040, 0x0002), "DA", &local.format("%Y%m%d").to_string()),
        text((0x0040, 0x0003), "TM", &local.format("%H%M%S").to_string()),
        text(
            (0x0040, 0x0006),
            "PN",
            &dicom_text(&o.ordered_by_name.replace('^', " "), 64),
        ),
        text((0x0040, 0x0007), "LO", &dicom_text(&o.procedure, 64)),
        text((0x0040, 0x0009), "SH", &o.accession),
    ];
    // In tag order, as DICOM requires.
    let data = [
        text((0x0008, 0x0005), "CS", "ISO_IR 192"),
        text((0x0008, 0x0050), "SH", &o.accession),
        text(
            (0x0008, 0x0090),
            "PN",
            &dicom_text(&o.ordered_by_name.replace('^', " "), 64),
        ),
        text(
            (0x0010, 0x0010),
            "PN",
            &dicom_person_name(&p.family_name, &p.given_name),
        ),
        text((0x0010, 0x0020), "LO", entry.mrn),
        text((0x0010, 0x0021), "LO", &dicom_text(entry.issuer, 64)),
        text(
            (0x0010, 0x0030),
            "DA",
            &p.birth_date.format("%Y%m%d").to_string(),
        ),
        // Type 2: present, empty (CareBridge does not record it).
        text((0x0010, 0x0040), "CS", ""),
        text((0x0020, 0x000D), "UI", &study_uid(o)),
        text((0x0032, 0x1060), "LO", &dicom_text(&o.procedure, 64)),
        Element {
            tag: (0x0040, 0x0100),
            vr: *b"SQ",
            value: Value::Items(vec![step]),
        },
        text((0x0040, 0x1001), "SH", &o.accession),
        text((0x0040, 0x1002), "LO", &dicom_text(&o.reason, 64)),
    ];

    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    encode(
        &mut out,
        &[Element {
            tag: (0x0002, 0x0000),
            vr: *b"UL",
            value: Value::Bytes((meta.len() as u32).to_le_bytes().to_vec()),
        }],
    );
    out.extend_from_slice(&meta);
    encode(&mut out, &data);
    out
}

/// The path of an order's entry in the worklist folder.
pub fn path(dir: &Path, order: &ImagingOrder) -> PathBuf {
    dir.join(format!("{}.wl", order.accession))
}

/// Writes an order's entry, whole or not at all (a temporary file renamed into place, so the
/// plugin never reads half a file). Blocking: call it off the async threads.
pub fn publish(dir: &Path, entry: &Entry<'_>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let target = path(dir, entry.order);
    let tmp = dir.join(format!(".{}.wl.tmp", entry.order.accession));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&file(entry))?;
    f.sync_all()?;
    std::fs::rename(&tmp, &target)
}

/// Removes every entry of `dir` not in `keep` (orders no longer scheduled). Blocking.
pub fn remove_others(dir: &Path, keep: &std::collections::HashSet<PathBuf>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "wl") && !keep.contains(&path) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Removes an order's entry, if it is there. Blocking.
pub fn withdraw(dir: &Path, order: &ImagingOrder) -> std::io::Result<()> {
    match std::fs::remove_file(path(dir, order)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_values_are_padded_by_their_kind() {
        let Value::Bytes(b) = text((8, 0x50), "SH", "abc").value else {
            unreachable!()
        };
        assert_eq!(b, b"abc ");
        let Value::Bytes(b) = text((8, 0x18), "UI", "1.2.3").value else {
            unreachable!()
        };
        assert_eq!(b, b"1.2.3\0");
    }

    #[test]
    fn a_sequence_is_delimited() {
        let mut out = Vec::new();
        encode(
            &mut out,
            &[Element {
                tag: (0x0040, 0x0100),
                vr: *b"SQ",
                value: Value::Items(vec![vec![text((8, 0x60), "CS", "CT")]]),
            }],
        );
        assert_eq!(
            &out[..12],
            &[0x40, 0, 0, 1, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(&out[out.len() - 8..], &[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    }
}
