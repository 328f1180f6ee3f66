//! The watched folder against a real node (a `carebridge-node` process, so it can be killed
//! and started again) with a real Orthanc: a DICOM file and a PDF dropped in the folder end up
//! in the PACS and on the patient's page and are moved aside; a document whose name gives no
//! patient waits for the user to pick one; a file that is no document stays, with the reason;
//! and with the node down, files wait in the folder and go when it returns.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use carebridge_core::protocol::imaging::{Modality, NewImagingOrder};
use carebridge_core::session::sign_in_staff;
use carebridge_core::{Profiles, RecordingNotifier, SyncEngine, Unlock};
use carebridge_server::clock::SystemClock;
use carebridge_server::config::NodeKind;
use carebridge_server::demo::{self, DemoSize};
use carebridge_server::node::{InitOptions, Node, init};
use carebridge_testkit::pacs::{HINT_TOKEN, Pacs, dicom_file};
use carebridge_testkit::{NodeProcess, eventually, node_binary};
use carebridge_workstation::{FolderImport, ImportAssignment, ImportFile, ImportState};

const NODE: &str = "folder.example";
const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

fn state_of(import: &FolderImport, name: &str) -> Option<ImportFile> {
    import.files().into_iter().find(|f| f.name == name)
}

/// Waits until `name` stands at `state`; panics with what the folder shows if it does not.
async fn reaches(import: &FolderImport, name: &str, state: ImportState, within: Duration) {
    let what = format!("{name} reaches {state:?}");
    let check = || async { state_of(import, name).is_some_and(|f| f.state == state) };
    if tokio::time::timeout(within, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_err()
    {
        panic!("{what}: the folder shows {:#?}", import.files());
    }
}

/// Puts a file in the folder as a copy does: written, then closed.
fn drop_in(folder: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(folder.join(name), bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_files_reach_the_pacs_and_the_patients_documents_and_wait_while_the_node_is_down() {
    // A seeded node with a PACS.
    let data = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        name: NODE.into(),
        kind: NodeKind::Hospital,
        time_zone: "Europe/Amsterdam".into(),
        admin_username: "admin".into(),
        admin_password: demo::ADMIN_PASSWORD.into(),
        database_url: None,
    };
    let config = init(data.path(), &opts, &SystemClock).unwrap();
    let seeded = Node::open(config, Arc::new(SystemClock)).unwrap();
    let size = DemoSize {
        doctors: 1,
        days: 1,
        patients: 3,
        bench: false,
        appointments: None,
    };
    let creds = demo::seed(&seeded, &size, "http://127.0.0.1")
        .await
        .unwrap();
    drop(seeded);
    let mut pacs = Pacs::new();
    let env: Vec<(&str, String)> = pacs.node_env(1);
    let env_os: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, OsStr::new(v))).collect();
    let node =
        NodeProcess::spawn_binary_with(&node_binary(), data.path(), "127.0.0.1:0", &env_os).await;
    pacs.start(&node.url, HINT_TOKEN).await;

    // The doctor's workstation.
    let doctor = &creds.doctors[0];
    let patient = &creds.patients[0];
    let signed_in = sign_in_staff(
        &reqwest::Client::new(),
        &node.url,
        &doctor.username,
        &doctor.password,
    )
    .await
    .unwrap();
    let profiles_dir = tempfile::tempdir().unwrap();
    let profiles = Profiles::at(profiles_dir.path());
    let unlock = Unlock {
        use_keychain: false,
        passphrase: Some("folder test passphrase".into()),
    };
    let open = profiles
        .open(&Profiles::name_for(&node.url, &doctor.username), &unlock)
        .await
        .unwrap();
    let engine = Arc::new(SyncEngine::start(
        open.store,
        signed_in,
        Arc::new(RecordingNotifier::default()),
    ));

    // An order gives the patient the number and accession the modality writes.
    let order = engine
        .order_imaging(NewImagingOrder {
            id: None,
            patient_id: patient.id,
            modality: Modality::CT,
            procedure: "CT chest".into(),
            reason: "Cough for six weeks".into(),
            scheduled_at: "2026-12-07T09:30:00Z".parse().unwrap(),
        })
        .await
        .unwrap();
    let mrn = engine
        .patient_imaging(patient.id)
        .await
        .unwrap()
        .mrn
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dicom = dicom_file(
        scratch.path(),
        "slice",
        &[
            ("(0010,0020)", &mrn),
            ("(0010,0021)", NODE),
            ("(0008,0050)", &order.accession),
            ("(0008,0060)", "CT"),
            ("(0008,1030)", "CT chest"),
        ],
    );

    // A letter already in the folder, named by the patient's card, is sent when the watch
    // begins; a CT slice copied in while it watches goes to the PACS.
    let folder = tempfile::tempdir().unwrap();
    let letter = format!("{} Discharge letter #cardiology.pdf", patient.card_number);
    drop_in(folder.path(), &letter, PDF);
    let import = FolderImport::start(&engine, folder.path().to_owned()).unwrap();
    std::fs::copy(&dicom, folder.path().join("CT chest.dcm")).unwrap();
    reaches(
        &import,
        &letter,
        ImportState::Imported,
        Duration::from_secs(20),
    )
    .await;
    reaches(
        &import,
        "CT chest.dcm",
        ImportState::Imported,
        Duration::from_secs(20),
    )
    .await;
    for name in [letter.as_str(), "CT chest.dcm"] {
        assert!(!folder.path().join(name).exists(), "{name} moved aside");
        assert!(
            folder.path().join("imported").join(name).exists(),
            "{name} kept aside"
        );
    }
    // On the patient's page: the letter, titled and tagged by its name, byte for byte ...
    let docs = engine.patient_documents(patient.id).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].title, "Discharge letter");
    assert_eq!(docs[0].tags, vec!["cardiology"]);
    let file = engine.document_file(docs[0].id, None).await.unwrap();
    assert_eq!(file.bytes, PDF);
    // ... and the study, once the PACS calls it stable.
    eventually(
        "the study is on the patient's page",
        Duration::from_secs(20),
        || {
            let engine = engine.clone();
            async move {
                engine
                    .patient_imaging(patient.id)
                    .await
                    .is_ok_and(|i| i.studies.len() == 1 && i.studies[0].order_id == Some(order.id))
            }
        },
    )
    .await;
    assert_eq!(pacs.get("/studies").await.as_array().unwrap().len(), 1);

    // A scan whose name gives nobody waits for the user; then it goes under their title.
    drop_in(
        folder.path(),
        "scan 0001.pdf",
        b"%PDF-1.4 lab results\n%%EOF\n",
    );
    reaches(
        &import,
        "scan 0001.pdf",
        ImportState::NeedsPatient,
        Duration::from_secs(10),
    )
    .await;
    assert!(folder.path().join("scan 0001.pdf").exists());
    import.assign(
        "scan 0001.pdf",
        ImportAssignment {
            patient_id: patient.id,
            title: "Lab results".into(),
            tags: vec!["lab".into()],
        },
    );
    reaches(
        &import,
        "scan 0001.pdf",
        ImportState::Imported,
        Duration::from_secs(10),
    )
    .await;
    let docs = engine.patient_documents(patient.id).await.unwrap();
    let titles: Vec<&str> = docs.iter().map(|d| d.title.as_str()).collect();
    assert_eq!(titles, vec!["Lab results", "Discharge letter"]);
    // Only files of the list, in the folder itself, can be given a patient or tried again.
    let elsewhere = ImportAssignment {
        patient_id: patient.id,
        title: "x".into(),
        tags: vec![],
    };
    assert!(!import.assign("../secret.pdf", elsewhere.clone()));
    assert!(!import.assign("never-seen.pdf", elsewhere));
    assert!(!import.retry("/etc/passwd"));

    // The same letter dropped again (its answer lost, say): imported, and still one version.
    drop_in(folder.path(), &letter, PDF);
    let second = folder
        .path()
        .join("imported")
        .join(letter.replace(".pdf", " (2).pdf"));
    eventually(
        "the letter sent again is moved aside beside the first",
        Duration::from_secs(10),
        || {
            let second = second.clone();
            async move { second.exists() }
        },
    )
    .await;
    reaches(
        &import,
        &letter,
        ImportState::Imported,
        Duration::from_secs(10),
    )
    .await;
    assert!(!folder.path().join(&letter).exists());
    let docs = engine.patient_documents(patient.id).await.unwrap();
    let letter_doc = docs.iter().find(|d| d.title == "Discharge letter").unwrap();
    assert_eq!(letter_doc.versions.len(), 1, "{letter_doc:#?}");

    // What the node refuses (a title longer than it keeps) stays, with the node's reason.
    let long = format!(
        "{} {}.pdf",
        patient.card_number,
        "Letter ".repeat(30).trim()
    );
    drop_in(folder.path(), &long, PDF);
    reaches(&import, &long, ImportState::Failed, Duration::from_secs(10)).await;
    assert!(folder.path().join(&long).exists());
    let refused = state_of(&import, &long).unwrap();
    assert!(refused.detail.contains("the node refused"), "{refused:#?}");
    assert!(refused.detail.contains("200"), "{refused:#?}");

    // What is no document stays, with the reason.
    drop_in(folder.path(), "notes.txt", b"call the GP back");
    reaches(
        &import,
        "notes.txt",
        ImportState::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert!(folder.path().join("notes.txt").exists());
    assert!(
        state_of(&import, "notes.txt")
            .unwrap()
            .detail
            .contains("not a DICOM file, PDF or image")
    );

    // The node goes down: a new letter waits in the folder ...
    let stopped = node.kill().await;
    let consent = format!("{} Consent form.pdf", patient.card_number);
    drop_in(folder.path(), &consent, b"%PDF-1.4 consent\n%%EOF\n");
    reaches(
        &import,
        &consent,
        ImportState::Waiting,
        Duration::from_secs(20),
    )
    .await;
    assert!(
        folder.path().join(&consent).exists(),
        "kept while the node is down"
    );
    assert!(!folder.path().join("imported").join(&consent).exists());
    // ... and goes when it is back.
    let node = stopped.restart().await;
    reaches(
        &import,
        &consent,
        ImportState::Imported,
        Duration::from_secs(60),
    )
    .await;
    assert!(!folder.path().join(&consent).exists());
    let docs = engine.patient_documents(patient.id).await.unwrap();
    assert!(docs.iter().any(|d| d.title == "Consent form"), "{docs:#?}");
    import.stop();
    drop(node);
}
