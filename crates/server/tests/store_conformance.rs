//! The store conformance suite: what every storage backend of the node must do, written once
//! against the store's public operations (`carebridge_server::store::*`) and [`Store`]'s API —
//! no SQL — and run against every backend (the model: matrix-rust-sdk's
//! `statestore_integration_tests!`).
//!
//! Each test body is an `async fn(Env)` below, grouped by area; [`store_conformance_tests!`]
//! turns the list of them into one `#[tokio::test]` per backend. A test gets a fresh, empty
//! store opened on a [`ManualClock`] standing at [`t0`] and a [`Hub`] it can subscribe to.
//!
//! Two backends run it: SQLCipher (`mod sqlcipher`) and PostgreSQL (`mod postgres`, each test
//! on a fresh database of the throw-away cluster `make test` starts). A backend joins with one
//! more invocation of the macro, `store_conformance_tests!(name, super::open_name)`, where
//! `fn open_name(clock: Arc<dyn Clock>, hub: Hub) -> Opened` opens a fresh, empty store of
//! that backend on the given clock and hub, and `Opened::keep` holds whatever must live as long
//! as the store and be cleaned up after it (a temporary directory, a database to drop). `$open`
//! is expanded inside the generated `mod <backend>`, hence `super::`. A test that fails for one
//! backend only is a difference to fix in that backend.
//!
//! A new operation lands in the suite in the same change: a test function here and its name in
//! the macro's list.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Waker};

use carebridge_protocol::appointment::{
    Appointment, AppointmentQuery, AppointmentStatus, BookedBy,
};
use carebridge_protocol::audit::{AuditQuery, Outcome};
use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::access::{
    AccessPurpose, AccessState, GrantedPatient, RemoteAccess,
};
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::federation::identity::NodeIdentity;
use carebridge_protocol::federation::payload::{
    AdminUpdateMessage, MedicalReports, SharedPatient, Transmission, TransmissionState,
    UpdateAudience,
};
use carebridge_protocol::federation::transfer::{
    IdentityDocument, PatientTransfer, TransferManifest, TransferState, TransferredTo,
};
use carebridge_protocol::imaging::{
    ImagingOrder, ImagingOrderId, ImagingStudy, ImagingStudyId, Modality, OrderStatus, StudyMatch,
};
use carebridge_protocol::kiosk::KioskDevice;
use carebridge_protocol::patient::{Patient, PatientSearch};
use carebridge_protocol::practitioner::{Practitioner, Role};
use carebridge_protocol::report::{
    Report, ReportContent, ReportQuery, ReportRevision, ReportStatus,
};
use carebridge_protocol::schedule::{Absence, Schedule, WorkingHours};
use carebridge_protocol::snapshot::SnapshotItem;
use carebridge_protocol::{KioskDeviceId, PatientId, PractitionerId, ReportId};
use carebridge_server::clock::{Clock, ManualClock};
use carebridge_server::config::NodeKind;
use carebridge_server::events::{
    Audience, Frame, Hub, ROLE_ADMIN, ROLE_DOCTOR, ROLE_RECEPTION, Subscription, Viewer,
};
use carebridge_server::federation::peer::{PeerGrant, SourceRule};
use carebridge_server::store::appointments::{AppointmentFilter, AppointmentSort, Scope};
use carebridge_server::store::documents::{self, NewVersion};
use carebridge_server::store::federation::{
    access, consents, peers, received, transfers, transmissions, updates,
};
use carebridge_server::store::imaging::{self, PacsStudy};
use carebridge_server::store::patients::{PatientFilter, PatientSort};
use carebridge_server::store::reports::{ReportFilter, ReportSort};
use carebridge_server::store::search::{Page, Span};
use carebridge_server::store::{
    self, AuditDraft, DbKey, Durability, SCHEMA_VERSION, Store, StoreError, Tx, WriteCtx,
    appointments, audit, events, idempotency, keys, kiosks, mail, patients, practitioners, reports,
    schedules, sessions, snapshot,
};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use ed25519_dalek::SigningKey;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The node name patients' global ids are made with.
const NODE: &str = "st-marys.example";

/// A fresh, empty store of one backend, opened on the suite's clock and hub.
pub struct Opened {
    /// The store.
    pub store: Store,
    /// What must live as long as the store (a temporary directory, a scratch schema).
    pub keep: Box<dyn Any + Send>,
}

/// What a test gets: the store, the hub it publishes to, and the clock it writes with.
pub struct Env {
    store: Store,
    hub: Hub,
    clock: ManualClock,
    _keep: Box<dyn Any + Send>,
}

impl Env {
    fn new(open: impl Fn(Arc<dyn Clock>, Hub) -> Opened) -> Self {
        let clock = ManualClock::new(t0());
        let hub = Hub::new(1024, 0);
        let opened = open(Arc::new(clock.clone()), hub.clone());
        Self {
            store: opened.store,
            hub,
            clock,
            _keep: opened.keep,
        }
    }

    /// One unaudited write job, which must succeed.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> T {
        self.store.write(None, f).await.unwrap()
    }

    /// One unaudited write job, which may fail.
    async fn try_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.store.write(None, f).await
    }

    /// One read on a pooled reader.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> T {
        self.store.read(f).await.unwrap()
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// The next `n` events published to `sub`, in order, waiting up to 10 s for each: SQLite's
/// writer publishes at commit, PostgreSQL's relay once the events are placed (after commit).
async fn published(sub: &mut Subscription, n: usize) -> Vec<Arc<Frame>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let f = tokio::time::timeout(std::time::Duration::from_secs(10), sub.rx.recv())
            .await
            .expect("an event published within 10 s")
            .unwrap();
        out.push(f);
    }
    out
}

/// The SQLCipher backend: a fresh encrypted file in a temporary directory.
fn open_sqlcipher(clock: Arc<dyn Clock>, hub: Hub) -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join(store::DB_FILE),
        &DbKey::generate(),
        Durability::Normal,
        clock,
        hub,
    )
    .unwrap();
    Opened {
        store,
        keep: Box::new(dir),
    }
}

/// The PostgreSQL backend: a fresh database on the test cluster (`make test` starts one).
fn open_postgres(clock: Arc<dyn Clock>, hub: Hub) -> Opened {
    let db = carebridge_testkit::postgres::ScratchDatabase::create();
    let store = Store::open_postgres(
        db.url(),
        &DbKey::generate(),
        true,
        Durability::Normal,
        clock,
        hub,
    )
    .unwrap();
    Opened {
        store,
        keep: Box::new(db),
    }
}

/// Instantiates the suite for one backend: `$open` is a `Fn(Arc<dyn Clock>, Hub) -> Opened`
/// making a fresh, empty store.
macro_rules! store_conformance_tests {
    ($backend:ident, $open:expr) => {
        store_conformance_tests!(@each $backend, $open, [
            meta_keys_and_ping,
            appointments_round_trip_every_field,
            appointments_overlap_by_status_except_and_bound,
            appointments_refuse_a_double_booking_without_override,
            appointments_list_by_scope_and_filters,
            appointments_references_are_unique_and_readable,
            patients_round_trip_and_identify,
            patients_duplicates_and_cards,
            patients_search,
            patients_find_filters_sorts_and_pages,
            appointments_find_by_scope_span_status_and_pages,
            reports_find_by_patient_author_status_and_span,
            consents_all_across_patients,
            audit_count_agrees_with_list,
            bulk_walks_by_id_in_pages_within_a_span,
            practitioners_accounts,
            sessions_live_and_dead,
            sessions_end_and_prune,
            kiosks_devices,
            kiosks_identifications,
            schedules_put_get_absences,
            schedules_occupied_and_slots_taken,
            reports_drafts_revisions_and_lists,
            events_log_pages_and_prune,
            events_forget_a_received_payloads_arrival,
            idempotency_first_answers,
            audit_entries_for_successes_and_failures,
            audit_list_filters_and_verify,
            audit_list_by_actor_action_patient_and_period_with_names,
            audit_explicit_entries_roll_back_with_their_job,
            audit_checkpoints_sign_the_head_and_anchor_the_trail,
            write_a_failed_job_leaves_nothing_while_its_batch_commits,
            write_a_panicking_job_is_rolled_back_alone,
            snapshot_reads_what_it_is_told_in_one_state,
            federation_peers,
            federation_transmissions,
            federation_received,
            federation_nonces,
            federation_consents,
            federation_updates,
            imaging_numbers_orders_and_accessions,
            imaging_studies_once_per_uid_and_linked_once,
            imaging_feed_position_moves_forward_only,
            imaging_studies_follow_the_pacs_but_keep_their_patient,
            documents_are_found_by_title_and_keep_every_version,
            access_wrong_codes_are_counted_to_the_limit_and_no_further,
            access_requests_settle_once_and_grants_end_once,
            access_pending_requests_are_listed_oldest_first_until_settled,
            transmissions_forget_a_secret_once_acknowledged,
            access_the_requesting_side_keeps_a_token_only_while_granted,
            mail_outbox_sends_retries_and_forgets_the_text,
            transfers_one_under_way_per_patient_settled_once,
            transfers_incoming_keeps_each_chunk_once_until_it_ends,
            transfers_a_patient_is_marked_transferred_once,
            transmissions_due_together_go_in_the_order_queued,
            transfers_chunks_wait_for_their_manifest_and_stop_with_their_transfer,
        ]);
    };
    (@each $backend:ident, $open:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Env::new($open)).await;
                }
            )*
        }
    };
}

store_conformance_tests!(sqlcipher, super::open_sqlcipher);
store_conformance_tests!(postgres, super::open_postgres);

// ---------------------------------------------------------------------------------------------
// Fixtures

/// 2030-01-`day` `h`:`m` UTC (2030-01-07 is a Monday).
fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, day, h, m, 0).unwrap()
}

/// Where every test's clock starts.
fn t0() -> DateTime<Utc> {
    at(7, 8, 0)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn staff(role: Role, username: &str, display: &str) -> Practitioner {
    Practitioner {
        id: PractitionerId::new(),
        username: username.to_owned(),
        display_name: display.to_owned(),
        role,
        disabled: false,
        version: 1,
    }
}

fn doctor(username: &str) -> Practitioner {
    staff(Role::Doctor, username, &format!("Dr. {username}"))
}

fn patient(family: &str, given: &str, birth: NaiveDate, card: &str) -> Patient {
    let id = PatientId::new();
    Patient {
        id,
        global_id: format!("{id}@{NODE}"),
        family_name: family.to_owned(),
        given_name: given.to_owned(),
        birth_date: birth,
        phone: Some("+31 20 555 0100".into()),
        email: Some(format!("{}@example.org", given.to_lowercase())),
        card_number: card.to_owned(),
        version: 1,
        created_at: t0(),
        updated_at: t0(),
        transferred_to: None,
    }
}

/// A staff-booked appointment of `minutes` at `start`.
fn appt(
    p: &Patient,
    doc: &Practitioner,
    start: DateTime<Utc>,
    minutes: i64,
    status: AppointmentStatus,
) -> Appointment {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Appointment {
        id: carebridge_protocol::AppointmentId::new(),
        reference: format!("T{:02}-{:04}", n / 10_000, n % 10_000),
        patient_id: p.id,
        practitioner_id: doc.id,
        start,
        end: start + Duration::minutes(minutes),
        reason: "check-up".into(),
        status,
        booked_by: BookedBy::Staff { id: doc.id },
        override_reason: None,
        cancellation_reason: None,
        version: 1,
        created_at: t0(),
        updated_at: t0(),
    }
}

async fn add_staff(env: &Env, people: &[&Practitioner]) {
    let people: Vec<Practitioner> = people.iter().map(|p| (*p).clone()).collect();
    let now_ms = env.now().timestamp_millis();
    env.write(move |ctx| {
        for p in &people {
            practitioners::insert(ctx, p, &format!("hash-of-{}", p.username), now_ms)?;
        }
        Ok(())
    })
    .await;
}

async fn add_patients(env: &Env, people: &[&Patient]) {
    let people: Vec<Patient> = people.iter().map(|p| (*p).clone()).collect();
    env.write(move |ctx| {
        for p in &people {
            patients::insert(ctx, p)?;
        }
        Ok(())
    })
    .await;
}

async fn add_appts(env: &Env, list: &[&Appointment]) {
    let list: Vec<Appointment> = list.iter().map(|a| (*a).clone()).collect();
    env.write(move |ctx| {
        for a in &list {
            appointments::insert(ctx, a)?;
        }
        Ok(())
    })
    .await;
}

/// A doctor and a patient, stored.
async fn seed(env: &Env) -> (Practitioner, Patient) {
    let doc = doctor("moreau");
    let p = patient("Doe", "Jane", date(1980, 1, 1), "1000000001");
    add_staff(env, &[&doc]).await;
    add_patients(env, &[&p]).await;
    (doc, p)
}

fn ids(list: &[Appointment]) -> Vec<carebridge_protocol::AppointmentId> {
    list.iter().map(|a| a.id).collect()
}

fn content(title: &str) -> ReportContent {
    ReportContent {
        title: title.to_owned(),
        findings: format!("{title}: findings"),
        conclusion: format!("{title}: conclusion"),
        codes: vec!["I10".into()],
    }
}

fn draft_report(p: &Patient, doc: &Practitioner, title: &str, at: DateTime<Utc>) -> Report {
    Report {
        id: ReportId::new(),
        patient_id: p.id,
        author_id: doc.id,
        author_name: doc.display_name.clone(),
        status: ReportStatus::Preliminary,
        content: content(title),
        revision: 0,
        signature: None,
        error_reason: None,
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

/// `r` signed by `key` as its next revision with `status`.
fn sign(r: &Report, status: ReportStatus, key: &SigningKey, at: DateTime<Utc>) -> Report {
    let mut r = r.clone();
    r.status = status;
    r.revision += 1;
    r.version += 1;
    r.updated_at = at;
    r.signature = Some(r.facts().sign(NODE, key, at));
    r
}

fn revision_of(r: &Report) -> ReportRevision {
    ReportRevision {
        revision: r.revision,
        status: r.status,
        content: r.content.clone(),
        author_id: r.author_id,
        author_name: r.author_name.clone(),
        signature: r.signature.clone().unwrap(),
    }
}

fn signing_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn grant(name: &str, kind: &str, url: &str, key: &SigningKey, api_key: &str) -> PeerGrant {
    let agreement = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    PeerGrant {
        identity: NodeIdentity::new(
            name,
            kind,
            url,
            &key.verifying_key(),
            &x25519_dalek::PublicKey::from(&agreement),
        ),
        allowed_sources: vec![SourceRule::parse("10.0.0.0/8").unwrap()],
        allowed_types: vec![MessageType::MedicalReports],
        api_key: api_key.to_owned(),
    }
}

async fn add_peer(env: &Env, g: PeerGrant) {
    env.write(move |ctx| peers::put(ctx, &g)).await;
}

fn transmission(peer: &str, patient: Option<PatientId>, created: DateTime<Utc>) -> Transmission {
    Transmission {
        id: uuid::Uuid::now_v7(),
        peer: peer.to_owned(),
        message_type: "medical-reports".into(),
        summary: "2 reports".into(),
        patient_id: patient,
        report_ids: vec![ReportId::new(), ReportId::new()],
        state: TransmissionState::Queued,
        last_error: None,
        attempts: 0,
        overdue: false,
        created_by: "Dr. moreau".into(),
        created_at: created,
        updated_at: created,
        acknowledged_at: None,
        version: 1,
    }
}

fn update_message(title: &str, sent_at: DateTime<Utc>) -> AdminUpdateMessage {
    AdminUpdateMessage {
        id: uuid::Uuid::now_v7(),
        title: title.to_owned(),
        body: format!("{title}: body"),
        audience: UpdateAudience::Doctor,
        from: "Insurer admin".into(),
        sent_at,
    }
}

/// An audience of doctors and reception (built here, not by the node's visibility policy:
/// the store keeps whatever audience it is given).
fn clinical() -> Audience {
    Audience {
        roles: ROLE_DOCTOR | ROLE_RECEPTION,
        practitioner: None,
        kiosk: None,
    }
}

/// An audience of doctors.
fn doctors_only() -> Audience {
    Audience {
        roles: ROLE_DOCTOR,
        practitioner: None,
        kiosk: None,
    }
}

fn draft(action: &str, entity: &str) -> AuditDraft {
    AuditDraft {
        actor: "staff:tester".into(),
        action: action.to_owned(),
        entity: entity.to_owned(),
        source: "127.0.0.1".into(),
    }
}

/// Polls a future once (a write future: that queues its job) and leaves it pending.
fn poll_once<F: Future>(f: Pin<&mut F>) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        f.poll(&mut cx).is_pending(),
        "a write answers only after its commit"
    );
}

// ---------------------------------------------------------------------------------------------
// Meta and keys

async fn meta_keys_and_ping(env: Env) {
    let signing = signing_key();
    let agreement = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    let (s, a) = (signing.clone(), agreement.clone());
    env.write(move |ctx| {
        store::insert_meta(ctx, "name", NODE)?;
        store::insert_meta(ctx, "kind", "hospital")?;
        keys::insert(ctx, &s, &a)
    })
    .await;
    let (meta, missing, version, public, secret) = env
        .read(|tx| {
            store::ping(tx)?;
            Ok((
                store::meta(tx, "name")?,
                store::meta(tx, "time_zone")?,
                store::migrations_check(tx)?,
                keys::public_keys(tx)?,
                keys::secret_keys(tx)?,
            ))
        })
        .await;
    assert_eq!(meta.as_deref(), Some(NODE));
    assert_eq!(missing, None);
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(public.0, signing.verifying_key());
    assert_eq!(
        public.1.as_bytes(),
        x25519_dalek::PublicKey::from(&agreement).as_bytes()
    );
    assert_eq!(secret.0.to_bytes(), signing.to_bytes());
    assert_eq!(secret.1.to_bytes(), agreement.to_bytes());
    // Meta is written once (by init): a second value for a key is refused, the first kept.
    let again = env
        .try_write(|ctx| store::insert_meta(ctx, "name", "other"))
        .await;
    assert!(again.is_err());
    let kept = env.read(|tx| store::meta(tx, "name")).await;
    assert_eq!(kept.as_deref(), Some(NODE));
}

// ---------------------------------------------------------------------------------------------
// Appointments

async fn appointments_round_trip_every_field(env: Env) {
    let (doc, p) = seed(&env).await;
    let kiosk = KioskDeviceId::new();
    let mut a = appt(&p, &doc, at(8, 9, 0), 30, AppointmentStatus::Pending);
    a.booked_by = BookedBy::Kiosk { id: kiosk };
    a.reason = "a cough — since Monday".into();
    a.override_reason = Some("squeezed in".into());
    a.cancellation_reason = Some("none yet".into());
    a.version = 3;
    a.created_at = t0() + Duration::milliseconds(123);
    a.updated_at = t0() + Duration::milliseconds(456);
    add_appts(&env, &[&a]).await;
    let id = a.id;
    let got = env.read(move |tx| appointments::get(tx, id)).await;
    assert_eq!(got.as_ref(), Some(&a));

    // An update writes the changeable fields and leaves the rest.
    let mut b = a.clone();
    b.start = at(8, 14, 0);
    b.end = at(8, 14, 45);
    b.status = AppointmentStatus::Cancelled;
    b.override_reason = None;
    b.cancellation_reason = Some("patient called".into());
    b.version = 4;
    b.updated_at = t0() + Duration::minutes(5);
    let w = b.clone();
    env.write(move |ctx| appointments::update(ctx, &w)).await;
    let got = env.read(move |tx| appointments::get(tx, id)).await;
    assert_eq!(got, Some(b));

    let none = env
        .read(|tx| appointments::get(tx, carebridge_protocol::AppointmentId::new()))
        .await;
    assert_eq!(none, None);
}

async fn appointments_overlap_by_status_except_and_bound(env: Env) {
    let (doc, p) = seed(&env).await;
    let other = doctor("other");
    add_staff(&env, &[&other]).await;
    use AppointmentStatus as S;
    let statuses = [
        S::Pending,
        S::Booked,
        S::Arrived,
        S::Fulfilled,
        S::Cancelled,
        S::Noshow,
    ];
    // One appointment per status, each on a day of its own, 10:00–10:30.
    let list: Vec<Appointment> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| appt(&p, &doc, at(8 + i as u32, 10, 0), 30, *s))
        .collect();
    add_appts(&env, &list.iter().collect::<Vec<_>>()).await;
    for (i, a) in list.iter().enumerate() {
        let (who, other_id, id, day) = (doc.id, other.id, a.id, 8 + i as u32);
        let (hit, excepted, touching_after, touching_before, others) = env
            .read(move |tx| {
                Ok((
                    appointments::overlapping(tx, who, at(day, 10, 15), at(day, 10, 45), None)?,
                    appointments::overlapping(tx, who, at(day, 10, 15), at(day, 10, 45), Some(id))?,
                    appointments::overlapping(tx, who, at(day, 10, 30), at(day, 11, 0), None)?,
                    appointments::overlapping(tx, who, at(day, 9, 30), at(day, 10, 0), None)?,
                    appointments::overlapping(tx, other_id, at(day, 10, 0), at(day, 10, 30), None)?,
                ))
            })
            .await;
        let occupies = !matches!(a.status, S::Cancelled | S::Noshow);
        assert_eq!(hit, occupies.then_some(a.id), "{:?}", a.status);
        assert_eq!(excepted, None, "{:?}", a.status);
        assert_eq!(touching_after, None, "{:?}", a.status);
        assert_eq!(touching_before, None, "{:?}", a.status);
        assert_eq!(others, None, "{:?}", a.status);
    }

    // The longest appointment (12 h) is found from anywhere inside it, however late.
    let long = appt(&p, &doc, at(20, 0, 0), 12 * 60, S::Booked);
    add_appts(&env, &[&long]).await;
    let who = doc.id;
    let (late, just_after, early) = env
        .read(move |tx| {
            Ok((
                appointments::overlapping(tx, who, at(20, 11, 59), at(20, 12, 30), None)?,
                appointments::overlapping(tx, who, at(20, 12, 0), at(20, 12, 30), None)?,
                appointments::overlapping(tx, who, at(19, 23, 0), at(20, 0, 1), None)?,
            ))
        })
        .await;
    assert_eq!(late, Some(long.id));
    assert_eq!(just_after, None);
    assert_eq!(early, Some(long.id));
}

async fn appointments_refuse_a_double_booking_without_override(env: Env) {
    let (doc, p) = seed(&env).await;
    let first = appt(&p, &doc, at(8, 9, 0), 30, AppointmentStatus::Booked);
    add_appts(&env, &[&first]).await;
    let clash = appt(&p, &doc, at(8, 9, 15), 30, AppointmentStatus::Booked);
    let c = clash.clone();
    assert!(
        env.try_write(move |ctx| appointments::insert(ctx, &c))
            .await
            .is_err(),
        "a second live appointment over the first needs an override"
    );
    let id = clash.id;
    assert_eq!(env.read(move |tx| appointments::get(tx, id)).await, None);
    // Moving another appointment onto it is refused too.
    let later = appt(&p, &doc, at(8, 11, 0), 30, AppointmentStatus::Booked);
    add_appts(&env, &[&later]).await;
    let mut moved = later.clone();
    moved.start = at(8, 9, 10);
    moved.end = at(8, 9, 40);
    moved.version = 2;
    assert!(
        env.try_write(move |ctx| appointments::update(ctx, &moved))
            .await
            .is_err()
    );
    let id = later.id;
    assert_eq!(
        env.read(move |tx| appointments::get(tx, id)).await,
        Some(later)
    );
    // With an override it is booked; a cancelled one never clashes.
    let mut over = clash.clone();
    over.override_reason = Some("emergency".into());
    let mut cancelled = appt(&p, &doc, at(8, 9, 0), 30, AppointmentStatus::Cancelled);
    cancelled.cancellation_reason = Some("moved".into());
    add_appts(&env, &[&over, &cancelled]).await;
    let all = env
        .read(|tx| appointments::list(tx, &AppointmentQuery::default(), appointments::Scope::All))
        .await;
    assert_eq!(all.len(), 4);
}

async fn appointments_list_by_scope_and_filters(env: Env) {
    use appointments::Scope;
    let a_doc = doctor("adams");
    let b_doc = doctor("baker");
    add_staff(&env, &[&a_doc, &b_doc]).await;
    let p1 = patient("One", "Pat", date(1970, 1, 1), "1000000011");
    let p2 = patient("Two", "Pat", date(1971, 1, 1), "1000000012");
    add_patients(&env, &[&p1, &p2]).await;
    let kiosk = KioskDeviceId::new();
    let a1 = appt(&p1, &a_doc, at(8, 9, 0), 30, AppointmentStatus::Booked);
    let mut a2 = appt(&p2, &a_doc, at(8, 10, 0), 30, AppointmentStatus::Pending);
    a2.booked_by = BookedBy::Kiosk { id: kiosk };
    let mut a3 = appt(&p1, &b_doc, at(9, 9, 0), 30, AppointmentStatus::Cancelled);
    a3.booked_by = BookedBy::Kiosk { id: kiosk };
    let a4 = appt(&p2, &b_doc, at(9, 11, 0), 30, AppointmentStatus::Booked);
    // Inserted out of order: the list orders by start.
    add_appts(&env, &[&a4, &a2, &a3, &a1]).await;

    let q = AppointmentQuery::default;
    let cases: Vec<(AppointmentQuery, Scope, Vec<&Appointment>)> = vec![
        (q(), Scope::All, vec![&a1, &a2, &a3, &a4]),
        (q(), Scope::Practitioner(a_doc.id), vec![&a1, &a2]),
        (q(), Scope::Kiosk(kiosk), vec![&a2, &a3]),
        (q(), Scope::Kiosk(KioskDeviceId::new()), vec![]),
        (q(), Scope::Patient(p1.id), vec![&a1, &a3]),
        (
            AppointmentQuery {
                practitioner_id: Some(b_doc.id),
                ..q()
            },
            Scope::All,
            vec![&a3, &a4],
        ),
        (
            AppointmentQuery {
                patient_id: Some(p2.id),
                ..q()
            },
            Scope::All,
            vec![&a2, &a4],
        ),
        (
            AppointmentQuery {
                from: Some(at(8, 10, 0)),
                ..q()
            },
            Scope::All,
            vec![&a2, &a3, &a4],
        ),
        (
            AppointmentQuery {
                to: Some(at(9, 9, 0)),
                ..q()
            },
            Scope::All,
            vec![&a1, &a2],
        ),
        (
            AppointmentQuery {
                status: Some(AppointmentStatus::Booked),
                ..q()
            },
            Scope::All,
            vec![&a1, &a4],
        ),
        (
            AppointmentQuery {
                limit: Some(2),
                ..q()
            },
            Scope::All,
            vec![&a1, &a2],
        ),
        (
            AppointmentQuery {
                patient_id: Some(p1.id),
                ..q()
            },
            Scope::Practitioner(a_doc.id),
            vec![&a1],
        ),
        (
            AppointmentQuery {
                practitioner_id: Some(b_doc.id),
                ..q()
            },
            Scope::Practitioner(a_doc.id),
            vec![],
        ),
    ];
    for (i, (query, scope, want)) in cases.into_iter().enumerate() {
        let got = env
            .read(move |tx| appointments::list(tx, &query, scope))
            .await;
        let want: Vec<Appointment> = want.into_iter().cloned().collect();
        assert_eq!(ids(&got), ids(&want), "case {i}");
        assert_eq!(got, want, "case {i}: whole records");
    }
}

async fn appointments_references_are_unique_and_readable(env: Env) {
    const ALPHABET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let refs = env
        .read(|tx| {
            (0..200)
                .map(|_| appointments::new_reference(tx))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
    for r in &refs {
        assert_eq!(r.len(), 7, "{r}");
        for (i, c) in r.chars().enumerate() {
            if i == 3 {
                assert_eq!(c, '-', "{r}");
            } else {
                assert!(ALPHABET.contains(c), "{r}");
            }
        }
    }
    let distinct: std::collections::HashSet<&String> = refs.iter().collect();
    assert!(distinct.len() > 190, "references repeat too often");
    // A reference made inside a write is free, and the stored one round-trips.
    let (doc, p) = seed(&env).await;
    let mut a = appt(&p, &doc, at(8, 9, 0), 30, AppointmentStatus::Booked);
    let id = a.id;
    let reference = env
        .write(move |ctx| {
            a.reference = appointments::new_reference(ctx)?;
            appointments::insert(ctx, &a)?;
            Ok(a.reference)
        })
        .await;
    let got = env.read(move |tx| appointments::get(tx, id)).await.unwrap();
    assert_eq!(got.reference, reference);
}

// ---------------------------------------------------------------------------------------------
// Patients

async fn patients_round_trip_and_identify(env: Env) {
    let p = patient("Doe", "Jane", date(1980, 1, 1), "1000000001");
    add_patients(&env, &[&p]).await;
    let id = p.id;
    assert_eq!(
        env.read(move |tx| patients::get(tx, id, NODE)).await,
        Some(p.clone())
    );
    let mut q = p.clone();
    q.family_name = "Doe-Smith".into();
    q.given_name = "Janet".into();
    q.birth_date = date(1980, 2, 2);
    q.phone = None;
    q.email = Some("janet@example.org".into());
    q.card_number = "1000000002".into();
    q.version = 2;
    q.updated_at = t0() + Duration::hours(1);
    let w = q.clone();
    env.write(move |ctx| patients::update(ctx, &w)).await;
    assert_eq!(
        env.read(move |tx| patients::get(tx, id, NODE)).await,
        Some(q.clone())
    );
    // A kiosk identifies with card AND birth date.
    let (hit, wrong_birth, old_card, unknown) = env
        .read(|tx| {
            Ok((
                patients::by_card(tx, "1000000002", date(1980, 2, 2), NODE)?,
                patients::by_card(tx, "1000000002", date(1980, 1, 1), NODE)?,
                patients::by_card(tx, "1000000001", date(1980, 2, 2), NODE)?,
                patients::get(tx, PatientId::new(), NODE)?,
            ))
        })
        .await;
    assert_eq!(hit, Some(q));
    assert_eq!(wrong_birth, None);
    assert_eq!(old_card, None);
    assert_eq!(unknown, None);
}

async fn patients_duplicates_and_cards(env: Env) {
    let p = patient("Doe", "Jane", date(1980, 1, 1), "1000000001");
    let twin = patient("Doe", "John", date(1980, 1, 1), "1000000003");
    add_patients(&env, &[&p, &twin]).await;
    let (pid, tid) = (p.id, twin.id);
    let (same, other_birth, other_name, taken, mine, theirs, free, issued) = env
        .read(move |tx| {
            Ok((
                patients::same_person(tx, "  DOE ", "jane", date(1980, 1, 1), NODE)?,
                patients::same_person(tx, "Doe", "Jane", date(1980, 1, 2), NODE)?,
                patients::same_person(tx, "Doe", "Jan", date(1980, 1, 1), NODE)?,
                patients::card_taken(tx, "1000000001", None)?,
                patients::card_taken(tx, "1000000001", Some(pid))?,
                patients::card_taken(tx, "1000000001", Some(tid))?,
                patients::card_taken(tx, "1000000099", None)?,
                patients::issue_card_number(tx)?,
            ))
        })
        .await;
    assert_eq!(same, vec![p.clone()]);
    assert!(other_birth.is_empty());
    assert!(other_name.is_empty());
    assert!(taken);
    assert!(!mine, "a patient's own card is not taken from them");
    assert!(theirs);
    assert!(!free);
    assert_eq!(issued.len(), 10);
    assert!(issued.chars().all(|c| c.is_ascii_digit()));
    assert!(issued != p.card_number && issued != twin.card_number);
    // A card in use cannot be given to another patient.
    let dup = patient("Roe", "Rita", date(1990, 1, 1), "1000000001");
    assert!(
        env.try_write(move |ctx| patients::insert(ctx, &dup))
            .await
            .is_err()
    );
}

async fn patients_search(env: Env) {
    let doe = patient("Doe", "Jane", date(1980, 1, 1), "1000000001");
    let dob = patient("Dobson", "Adam", date(1980, 1, 1), "1000000002");
    let smith = patient("Smith", "Dora", date(1975, 5, 5), "1000000003");
    let zed = patient("Zed", "Zoe", date(1980, 1, 1), "1000000004");
    add_patients(&env, &[&zed, &smith, &doe, &dob]).await;
    let s = PatientSearch::default;
    let cases: Vec<(PatientSearch, Vec<&Patient>)> = vec![
        // By name prefix, family or given, case-insensitive; ordered by family then given.
        (
            PatientSearch {
                name: Some("DO".into()),
                ..s()
            },
            vec![&dob, &doe, &smith],
        ),
        (
            PatientSearch {
                name: Some("dobs".into()),
                ..s()
            },
            vec![&dob],
        ),
        (
            PatientSearch {
                name: Some("zo".into()),
                ..s()
            },
            vec![&zed],
        ),
        (
            PatientSearch {
                name: Some("oe".into()),
                ..s()
            },
            vec![],
        ),
        (
            PatientSearch {
                birth_date: Some(date(1980, 1, 1)),
                ..s()
            },
            vec![&dob, &doe, &zed],
        ),
        (
            PatientSearch {
                card_number: Some(" 1000000003 ".into()),
                ..s()
            },
            vec![&smith],
        ),
        (
            PatientSearch {
                name: Some("do".into()),
                birth_date: Some(date(1980, 1, 1)),
                ..s()
            },
            vec![&dob, &doe],
        ),
        (
            PatientSearch {
                name: Some("do".into()),
                card_number: Some("1000000004".into()),
                ..s()
            },
            vec![],
        ),
        (
            PatientSearch {
                birth_date: Some(date(1980, 1, 1)),
                limit: Some(2),
                ..s()
            },
            vec![&dob, &doe],
        ),
        (s(), vec![&dob, &doe, &smith, &zed]),
    ];
    for (i, (q, want)) in cases.into_iter().enumerate() {
        let got = env.read(move |tx| patients::search(tx, &q, NODE)).await;
        let want: Vec<Patient> = want.into_iter().cloned().collect();
        assert_eq!(got, want, "case {i}");
    }
}

#[expect(clippy::type_complexity, reason = "a table of cases reads best inline")]
async fn patients_find_filters_sorts_and_pages(env: Env) {
    let doe = patient("Doe", "Jane", date(1980, 1, 1), "1000000001");
    let dob = patient("Dobson", "Adam", date(1981, 6, 1), "1000000002");
    let smith = patient("Smith", "Dora", date(1975, 5, 5), "1000000003");
    let zed = patient("Zed", "Zoe", date(1980, 1, 1), "1000000004");
    add_patients(&env, &[&zed, &smith, &doe, &dob]).await;
    let f = PatientFilter::default;
    let all = Page {
        offset: 0,
        count: 100,
    };
    let cases: Vec<(
        PatientFilter,
        Vec<(PatientSort, bool)>,
        Page,
        u64,
        Vec<&Patient>,
    )> = vec![
        (f(), vec![], all, 4, vec![&dob, &doe, &smith, &zed]),
        // A page: the total counts every match.
        (
            f(),
            vec![],
            Page {
                offset: 1,
                count: 2,
            },
            4,
            vec![&doe, &smith],
        ),
        (
            f(),
            vec![],
            Page {
                offset: 0,
                count: 0,
            },
            4,
            vec![],
        ),
        (
            PatientFilter {
                name: Some("DO".into()),
                ..f()
            },
            vec![],
            all,
            3,
            vec![&dob, &doe, &smith],
        ),
        (
            PatientFilter {
                family: Some("do".into()),
                ..f()
            },
            vec![],
            all,
            2,
            vec![&dob, &doe],
        ),
        (
            PatientFilter {
                given: Some("do".into()),
                ..f()
            },
            vec![],
            all,
            1,
            vec![&smith],
        ),
        (
            PatientFilter {
                born_from: Some(date(1980, 1, 1)),
                born_before: Some(date(1981, 1, 1)),
                ..f()
            },
            vec![(PatientSort::Given, true)],
            all,
            2,
            vec![&zed, &doe],
        ),
        (
            PatientFilter {
                ids: Some(vec![smith.id, zed.id]),
                ..f()
            },
            vec![],
            all,
            2,
            vec![&smith, &zed],
        ),
        (
            PatientFilter {
                ids: Some(vec![]),
                ..f()
            },
            vec![],
            all,
            0,
            vec![],
        ),
        // An identifier is an id or a card number.
        (
            PatientFilter {
                identifier: Some((vec![doe.id], vec!["1000000004".into()])),
                ..f()
            },
            vec![],
            all,
            2,
            vec![&doe, &zed],
        ),
        (
            f(),
            vec![(PatientSort::BirthDate, false)],
            Page {
                offset: 0,
                count: 1,
            },
            4,
            vec![&smith],
        ),
        (
            PatientFilter {
                updated: Span {
                    from: Some(t0() + Duration::seconds(1)),
                    to: None,
                },
                ..f()
            },
            vec![],
            all,
            0,
            vec![],
        ),
    ];
    for (i, (q, sort, page, total, want)) in cases.into_iter().enumerate() {
        let got = env
            .read(move |tx| patients::find(tx, &q, &sort, page, NODE))
            .await;
        let want: Vec<Patient> = want.into_iter().cloned().collect();
        assert_eq!(got.total, total, "case {i}");
        assert_eq!(got.items, want, "case {i}");
    }
}

#[expect(clippy::type_complexity, reason = "a table of cases reads best inline")]
async fn appointments_find_by_scope_span_status_and_pages(env: Env) {
    let (doc, p) = seed(&env).await;
    let other = doctor("other");
    let p2 = patient("Roe", "Rita", date(1990, 3, 3), "1000000002");
    add_staff(&env, &[&other]).await;
    add_patients(&env, &[&p2]).await;
    let a = appt(&p, &doc, at(7, 9, 0), 15, AppointmentStatus::Booked);
    let b = appt(&p2, &doc, at(7, 10, 0), 15, AppointmentStatus::Cancelled);
    let c = appt(&p, &other, at(8, 9, 0), 15, AppointmentStatus::Booked);
    add_appts(&env, &[&c, &b, &a]).await;
    let f = AppointmentFilter::default;
    let all = Page {
        offset: 0,
        count: 100,
    };
    let cases: Vec<(
        AppointmentFilter,
        Scope,
        Vec<(AppointmentSort, bool)>,
        Page,
        u64,
        Vec<&Appointment>,
    )> = vec![
        (f(), Scope::All, vec![], all, 3, vec![&a, &b, &c]),
        (
            f(),
            Scope::Practitioner(doc.id),
            vec![],
            all,
            2,
            vec![&a, &b],
        ),
        (
            f(),
            Scope::All,
            vec![(AppointmentSort::Start, true)],
            Page {
                offset: 0,
                count: 2,
            },
            3,
            vec![&c, &b],
        ),
        (
            AppointmentFilter {
                patient: Some(p.id),
                ..f()
            },
            Scope::All,
            vec![],
            all,
            2,
            vec![&a, &c],
        ),
        (
            AppointmentFilter {
                practitioner: Some(other.id),
                ..f()
            },
            Scope::All,
            vec![],
            all,
            1,
            vec![&c],
        ),
        (
            AppointmentFilter {
                participant: Some(p2.id.0),
                ..f()
            },
            Scope::All,
            vec![],
            all,
            1,
            vec![&b],
        ),
        (
            AppointmentFilter {
                participant: Some(other.id.0),
                ..f()
            },
            Scope::All,
            vec![],
            all,
            1,
            vec![&c],
        ),
        (
            AppointmentFilter {
                start: Span {
                    from: Some(at(7, 9, 30)),
                    to: Some(at(8, 9, 0)),
                },
                ..f()
            },
            Scope::All,
            vec![],
            all,
            1,
            vec![&b],
        ),
        (
            AppointmentFilter {
                statuses: Some(vec![AppointmentStatus::Booked]),
                ..f()
            },
            Scope::Practitioner(doc.id),
            vec![],
            all,
            1,
            vec![&a],
        ),
        (
            AppointmentFilter {
                identifier: Some((vec![], vec![c.reference.clone()])),
                ..f()
            },
            Scope::All,
            vec![],
            all,
            1,
            vec![&c],
        ),
        (
            AppointmentFilter {
                ids: Some(vec![a.id]),
                ..f()
            },
            Scope::Practitioner(other.id),
            vec![],
            all,
            0,
            vec![],
        ),
    ];
    for (i, (q, scope, sort, page, total, want)) in cases.into_iter().enumerate() {
        let got = env
            .read(move |tx| appointments::find(tx, &q, scope, &sort, page))
            .await;
        let want: Vec<Appointment> = want.into_iter().cloned().collect();
        assert_eq!(got.total, total, "case {i}");
        assert_eq!(got.items, want, "case {i}");
    }
}

#[expect(clippy::type_complexity, reason = "a table of cases reads best inline")]
async fn reports_find_by_patient_author_status_and_span(env: Env) {
    let (doc, p) = seed(&env).await;
    let p2 = patient("Roe", "Rita", date(1990, 3, 3), "1000000002");
    add_patients(&env, &[&p2]).await;
    let first = draft_report(&p, &doc, "First", t0());
    let second = sign(
        &draft_report(&p2, &doc, "Second", t0() + Duration::hours(1)),
        ReportStatus::Final,
        &signing_key(),
        t0() + Duration::hours(2),
    );
    let (w1, w2) = (first.clone(), second.clone());
    env.write(move |ctx| {
        reports::put(ctx, &w1)?;
        reports::put(ctx, &w2)
    })
    .await;
    let f = ReportFilter::default;
    let all = Page {
        offset: 0,
        count: 100,
    };
    let cases: Vec<(
        ReportFilter,
        Vec<(ReportSort, bool)>,
        Page,
        u64,
        Vec<&Report>,
    )> = vec![
        // Most recently changed first by default.
        (f(), vec![], all, 2, vec![&second, &first]),
        (
            f(),
            vec![(ReportSort::Created, false)],
            Page {
                offset: 0,
                count: 1,
            },
            2,
            vec![&first],
        ),
        (
            ReportFilter {
                patient: Some(p2.id),
                ..f()
            },
            vec![],
            all,
            1,
            vec![&second],
        ),
        (
            ReportFilter {
                author: Some(PractitionerId::new()),
                ..f()
            },
            vec![],
            all,
            0,
            vec![],
        ),
        (
            ReportFilter {
                statuses: Some(vec![ReportStatus::Preliminary]),
                ..f()
            },
            vec![],
            all,
            1,
            vec![&first],
        ),
        (
            ReportFilter {
                created: Span {
                    from: Some(t0() + Duration::minutes(30)),
                    to: None,
                },
                ..f()
            },
            vec![],
            all,
            1,
            vec![&second],
        ),
        (
            ReportFilter {
                ids: Some(vec![first.id]),
                ..f()
            },
            vec![],
            all,
            1,
            vec![&first],
        ),
    ];
    for (i, (q, sort, page, total, want)) in cases.into_iter().enumerate() {
        let got = env.read(move |tx| reports::find(tx, &q, &sort, page)).await;
        let want: Vec<Report> = want.into_iter().cloned().collect();
        assert_eq!(got.total, total, "case {i}");
        assert_eq!(got.items, want, "case {i}");
    }
}

async fn consents_all_across_patients(env: Env) {
    let (_, p) = seed(&env).await;
    let p2 = patient("Roe", "Rita", date(1990, 3, 3), "1000000002");
    add_patients(&env, &[&p2]).await;
    add_peer(
        &env,
        grant(
            "ins",
            "insurer",
            "https://i.example",
            &signing_key(),
            "cbk_i",
        ),
    )
    .await;
    let (a, b) = (p.id, p2.id);
    env.write(move |ctx| {
        consents::insert(ctx, a, "ins", "staff:1", "Rita")?;
        consents::insert(ctx, b, "ins", "staff:1", "Rita")
    })
    .await;
    let (all, one, two) = env
        .read(move |tx| {
            Ok((
                consents::all(tx)?,
                consents::list(tx, a)?,
                consents::list(tx, b)?,
            ))
        })
        .await;
    let mut want = [one, two].concat();
    want.sort_by_key(|c| c.patient_id.to_string());
    assert_eq!(all, want);
    assert_eq!(all.len(), 2);
}

async fn audit_count_agrees_with_list(env: Env) {
    for (action, entity) in [
        ("patient.read", "patient/1"),
        ("patient.search", ""),
        ("report.read", "report/2"),
    ] {
        env.store
            .write(Some(draft(action, entity)), |_| Ok::<_, StoreError>(()))
            .await
            .unwrap();
    }
    let q = |action: Option<&str>| AuditQuery {
        action: action.map(str::to_owned),
        limit: Some(1000),
        ..AuditQuery::default()
    };
    for action in [None, Some("patient"), Some("report.read"), Some("kiosk")] {
        let query = q(action);
        let (n, list) = env
            .read(move |tx| Ok((audit::count(tx, &query)?, audit::list(tx, &query)?)))
            .await;
        assert_eq!(n, list.len() as u64, "{action:?}");
    }
    let query = q(Some("patient"));
    assert_eq!(env.read(move |tx| audit::count(tx, &query)).await, 2);
}

async fn bulk_walks_by_id_in_pages_within_a_span(env: Env) {
    let (doc, p) = seed(&env).await;
    let mut people = vec![p.clone()];
    for i in 0..4 {
        people.push(patient(
            "Walk",
            &format!("Number{i}"),
            date(1990, 1, 1),
            &format!("20000000{i:02}"),
        ));
    }
    add_patients(&env, &people[1..].iter().collect::<Vec<_>>()).await;
    // Patients: pages of 2 by id, every one once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = env
            .read(move |tx| patients::page_after(tx, after, Span::default(), 2, NODE))
            .await;
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|x| x.id));
    }
    let mut want: Vec<PatientId> = people.iter().map(|x| x.id).collect();
    want.sort_by_key(ToString::to_string);
    assert_eq!(seen, want);
    // Nothing changed after t0: a span from later holds none.
    let later = Span {
        from: Some(t0() + Duration::seconds(1)),
        to: None,
    };
    assert!(
        env.read(move |tx| patients::page_after(tx, None, later, 10, NODE))
            .await
            .is_empty()
    );

    // Appointments, and a booking reference in use.
    let a = appt(&p, &doc, at(7, 9, 0), 15, AppointmentStatus::Booked);
    let b = appt(&p, &doc, at(7, 10, 0), 15, AppointmentStatus::Booked);
    add_appts(&env, &[&a, &b]).await;
    let first = env
        .read(|tx| appointments::page_after(tx, None, Span::default(), 1))
        .await;
    let after = first[0].id;
    let second = env
        .read(move |tx| appointments::page_after(tx, Some(after), Span::default(), 1))
        .await;
    let mut both = vec![first[0].id, second[0].id];
    both.sort_by_key(ToString::to_string);
    let mut want = vec![a.id, b.id];
    want.sort_by_key(ToString::to_string);
    assert_eq!(both, want);
    let (taken, free) = (a.reference.clone(), "ZZZ-ZZZ".to_owned());
    let (t, f) = env
        .read(move |tx| {
            Ok((
                appointments::reference_taken(tx, &taken)?,
                appointments::reference_taken(tx, &free)?,
            ))
        })
        .await;
    assert!(t && !f);

    // Reports and their signed revisions, by report then revision.
    let key = signing_key();
    let one = sign(
        &draft_report(&p, &doc, "One", t0()),
        ReportStatus::Final,
        &key,
        t0(),
    );
    let two = sign(
        &draft_report(&p, &doc, "Two", t0()),
        ReportStatus::Final,
        &key,
        t0(),
    );
    let (w1, w2) = (one.clone(), two.clone());
    env.write(move |ctx| {
        for r in [&w1, &w2] {
            reports::put(ctx, r)?;
            reports::add_revision(ctx, r.id, &revision_of(r))?;
        }
        Ok(())
    })
    .await;
    let all = env
        .read(|tx| reports::page_after(tx, None, Span::default(), 10))
        .await;
    assert_eq!(all.len(), 2);
    assert!(all[0].id.to_string() < all[1].id.to_string());
    let revs = env
        .read(|tx| reports::revisions_after(tx, None, Span::default(), 1))
        .await;
    assert_eq!(revs.len(), 1);
    let after = (revs[0].0, revs[0].1.revision);
    let rest = env
        .read(move |tx| reports::revisions_after(tx, Some(after), Span::default(), 10))
        .await;
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].0, revs[0].0);
}

// ---------------------------------------------------------------------------------------------
// Practitioners

async fn practitioners_accounts(env: Env) {
    let zed = staff(Role::Doctor, "zed", "Dr. Zed");
    let adams = staff(Role::Doctor, "adams", "Dr. Adams");
    let rita = staff(Role::Reception, "rita", "Rita");
    let rev = staff(Role::Reviewer, "rev", "Reviewer");
    add_staff(&env, &[&zed, &adams, &rita, &rev]).await;
    let zid = zed.id;
    let (got, creds, nobody, taken, free, doctors, all, reviewers) = env
        .read(move |tx| {
            Ok((
                practitioners::get(tx, zid)?,
                practitioners::by_username(tx, "zed")?,
                practitioners::by_username(tx, "nobody")?,
                practitioners::username_taken(tx, "rita")?,
                practitioners::username_taken(tx, "ritA2")?,
                practitioners::list(tx, Some(Role::Doctor))?,
                practitioners::list(tx, None)?,
                practitioners::list(tx, Some(Role::Reviewer))?,
            ))
        })
        .await;
    assert_eq!(got, Some(zed.clone()));
    let creds = creds.unwrap();
    assert_eq!(creds.practitioner, zed);
    assert_eq!(creds.password_hash, "hash-of-zed");
    assert!(nobody.is_none());
    assert!(taken);
    assert!(!free);
    assert_eq!(doctors, vec![adams.clone(), zed.clone()]);
    assert_eq!(
        all,
        vec![adams.clone(), zed.clone(), rev.clone(), rita.clone()]
    );
    assert_eq!(reviewers, vec![rev]);
    // A username is one account's.
    let again = staff(Role::Admin, "zed", "Another Zed");
    assert!(
        env.try_write(move |ctx| practitioners::insert(ctx, &again, "h", 0))
            .await
            .is_err()
    );

    // An update without a hash keeps the password; the caller sets the version.
    let mut z2 = zed.clone();
    z2.display_name = "Dr. Zed Junior".into();
    z2.disabled = true;
    z2.version = 2;
    let w = z2.clone();
    env.write(move |ctx| practitioners::update(ctx, &w, None))
        .await;
    let creds = env
        .read(|tx| practitioners::by_username(tx, "zed"))
        .await
        .unwrap();
    assert_eq!(creds.practitioner, z2);
    assert_eq!(creds.password_hash, "hash-of-zed");
    // With a hash, the password changes too.
    let mut z3 = z2.clone();
    z3.disabled = false;
    z3.version = 3;
    let w = z3.clone();
    env.write(move |ctx| practitioners::update(ctx, &w, Some("new-hash")))
        .await;
    let creds = env
        .read(|tx| practitioners::by_username(tx, "zed"))
        .await
        .unwrap();
    assert_eq!(creds.practitioner, z3);
    assert_eq!(creds.password_hash, "new-hash");
}

// ---------------------------------------------------------------------------------------------
// Sessions

async fn sessions_live_and_dead(env: Env) {
    let doc = doctor("moreau");
    add_staff(&env, &[&doc]).await;
    let device = KioskDevice {
        id: KioskDeviceId::new(),
        label: "Lobby".into(),
        revoked: false,
        registered_at: t0(),
    };
    let d = device.clone();
    let now = env.now();
    let expires = now + Duration::hours(8);
    let staff_viewer = Viewer::Staff {
        id: doc.id,
        role: Role::Doctor,
    };
    let kiosk_viewer = Viewer::Kiosk { id: device.id };
    env.write(move |ctx| {
        kiosks::insert(ctx, &d, "secret")?;
        sessions::insert(ctx, &[1; 32], &staff_viewer, now, expires)?;
        sessions::insert(ctx, &[2; 32], &kiosk_viewer, now, expires)?;
        // A session of an account that does not exist finds nobody.
        sessions::insert(
            ctx,
            &[3; 32],
            &Viewer::Staff {
                id: PractitionerId::new(),
                role: Role::Admin,
            },
            now,
            expires,
        )
    })
    .await;
    let (s, k, ghost, unknown, at_expiry, just_before) = env
        .read(move |tx| {
            Ok((
                sessions::lookup(tx, &[1; 32], now)?,
                sessions::lookup(tx, &[2; 32], now)?,
                sessions::lookup(tx, &[3; 32], now)?,
                sessions::lookup(tx, &[9; 32], now)?,
                sessions::lookup(tx, &[1; 32], expires)?,
                sessions::lookup(tx, &[1; 32], expires - Duration::milliseconds(1))?,
            ))
        })
        .await;
    let s = s.unwrap();
    assert_eq!(s.viewer, staff_viewer);
    assert_eq!(s.name, doc.display_name);
    assert_eq!(s.expires_at, expires);
    let k = k.unwrap();
    assert_eq!(k.viewer, kiosk_viewer);
    assert_eq!(k.name, "Lobby");
    assert!(ghost.is_none());
    assert!(unknown.is_none());
    assert!(at_expiry.is_none(), "a session ends at its expiry");
    assert!(just_before.is_some());

    // A disabled account's and a revoked device's sessions find nobody.
    let mut off = doc.clone();
    off.disabled = true;
    off.version = 2;
    let id = device.id;
    env.write(move |ctx| {
        practitioners::update(ctx, &off, None)?;
        kiosks::revoke(ctx, id)
    })
    .await;
    let (s, k) = env
        .read(move |tx| {
            Ok((
                sessions::lookup(tx, &[1; 32], now)?,
                sessions::lookup(tx, &[2; 32], now)?,
            ))
        })
        .await;
    assert!(s.is_none());
    assert!(k.is_none());
}

async fn sessions_end_and_prune(env: Env) {
    let doc = doctor("moreau");
    let other = doctor("other");
    add_staff(&env, &[&doc, &other]).await;
    let now = env.now();
    let v = Viewer::Staff {
        id: doc.id,
        role: Role::Doctor,
    };
    let o = Viewer::Staff {
        id: other.id,
        role: Role::Doctor,
    };
    let (gone_one, gone_again, gone_all, pruned, pruned_again) = env
        .write(move |ctx| {
            for h in 1..=3u8 {
                sessions::insert(ctx, &[h; 32], &v, now, now + Duration::hours(1))?;
            }
            sessions::insert(ctx, &[10; 32], &o, now, now + Duration::hours(1))?;
            sessions::insert(ctx, &[11; 32], &o, now, now + Duration::minutes(1))?;
            sessions::insert(ctx, &[12; 32], &o, now, now + Duration::minutes(2))?;
            Ok((
                sessions::delete(ctx, &[1; 32])?,
                sessions::delete(ctx, &[1; 32])?,
                sessions::delete_for_principal(ctx, v.principal_id())?,
                sessions::prune(ctx, now + Duration::minutes(2))?,
                sessions::prune(ctx, now + Duration::minutes(2))?,
            ))
        })
        .await;
    assert!(gone_one);
    assert!(!gone_again);
    assert_eq!(gone_all, 2);
    assert_eq!(pruned, 2, "sessions expiring at or before the time go");
    assert_eq!(pruned_again, 0);
    let (a, b, c) = env
        .read(move |tx| {
            Ok((
                sessions::lookup(tx, &[2; 32], now)?,
                sessions::lookup(tx, &[10; 32], now)?,
                sessions::lookup(tx, &[11; 32], now)?,
            ))
        })
        .await;
    assert!(a.is_none());
    assert!(b.is_some(), "another principal's live session stays");
    assert!(c.is_none());
}

// ---------------------------------------------------------------------------------------------
// Kiosks

async fn kiosks_devices(env: Env) {
    let d1 = KioskDevice {
        id: KioskDeviceId::new(),
        label: "Lobby".into(),
        revoked: false,
        registered_at: t0(),
    };
    let d2 = KioskDevice {
        id: KioskDeviceId::new(),
        label: "Wing B".into(),
        revoked: false,
        registered_at: t0() + Duration::minutes(1),
    };
    let (a, b) = (d1.clone(), d2.clone());
    env.write(move |ctx| {
        kiosks::insert(ctx, &a, "s1")?;
        kiosks::insert(ctx, &b, "s2")
    })
    .await;
    let id1 = d1.id;
    let (got, list) = env
        .read(move |tx| Ok((kiosks::get(tx, id1)?, kiosks::list(tx)?)))
        .await;
    assert_eq!(got, Some((d1.clone(), kiosks::secret_hash("s1"))));
    assert_ne!(kiosks::secret_hash("s1"), kiosks::secret_hash("s2"));
    assert_eq!(list, vec![d2.clone(), d1.clone()], "newest first");
    let (revoked, unknown) = env
        .write(move |ctx| {
            Ok((
                kiosks::revoke(ctx, id1)?,
                kiosks::revoke(ctx, KioskDeviceId::new())?,
            ))
        })
        .await;
    assert!(revoked);
    assert!(!unknown);
    let got = env.read(move |tx| kiosks::get(tx, id1)).await.unwrap();
    assert!(got.0.revoked);
    assert!(
        env.read(|tx| kiosks::get(tx, KioskDeviceId::new()))
            .await
            .is_none()
    );
}

async fn kiosks_identifications(env: Env) {
    let device = KioskDeviceId::new();
    let (p, q) = (PatientId::new(), PatientId::new());
    let t = env.now().timestamp_millis();
    let ttl = kiosks::IDENTIFICATION_TTL_MS;
    env.write(move |ctx| kiosks::record_identification(ctx, device, p, t))
        .await;
    let (now, last_ms, expired, other_patient, other_device) = env
        .read(move |tx| {
            Ok((
                kiosks::is_identified(tx, device, p, t)?,
                kiosks::is_identified(tx, device, p, t + ttl - 1)?,
                kiosks::is_identified(tx, device, p, t + ttl)?,
                kiosks::is_identified(tx, device, q, t)?,
                kiosks::is_identified(tx, KioskDeviceId::new(), p, t)?,
            ))
        })
        .await;
    assert!(now);
    assert!(last_ms);
    assert!(!expired);
    assert!(!other_patient);
    assert!(!other_device);
    // Identifying again renews it.
    env.write(move |ctx| kiosks::record_identification(ctx, device, p, t + ttl))
        .await;
    assert!(
        env.read(move |tx| kiosks::is_identified(tx, device, p, t + ttl + 1))
            .await
    );
    // Pruning forgets those made before the time.
    env.write(move |ctx| kiosks::record_identification(ctx, device, q, t))
        .await;
    let (kept, gone) = env
        .write(move |ctx| {
            let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap();
            Ok((
                kiosks::prune_identifications(ctx, at(t))?,
                kiosks::prune_identifications(ctx, at(t + 1))?,
            ))
        })
        .await;
    assert_eq!(kept, 0);
    assert_eq!(gone, 1);
    let (q_now, p_now) = env
        .read(move |tx| {
            Ok((
                kiosks::is_identified(tx, device, q, t)?,
                kiosks::is_identified(tx, device, p, t + ttl + 1)?,
            ))
        })
        .await;
    assert!(!q_now);
    assert!(p_now);
    // The patient is done at the kiosk: every identification there ends, another kiosk's not.
    let elsewhere = KioskDeviceId::new();
    let (ended, again) = env
        .write(move |ctx| {
            kiosks::record_identification(ctx, device, q, t + ttl)?;
            kiosks::record_identification(ctx, elsewhere, p, t + ttl)?;
            Ok((
                kiosks::end_identifications(ctx, device)?,
                kiosks::end_identifications(ctx, device)?,
            ))
        })
        .await;
    assert_eq!((ended, again), (2, 0));
    let (p_here, q_here, p_elsewhere) = env
        .read(move |tx| {
            Ok((
                kiosks::is_identified(tx, device, p, t + ttl + 1)?,
                kiosks::is_identified(tx, device, q, t + ttl + 1)?,
                kiosks::is_identified(tx, elsewhere, p, t + ttl + 1)?,
            ))
        })
        .await;
    assert!(!p_here && !q_here);
    assert!(p_elsewhere);
}

// ---------------------------------------------------------------------------------------------
// Schedules

async fn schedules_put_get_absences(env: Env) {
    let (doc, _) = seed(&env).await;
    let other = doctor("other");
    add_staff(&env, &[&other]).await;
    let hours = |wd: Weekday, h1: u32, h2: u32| WorkingHours {
        weekday: wd,
        start: NaiveTime::from_hms_opt(h1, 0, 0).unwrap(),
        end: NaiveTime::from_hms_opt(h2, 30, 0).unwrap(),
    };
    let s1 = Schedule {
        practitioner_id: doc.id,
        slot_minutes: 15,
        hours: vec![hours(Weekday::Mon, 8, 12)],
        version: 1,
    };
    let s2 = Schedule {
        practitioner_id: doc.id,
        slot_minutes: 20,
        hours: vec![hours(Weekday::Tue, 9, 11), hours(Weekday::Fri, 13, 17)],
        version: 2,
    };
    let w = s1.clone();
    env.write(move |ctx| schedules::put(ctx, &w)).await;
    let who = doc.id;
    assert_eq!(env.read(move |tx| schedules::get(tx, who)).await, Some(s1));
    let w = s2.clone();
    env.write(move |ctx| schedules::put(ctx, &w)).await;
    let oid = other.id;
    let (got, none) = env
        .read(move |tx| Ok((schedules::get(tx, who)?, schedules::get(tx, oid)?)))
        .await;
    assert_eq!(got, Some(s2), "a second put replaces the first");
    assert_eq!(none, None);

    let morning = Absence {
        id: uuid::Uuid::now_v7(),
        practitioner_id: doc.id,
        start: at(8, 10, 0),
        end: at(8, 12, 0),
        reason: "training".into(),
    };
    let earlier = Absence {
        id: uuid::Uuid::now_v7(),
        practitioner_id: doc.id,
        start: at(8, 7, 0),
        end: at(8, 8, 0),
        reason: "school run".into(),
    };
    let (m, e) = (morning.clone(), earlier.clone());
    env.write(move |ctx| {
        schedules::insert_absence(ctx, &m)?;
        schedules::insert_absence(ctx, &e)
    })
    .await;
    let cases = [
        (at(8, 9, 0), at(8, 10, 0), vec![]),
        (at(8, 11, 59), at(8, 13, 0), vec![morning.clone()]),
        (at(8, 12, 0), at(8, 13, 0), vec![]),
        (at(8, 9, 0), at(8, 10, 1), vec![morning.clone()]),
        (at(8, 10, 30), at(8, 11, 0), vec![morning.clone()]),
        (
            at(8, 0, 0),
            at(9, 0, 0),
            vec![earlier.clone(), morning.clone()],
        ),
    ];
    for (i, (from, to, want)) in cases.into_iter().enumerate() {
        let got = env
            .read(move |tx| schedules::absences(tx, who, from, to))
            .await;
        assert_eq!(got, want, "case {i}");
    }
    let theirs = env
        .read(move |tx| schedules::absences(tx, oid, at(8, 0, 0), at(9, 0, 0)))
        .await;
    assert!(theirs.is_empty());
}

async fn schedules_occupied_and_slots_taken(env: Env) {
    let (doc, p) = seed(&env).await;
    use AppointmentStatus as S;
    let pending = appt(&p, &doc, at(8, 9, 0), 30, S::Pending);
    let mut overbooked = appt(&p, &doc, at(8, 9, 30), 30, S::Booked);
    overbooked.override_reason = Some("squeezed in".into());
    let cancelled = appt(&p, &doc, at(8, 10, 0), 30, S::Cancelled);
    let noshow = appt(&p, &doc, at(8, 10, 0), 30, S::Noshow);
    let off_grid = appt(&p, &doc, at(8, 10, 40), 15, S::Arrived);
    // Starts before the range and reaches into it (an override: it overlaps `pending`).
    let mut before = appt(&p, &doc, at(8, 8, 0), 90, S::Booked);
    before.override_reason = Some("long consult".into());
    let other_day = appt(&p, &doc, at(9, 9, 0), 30, S::Booked);
    add_appts(
        &env,
        &[
            &pending,
            &before,
            &overbooked,
            &cancelled,
            &noshow,
            &off_grid,
            &other_day,
        ],
    )
    .await;
    let who = doc.id;
    let slots: Vec<(DateTime<Utc>, DateTime<Utc>)> = (0..4)
        .map(|i| {
            let s = at(8, 9, 0) + Duration::minutes(30 * i);
            (s, s + Duration::minutes(30))
        })
        .collect();
    let (occupied, taken, none) = env
        .read(move |tx| {
            Ok((
                schedules::occupied(tx, who, at(8, 9, 0), at(8, 11, 0))?,
                schedules::slots_taken(tx, who, &slots)?,
                schedules::slots_taken(tx, who, &[])?,
            ))
        })
        .await;
    let got: Vec<(DateTime<Utc>, DateTime<Utc>, bool)> = occupied
        .iter()
        .map(|o| (o.start, o.end, o.tentative))
        .collect();
    assert_eq!(
        got,
        vec![
            (before.start, before.end, false),
            (pending.start, pending.end, true),
            (overbooked.start, overbooked.end, false),
            (off_grid.start, off_grid.end, false),
        ],
        "live appointments overlapping the range, by start; pending ones tentative"
    );
    // 9:00 (pending) counts; 9:30 is an override, 10:00 not live, 10:40 not a slot start.
    assert_eq!(taken, [pending.start].into_iter().collect());
    assert!(none.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Reports

async fn reports_drafts_revisions_and_lists(env: Env) {
    let (doc, p) = seed(&env).await;
    let p2 = patient("Roe", "Rita", date(1990, 3, 3), "1000000002");
    add_patients(&env, &[&p2]).await;
    let key = signing_key();
    let draft = draft_report(&p, &doc, "Chest X-ray", t0());
    let w = draft.clone();
    env.write(move |ctx| reports::put(ctx, &w)).await;
    let id = draft.id;
    let (got, exists, other) = env
        .read(move |tx| {
            Ok((
                reports::get(tx, id)?,
                reports::exists(tx, id)?,
                reports::exists(tx, ReportId::new())?,
            ))
        })
        .await;
    assert_eq!(got, Some(draft.clone()));
    assert!(exists);
    assert!(!other);

    // Signing: the current state and its revision.
    let fin = sign(
        &draft,
        ReportStatus::Final,
        &key,
        t0() + Duration::minutes(1),
    );
    let (w, rev1) = (fin.clone(), revision_of(&fin));
    env.write(move |ctx| {
        reports::put(ctx, &w)?;
        reports::add_revision(ctx, id, &rev1)
    })
    .await;
    // Amending: new content, a second revision.
    let mut amended = fin.clone();
    amended.content = content("Chest X-ray, amended");
    let amended = sign(
        &amended,
        ReportStatus::Amended,
        &key,
        t0() + Duration::minutes(2),
    );
    let (w, rev2) = (amended.clone(), revision_of(&amended));
    env.write(move |ctx| {
        reports::put(ctx, &w)?;
        reports::add_revision(ctx, id, &rev2)
    })
    .await;
    let (got, revs) = env
        .read(move |tx| Ok((reports::get(tx, id)?, reports::revisions(tx, id)?)))
        .await;
    assert_eq!(got, Some(amended.clone()));
    assert!(got.unwrap().signature_verifies(&key.verifying_key()));
    assert_eq!(revs, vec![revision_of(&fin), revision_of(&amended)]);

    // A signed revision is never replaced, and signed text changes only with a new revision.
    let again = revision_of(&fin);
    assert!(
        env.try_write(move |ctx| reports::add_revision(ctx, id, &again))
            .await
            .is_err()
    );
    let mut tampered = amended.clone();
    tampered.content.findings = "something else".into();
    tampered.version += 1;
    assert!(
        env.try_write(move |ctx| reports::put(ctx, &tampered))
            .await
            .is_err()
    );
    assert_eq!(
        env.read(move |tx| reports::get(tx, id)).await,
        Some(amended.clone())
    );

    // Lists: most recently changed first, by patient, since a time, up to a limit.
    let older = draft_report(&p, &doc, "Blood count", t0() - Duration::days(1));
    let other_patient = draft_report(&p2, &doc, "Knee", t0() + Duration::minutes(5));
    let (a, b) = (older.clone(), other_patient.clone());
    env.write(move |ctx| {
        reports::put(ctx, &a)?;
        reports::put(ctx, &b)
    })
    .await;
    let rq = ReportQuery::default;
    let cases: Vec<(ReportQuery, Vec<&Report>)> = vec![
        (rq(), vec![&other_patient, &amended, &older]),
        (
            ReportQuery {
                patient_id: Some(p.id),
                ..rq()
            },
            vec![&amended, &older],
        ),
        (
            ReportQuery {
                changed_since: Some(amended.updated_at),
                ..rq()
            },
            vec![&other_patient, &amended],
        ),
        (
            ReportQuery {
                limit: Some(1),
                ..rq()
            },
            vec![&other_patient],
        ),
    ];
    for (i, (q, want)) in cases.into_iter().enumerate() {
        let got = env.read(move |tx| reports::list(tx, &q)).await;
        let want: Vec<Report> = want.into_iter().cloned().collect();
        assert_eq!(got, want, "case {i}");
    }
    let pid = p.id;
    let of = env.read(move |tx| reports::of_patient(tx, pid)).await;
    assert_eq!(of, vec![amended, older]);
}

// ---------------------------------------------------------------------------------------------
// Events

async fn events_forget_a_received_payloads_arrival(env: Env) {
    let reviewers = Audience {
        roles: ROLE_ADMIN,
        practitioner: None,
        kiosk: None,
    };
    let mut sub = env
        .hub
        .subscribe(uuid::Uuid::nil(), [0; 32], CancellationToken::new());
    env.write(move |ctx| {
        ctx.emit(
            EventKind::ReceivedReports,
            reviewers,
            &json!({ "name": "payload-a", "content": "A" }),
        )?;
        ctx.emit(
            EventKind::ReceivedReports,
            reviewers,
            &json!({ "name": "payload-b", "content": "B" }),
        )?;
        ctx.emit(
            EventKind::PatientCreated,
            clinical(),
            &json!({ "name": "payload-a" }),
        )
    })
    .await;
    let ids: Vec<i64> = published(&mut sub, 3).await.iter().map(|f| f.id).collect();
    let gone = env
        .write(|ctx| events::forget_received(ctx, "payload-a"))
        .await;
    assert_eq!(gone, 1);
    let left = env
        .read(|tx| {
            let head = events::head(tx)?;
            events::page(tx, 0, head, 100)
        })
        .await;
    let left: Vec<i64> = left.iter().map(|e| e.id).collect();
    // Only that payload's arrival: another payload's, and other kinds naming the same, stay.
    assert_eq!(left, vec![ids[1], ids[2]]);
    assert_eq!(
        env.write(|ctx| events::forget_received(ctx, "payload-a"))
            .await,
        0
    );
}

async fn events_log_pages_and_prune(env: Env) {
    let (empty_head, empty_oldest) = env
        .read(|tx| Ok((events::head(tx)?, events::oldest(tx)?)))
        .await;
    assert_eq!(empty_head, 0);
    assert_eq!(empty_oldest, None);
    let mut sub = env
        .hub
        .subscribe(uuid::Uuid::nil(), [0; 32], CancellationToken::new());
    let doc = PractitionerId::new();
    let kiosk = KioskDeviceId::new();
    let audiences = [
        clinical(),
        Audience {
            roles: ROLE_ADMIN,
            practitioner: Some(doc),
            kiosk: Some(kiosk),
        },
        doctors_only(),
    ];
    let kinds = [
        EventKind::PatientCreated,
        EventKind::AppointmentCreated,
        EventKind::ReportUpdated,
    ];
    env.write(move |ctx| {
        for i in 0..3 {
            ctx.emit(kinds[i], audiences[i], &json!({ "n": i }))?;
        }
        Ok(())
    })
    .await;
    // An event's id is the one it is published with.
    let frames = published(&mut sub, 3).await;
    let emitted: Vec<i64> = frames.iter().map(|f| f.id).collect();
    assert!(emitted.windows(2).all(|w| w[0] < w[1]), "{emitted:?}");
    let e = emitted.clone();
    let (head, oldest, all, after_first, limited) = env
        .read(move |tx| {
            let head = events::head(tx)?;
            Ok((
                head,
                events::oldest(tx)?,
                events::page(tx, 0, head, 100)?,
                events::page(tx, e[0], head, 100)?,
                events::page(tx, 0, head, 2)?,
            ))
        })
        .await;
    assert_eq!(head, emitted[2]);
    assert_eq!(oldest, Some(emitted[0]));
    assert_eq!(all.len(), 3);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.id, emitted[i]);
        assert_eq!(e.kind, kinds[i].as_str());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&e.data).unwrap(),
            json!({ "n": i })
        );
        assert_eq!(e.audience, audiences[i]);
    }
    assert_eq!(
        after_first.iter().map(|e| e.id).collect::<Vec<_>>(),
        emitted[1..]
    );
    assert_eq!(
        limited.iter().map(|e| e.id).collect::<Vec<_>>(),
        emitted[..2]
    );
    let second = emitted[1];
    let upto = env.read(move |tx| events::page(tx, 0, second, 100)).await;
    assert_eq!(upto.len(), 2, "a page stops at its upper bound");
    // Committed events were published, in order, with their audiences.
    assert_eq!(env.hub.head(), emitted[2]);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.audience, audiences[i]);
        let text = std::str::from_utf8(&f.bytes).unwrap();
        assert!(
            text.contains(&format!("event: {}\n", kinds[i].as_str())),
            "{text}"
        );
    }
    assert!(sub.rx.try_recv().is_err());

    // Pruning keeps the newest N.
    env.write(|ctx| {
        for i in 0..2 {
            ctx.emit(EventKind::PatientUpdated, clinical(), &i)?;
        }
        Ok(())
    })
    .await;
    let more: Vec<i64> = published(&mut sub, 2).await.iter().map(|f| f.id).collect();
    let (pruned, none) = env
        .write(|ctx| Ok((events::prune(ctx, 2)?, events::prune(ctx, 2)?)))
        .await;
    assert_eq!(pruned, 3);
    assert_eq!(none, 0);
    let (head, oldest, left) = env
        .read(|tx| {
            let head = events::head(tx)?;
            Ok((head, events::oldest(tx)?, events::page(tx, 0, head, 100)?))
        })
        .await;
    assert_eq!(head, more[1]);
    assert_eq!(oldest, Some(more[0]));
    assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), more);
}

// ---------------------------------------------------------------------------------------------
// Idempotency

async fn idempotency_first_answers(env: Env) {
    env.write(|ctx| idempotency::put(ctx, "staff:a", "k1", &[1, 2, 3], 201, r#"{"id":1}"#))
        .await;
    let first_at = env.now();
    env.clock.advance(Duration::hours(2));
    env.write(|ctx| idempotency::put(ctx, "staff:a", "k2", &[4], 409, "{}"))
        .await;
    let (k1, other_actor, unknown) = env
        .read(|tx| {
            Ok((
                idempotency::get(tx, "staff:a", "k1")?,
                idempotency::get(tx, "staff:b", "k1")?,
                idempotency::get(tx, "staff:a", "k9")?,
            ))
        })
        .await;
    let k1 = k1.unwrap();
    assert_eq!(k1.fingerprint, vec![1, 2, 3]);
    assert_eq!(k1.status, 201);
    assert_eq!(k1.body, r#"{"id":1}"#);
    assert!(other_actor.is_none());
    assert!(unknown.is_none());
    // Answers older than the time go; younger ones stay.
    let (kept, gone) = env
        .write(move |ctx| {
            Ok((
                idempotency::prune(ctx, first_at)?,
                idempotency::prune(ctx, first_at + Duration::hours(1))?,
            ))
        })
        .await;
    assert_eq!(kept, 0);
    assert_eq!(gone, 1);
    let (k1, k2) = env
        .read(|tx| {
            Ok((
                idempotency::get(tx, "staff:a", "k1")?,
                idempotency::get(tx, "staff:a", "k2")?,
            ))
        })
        .await;
    assert!(k1.is_none());
    assert_eq!(k2.unwrap().status, 409);
}

// ---------------------------------------------------------------------------------------------
// Audit

async fn audit_entries_for_successes_and_failures(env: Env) {
    // An unaudited write leaves no entry.
    env.write(|ctx| store::insert_meta(ctx, "name", NODE)).await;
    assert!(
        env.read(|tx| audit::list(tx, &AuditQuery::default()))
            .await
            .is_empty()
    );
    let p = patient("Doe", "Jane", date(1980, 1, 1), "1000000001");
    let w = p.clone();
    env.store
        .write(Some(draft("patient.create", "patient/?")), move |ctx| {
            patients::insert(ctx, &w)?;
            ctx.set_entity(format!("patient/{}", w.id));
            ctx.set_detail("created");
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    env.clock.advance(Duration::seconds(1));
    let q = patient("Roe", "Rita", date(1990, 1, 1), "1000000002");
    let w = q.clone();
    let failed = env
        .store
        .write(Some(draft("patient.create", "patient/new")), move |ctx| {
            patients::insert(ctx, &w)?;
            ctx.set_entity(format!("patient/{}", w.id));
            Err::<(), _>(StoreError::Corrupt("refused on purpose".into()))
        })
        .await;
    let err = failed.unwrap_err();
    env.clock.advance(Duration::seconds(1));
    // An entity named by the draft is used when the job names none.
    env.store
        .write(Some(draft("patient.read", "patient/x")), |_ctx| {
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let qid = q.id;
    let (entries, gone) = env
        .read(move |tx| {
            Ok((
                audit::list(tx, &AuditQuery::default())?,
                patients::get(tx, qid, NODE)?,
            ))
        })
        .await;
    assert!(gone.is_none(), "the failed job's insert was rolled back");
    assert_eq!(entries.len(), 3);
    let [ok, ko, read] = &entries[..] else {
        unreachable!()
    };
    assert_eq!(ok.record.seq, 1);
    assert_eq!(ok.record.outcome, Outcome::Success);
    assert_eq!(ok.record.actor, "staff:tester");
    assert_eq!(ok.record.action, "patient.create");
    assert_eq!(ok.record.entity, format!("patient/{}", p.id));
    assert_eq!(ok.record.detail, "created");
    assert_eq!(ok.record.source, "127.0.0.1");
    assert_eq!(ok.record.recorded_at, t0());
    assert_eq!(ko.record.seq, 2);
    assert_eq!(ko.record.outcome, Outcome::Failure);
    assert_eq!(ko.record.entity, format!("patient/{}", q.id));
    assert_eq!(ko.record.detail, err.to_string());
    assert_eq!(ko.record.recorded_at, t0() + Duration::seconds(1));
    assert_eq!(ko.record.prev_hash, ok.hash);
    assert_eq!(read.record.entity, "patient/x");
    assert_eq!(read.record.detail, "");
    assert_eq!(read.record.prev_hash, ko.hash);
    let verified = env.read(audit::verify).await.unwrap();
    assert_eq!(verified.entries, 3);
    assert_eq!(verified.head, read.hash);
}

async fn audit_list_filters_and_verify(env: Env) {
    for i in 1..=5 {
        let entity = if i % 2 == 0 {
            "patient/even"
        } else {
            "patient/odd"
        };
        env.store
            .write(Some(draft("patient.read", entity)), |_| {
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    }
    let seqs = |list: Vec<carebridge_protocol::audit::AuditEntry>| {
        list.iter().map(|e| e.record.seq).collect::<Vec<_>>()
    };
    let q = AuditQuery::default;
    let cases: Vec<(AuditQuery, Vec<i64>)> = vec![
        (q(), vec![1, 2, 3, 4, 5]),
        (
            AuditQuery {
                after: Some(2),
                ..q()
            },
            vec![3, 4, 5],
        ),
        (
            AuditQuery {
                before: Some(4),
                ..q()
            },
            vec![3, 2, 1],
        ),
        (
            AuditQuery {
                before: Some(5),
                limit: Some(2),
                ..q()
            },
            vec![4, 3],
        ),
        (
            AuditQuery {
                after: Some(1),
                before: Some(5),
                ..q()
            },
            vec![4, 3, 2],
        ),
        (
            AuditQuery {
                entity: Some("patient/odd".into()),
                ..q()
            },
            vec![1, 3, 5],
        ),
        (
            AuditQuery {
                entity: Some("patient/even".into()),
                after: Some(2),
                ..q()
            },
            vec![4],
        ),
        (
            AuditQuery {
                entity: Some("patient/none".into()),
                ..q()
            },
            vec![],
        ),
        (
            AuditQuery {
                limit: Some(2),
                ..q()
            },
            vec![1, 2],
        ),
    ];
    for (i, (query, want)) in cases.into_iter().enumerate() {
        let got = env.read(move |tx| audit::list(tx, &query)).await;
        assert_eq!(seqs(got), want, "case {i}");
    }
    let verified = env.read(audit::verify).await.unwrap();
    assert_eq!(verified.entries, 5);
    let last = env
        .read(|tx| {
            audit::list(
                tx,
                &AuditQuery {
                    after: Some(4),
                    ..Default::default()
                },
            )
        })
        .await;
    assert_eq!(verified.head, last[0].hash);
}

async fn audit_list_by_actor_action_patient_and_period_with_names(env: Env) {
    let (doc, jane) = seed(&env).await;
    let other = patient("Roe", "Rik", date(1990, 2, 2), "1000000002");
    add_patients(&env, &[&other]).await;
    let visit = appt(&jane, &doc, at(8, 9, 0), 20, AppointmentStatus::Booked);
    add_appts(&env, &[&visit]).await;
    let by = |actor: String, action: &str, entity: String| AuditDraft {
        actor,
        action: action.to_owned(),
        entity,
        source: "127.0.0.1".into(),
    };
    let doc_actor = format!("staff:{}", doc.id);
    // 1 at t0; 2 an hour on; 3 by someone the store does not know, half a second later;
    // 4 the node's own, another hour on.
    let entries = [
        (
            Duration::zero(),
            by(
                doc_actor.clone(),
                "patient.read",
                format!("patient/{}", jane.id),
            ),
        ),
        (
            Duration::hours(1),
            by(
                doc_actor.clone(),
                "appointment.book",
                format!("appointment/{}", visit.id),
            ),
        ),
        (
            Duration::milliseconds(500),
            by(
                format!("staff:{}", PractitionerId::new()),
                "patient.read",
                format!("patient/{}", other.id),
            ),
        ),
        (
            Duration::hours(1),
            by("node".into(), "audit.checkpoint", String::new()),
        ),
    ];
    for (later, d) in entries {
        env.clock.advance(later);
        env.store
            .write(Some(d), |_| Ok::<_, StoreError>(()))
            .await
            .unwrap();
    }
    let seqs = |list: Vec<carebridge_protocol::audit::AuditEntry>| {
        list.iter().map(|e| e.record.seq).collect::<Vec<_>>()
    };
    let q = AuditQuery::default;
    let cases: Vec<(AuditQuery, Vec<i64>)> = vec![
        (
            AuditQuery {
                actor: Some(doc_actor.clone()),
                ..q()
            },
            vec![1, 2],
        ),
        (
            AuditQuery {
                actor: Some("staff:".into()),
                ..q()
            },
            vec![],
        ),
        (
            AuditQuery {
                action: Some("patient".into()),
                ..q()
            },
            vec![1, 3],
        ),
        (
            AuditQuery {
                action: Some("patient.read".into()),
                ..q()
            },
            vec![1, 3],
        ),
        // A family is whole words: `pat` is not `patient`.
        (
            AuditQuery {
                action: Some("pat".into()),
                ..q()
            },
            vec![],
        ),
        (
            AuditQuery {
                patient: Some(jane.id),
                ..q()
            },
            vec![1, 2],
        ),
        (
            AuditQuery {
                patient: Some(other.id),
                ..q()
            },
            vec![3],
        ),
        (
            AuditQuery {
                patient: Some(PatientId::new()),
                ..q()
            },
            vec![],
        ),
        (
            AuditQuery {
                from: Some(t0() + Duration::hours(1)),
                ..q()
            },
            vec![2, 3, 4],
        ),
        (
            AuditQuery {
                to: Some(t0() + Duration::hours(1)),
                ..q()
            },
            vec![1],
        ),
        // Bounds inside a second: entry 3 is at 09:00:00.5.
        (
            AuditQuery {
                from: Some(t0() + Duration::milliseconds(3_600_100)),
                to: Some(t0() + Duration::milliseconds(3_600_600)),
                ..q()
            },
            vec![3],
        ),
        (
            AuditQuery {
                actor: Some(doc_actor.clone()),
                patient: Some(jane.id),
                from: Some(t0() + Duration::minutes(1)),
                ..q()
            },
            vec![2],
        ),
        (
            AuditQuery {
                before: Some(5),
                actor: Some(doc_actor.clone()),
                ..q()
            },
            vec![2, 1],
        ),
    ];
    for (i, (query, want)) in cases.into_iter().enumerate() {
        let got = env.read(move |tx| audit::list(tx, &query)).await;
        assert_eq!(seqs(got), want, "case {i}");
    }

    let lines = env
        .read(|tx| {
            let entries = audit::list(tx, &AuditQuery::default())?;
            audit::lines(tx, entries)
        })
        .await;
    let named: Vec<_> = lines
        .iter()
        .map(|l| (l.actor_name.as_deref(), l.entity_name.as_deref(), l.patient))
        .collect();
    assert_eq!(
        named,
        [
            (Some("Dr. moreau"), Some("Jane Doe"), Some(jane.id)),
            (Some("Dr. moreau"), Some("Jane Doe"), Some(jane.id)),
            (None, Some("Rik Roe"), Some(other.id)),
            (None, None, None),
        ]
    );
    assert_eq!(
        lines.iter().map(|l| l.entry.record.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    let card = env
        .read(|tx| audit::patient_of_card(tx, "1000000002"))
        .await;
    assert_eq!(card, Some(other.id));
    assert_eq!(
        env.read(|tx| audit::patient_of_card(tx, "9999999999"))
            .await,
        None
    );
}

async fn audit_checkpoints_sign_the_head_and_anchor_the_trail(env: Env) {
    let signing = signing_key();
    let agreement = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    let s = signing.clone();
    env.write(move |ctx| keys::insert(ctx, &s, &agreement))
        .await;
    // An empty chain has nothing to sign.
    assert_eq!(
        carebridge_server::audit::checkpoint(&env.store)
            .await
            .unwrap(),
        None
    );
    for entity in ["patient/a", "patient/b"] {
        env.store
            .write(Some(draft("patient.read", entity)), |_| {
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    }
    let first = carebridge_server::audit::checkpoint(&env.store)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.number, first.seq), (1, 2));
    assert_eq!(first.signed_at, env.now());
    assert!(first.verifies_with(&signing.verifying_key()));
    // Nothing audited since but the checkpoint's own entry: no new checkpoint.
    assert_eq!(
        carebridge_server::audit::checkpoint(&env.store)
            .await
            .unwrap(),
        None
    );
    env.clock.advance(Duration::seconds(1));
    env.store
        .write(Some(draft("patient.read", "patient/c")), |_| {
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let second = carebridge_server::audit::checkpoint(&env.store)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((second.number, second.seq), (2, 4));
    let exported = first.clone();
    let (entries, head, latest, all, after_first, trail) = env
        .read(move |tx| {
            Ok((
                audit::list(tx, &AuditQuery::default())?,
                audit::head(tx)?,
                audit::latest_checkpoint(tx)?,
                audit::checkpoints(tx, 0, 100)?,
                audit::checkpoints(tx, 1, 100)?,
                audit::verify_trail(tx, vec![exported])?,
            ))
        })
        .await;
    // Each checkpoint signed the head's hash, and the entry after it records it.
    assert_eq!(first.hash, entries[1].hash);
    assert_eq!(second.hash, entries[3].hash);
    for (cp, recording) in [(&first, &entries[2]), (&second, &entries[4])] {
        assert_eq!(recording.record.action, "audit.checkpoint");
        assert_eq!(recording.record.actor, "node");
        assert_eq!(recording.record.entity, cp.entity());
    }
    assert_eq!(head.0, 5);
    assert_eq!(latest.as_ref(), Some(&second));
    assert_eq!(all, vec![first.clone(), second.clone()]);
    assert_eq!(after_first, vec![second.clone()]);
    let trail = trail.unwrap();
    assert_eq!((trail.entries, trail.checkpoints), (5, 3));
    assert_eq!(trail.latest, Some(second));
}

async fn audit_explicit_entries_roll_back_with_their_job(env: Env) {
    // A job may append entries of its own (`WriteCtx::audit`), before its draft's.
    env.write(|ctx| {
        ctx.audit(
            &draft("report.send", "report/1"),
            "report/1",
            Outcome::Success,
            "manual",
        )
    })
    .await;
    // A failing job's own entries go with it; the chain goes on from the last kept entry.
    let failed = env
        .store
        .write(Some(draft("report.send", "report/2")), |ctx| {
            ctx.audit(
                &draft("report.send", "report/2"),
                "report/2",
                Outcome::Success,
                "rolled back",
            )?;
            Err::<(), _>(StoreError::Corrupt("peer unknown".into()))
        })
        .await;
    assert!(failed.is_err());
    env.write(|ctx| {
        ctx.audit(
            &draft("report.send", "report/3"),
            "report/3",
            Outcome::Success,
            "after",
        )
    })
    .await;
    let (entries, verified) = env
        .read(|tx| Ok((audit::list(tx, &AuditQuery::default())?, audit::verify(tx)?)))
        .await;
    let got: Vec<(i64, &str, Outcome, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.record.seq,
                e.record.entity.as_str(),
                e.record.outcome,
                e.record.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "report/1", Outcome::Success, "manual"),
            (
                2,
                "report/2",
                Outcome::Failure,
                "stored data is corrupt: peer unknown"
            ),
            (3, "report/3", Outcome::Success, "after"),
        ]
    );
    assert_eq!(entries[1].record.prev_hash, entries[0].hash);
    assert_eq!(entries[2].record.prev_hash, entries[1].hash);
    assert_eq!(verified.unwrap().entries, 3);
}

// ---------------------------------------------------------------------------------------------
// The write path: savepoints, group commit, publish after commit

/// A write job that tells when it has started and then holds the writer until released.
struct Holding<F> {
    job: Pin<Box<F>>,
    started: tokio::sync::oneshot::Receiver<()>,
    release: std::sync::mpsc::Sender<()>,
}

fn holding_job(env: &Env) -> Holding<impl Future<Output = Result<(), StoreError>> + '_> {
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let job = env.store.write(None, move |_ctx| {
        let _ = started_tx.send(());
        hold.recv().map_err(|e| StoreError::Task(e.to_string()))
    });
    Holding {
        job: Box::pin(job),
        started,
        release,
    }
}

async fn write_a_failed_job_leaves_nothing_while_its_batch_commits(env: Env) {
    let mut sub = env
        .hub
        .subscribe(uuid::Uuid::nil(), [0; 32], CancellationToken::new());
    let head_before = env.hub.head();
    // A first job holds the writer until the jobs below are queued, so that they are taken
    // together: one transaction, one savepoint each. The last of them holds the transaction
    // open, so that what the others did can be looked at before the commit.
    let mut first = holding_job(&env);
    poll_once(first.job.as_mut());
    (&mut first.started).await.unwrap();

    let job = |who: &'static str, card: &'static str, fail: bool| {
        let p = patient("Batch", who, date(1980, 1, 1), card);
        let id = p.id;
        let fut = env.store.write(
            Some(draft("patient.create", who)),
            move |ctx| -> Result<(), StoreError> {
                patients::insert(ctx, &p)?;
                ctx.emit(
                    EventKind::PatientCreated,
                    clinical(),
                    &json!({ "who": who }),
                )?;
                ctx.set_detail(who);
                if fail {
                    Err(StoreError::Corrupt(format!("{who} fails")))
                } else {
                    Ok(())
                }
            },
        );
        (id, Box::pin(fut))
    };
    let (a_id, mut a) = job("Anna", "2000000001", false);
    let (b_id, mut b) = job("Bert", "2000000002", true);
    let (c_id, mut c) = job("Cora", "2000000003", false);
    let mut last = holding_job(&env);
    poll_once(a.as_mut());
    poll_once(b.as_mut());
    poll_once(c.as_mut());
    poll_once(last.job.as_mut());
    first.release.send(()).unwrap();
    (&mut last.started).await.unwrap();

    // A, B and C have run, in the transaction still open: nothing of theirs is visible to a
    // reader, published, or answered yet.
    assert!(matches!(
        sub.rx.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));
    assert_eq!(env.hub.head(), head_before);
    assert_eq!(
        env.read(move |tx| patients::get(tx, a_id, NODE)).await,
        None
    );
    poll_once(a.as_mut());
    poll_once(b.as_mut());
    last.release.send(()).unwrap();
    first.job.await.unwrap();
    last.job.await.unwrap();
    a.await.unwrap();
    let eb = b.await;
    c.await.unwrap();
    assert!(matches!(eb, Err(StoreError::Corrupt(_))), "{eb:?}");
    // Only the committed jobs' events are published: Anna's and Cora's, and after them
    // whatever comes next, never the rolled-back one.
    env.write(|ctx| ctx.emit(EventKind::PatientUpdated, clinical(), &"next"))
        .await;
    let frames = published(&mut sub, 3).await;
    let text = |f: &Frame| std::str::from_utf8(&f.bytes).unwrap().to_owned();
    assert!(text(&frames[0]).contains("Anna"), "{}", text(&frames[0]));
    assert!(text(&frames[1]).contains("Cora"), "{}", text(&frames[1]));
    assert!(text(&frames[2]).contains("next"), "{}", text(&frames[2]));
    let (ea, ec) = (frames[0].id, frames[1].id);

    // What the failed job wrote is gone; what the others wrote is there.
    let (pa, pb, pc, found, log, entries, verified) = env
        .read(move |tx| {
            let head = events::head(tx)?;
            Ok((
                patients::get(tx, a_id, NODE)?,
                patients::get(tx, b_id, NODE)?,
                patients::get(tx, c_id, NODE)?,
                patients::search(
                    tx,
                    &PatientSearch {
                        name: Some("batch".into()),
                        ..Default::default()
                    },
                    NODE,
                )?,
                events::page(tx, head_before, head.min(ec), 100)?,
                audit::list(tx, &AuditQuery::default())?,
                audit::verify(tx)?,
            ))
        })
        .await;
    assert!(pa.is_some());
    assert!(pb.is_none());
    assert!(pc.is_some());
    assert_eq!(found.len(), 2);
    assert_eq!(log.iter().map(|e| e.id).collect::<Vec<_>>(), vec![ea, ec]);
    assert!(log.iter().all(|e| !e.data.contains("Bert")));
    // Its failure is audited in the same commit, and the chain holds.
    let outcomes: Vec<(String, Outcome)> = entries
        .iter()
        .map(|e| (e.record.entity.clone(), e.record.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("Anna".into(), Outcome::Success),
            ("Bert".into(), Outcome::Failure),
            ("Cora".into(), Outcome::Success),
        ]
    );
    // The reason, then what the job noted before it failed.
    assert_eq!(
        entries[1].record.detail,
        "stored data is corrupt: Bert fails (Bert)"
    );
    assert_eq!(verified.unwrap().entries, 3);

    assert!(frames.iter().all(|f| !text(f).contains("Bert")));
    assert_eq!(env.hub.head(), frames[2].id);
}

async fn write_a_panicking_job_is_rolled_back_alone(env: Env) {
    let mut sub = env
        .hub
        .subscribe(uuid::Uuid::nil(), [0; 32], CancellationToken::new());
    let p = patient("Doe", "Jane", date(1980, 1, 1), "1000000001");
    let id = p.id;
    let panicked = env
        .try_write(move |ctx| {
            patients::insert(ctx, &p)?;
            ctx.emit(EventKind::PatientCreated, clinical(), &1)?;
            if p.version == 1 {
                panic!("a bug in a job");
            }
            Ok(())
        })
        .await;
    assert!(panicked.is_err());
    assert_eq!(env.read(move |tx| patients::get(tx, id, NODE)).await, None);
    // The writer goes on.
    let q = patient("Roe", "Rita", date(1990, 1, 1), "1000000002");
    let qid = q.id;
    add_patients(&env, &[&q]).await;
    assert!(
        env.read(move |tx| patients::get(tx, qid, NODE))
            .await
            .is_some()
    );
    assert_eq!(env.read(events::head).await, 0);
    // Nothing of the panicked job was published: the first event is the next job's.
    env.write(|ctx| ctx.emit(EventKind::PatientUpdated, clinical(), &"next"))
        .await;
    let first = published(&mut sub, 1).await;
    assert!(
        std::str::from_utf8(&first[0].bytes)
            .unwrap()
            .contains("next")
    );
}

// ---------------------------------------------------------------------------------------------
// Snapshot

async fn snapshot_reads_what_it_is_told_in_one_state(env: Env) {
    let (doc, p) = seed(&env).await;
    let rita = staff(Role::Reception, "rita", "Rita");
    let gone = staff(Role::Doctor, "gone", "Dr. Gone");
    add_staff(&env, &[&rita, &gone]).await;
    let mut off = gone.clone();
    off.disabled = true;
    off.version = 2;
    let kiosk = KioskDeviceId::new();
    let schedule = Schedule {
        practitioner_id: doc.id,
        slot_minutes: 15,
        hours: vec![],
        version: 1,
    };
    let own = appt(&p, &doc, at(8, 9, 0), 30, AppointmentStatus::Booked);
    let mut by_kiosk = appt(&p, &doc, at(8, 10, 0), 30, AppointmentStatus::Pending);
    by_kiosk.booked_by = BookedBy::Kiosk { id: kiosk };
    let report = draft_report(&p, &doc, "Note", t0());
    let (s, r) = (schedule.clone(), report.clone());
    add_appts(&env, &[&own, &by_kiosk]).await;
    let mut sub = env
        .hub
        .subscribe(uuid::Uuid::nil(), [0; 32], CancellationToken::new());
    env.write(move |ctx| {
        practitioners::update(ctx, &off, None)?;
        schedules::put(ctx, &s)?;
        reports::put(ctx, &r)?;
        ctx.emit(EventKind::ReportCreated, doctors_only(), &r)
    })
    .await;
    // Once published, the event is in the log, and a snapshot begins from it.
    let event = published(&mut sub, 1).await[0].id;
    // A snapshot is written on a blocking thread, as the node writes it.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let reader = env.store.open_reader().unwrap();
                let take = |contents: snapshot::Contents, after: Option<&snapshot::Cursor>| {
                    let mut items = Vec::new();
                    snapshot::write(&reader, &contents, NODE, after, |i| {
                        items.push(i.clone());
                        true
                    })
                    .unwrap();
                    items
                };
                // What a doctor's holds: every active account, schedules, patients, their appointments,
                // reports.
                let doctors = snapshot::Contents {
                    practitioners: Some(false),
                    schedules: true,
                    patients: true,
                    appointments: Some(appointments::Scope::Practitioner(doc.id)),
                    reports: true,
                };
                let as_doctor = take(doctors, None);
                let mut staff_list = vec![doc.clone(), rita.clone()];
                staff_list.sort_by_key(|p| p.id);
                let mut appts = vec![own.clone(), by_kiosk.clone()];
                appts.sort_by_key(|a| a.id);
                let mut want = vec![SnapshotItem::Begin { event_id: event }];
                want.extend(staff_list.into_iter().map(SnapshotItem::Practitioner));
                want.push(SnapshotItem::Schedule(schedule.clone()));
                want.push(SnapshotItem::Patient(p.clone()));
                want.extend(appts.into_iter().map(SnapshotItem::Appointment));
                want.push(SnapshotItem::Report(report.clone()));
                want.push(SnapshotItem::End { records: 7 });
                assert_eq!(as_doctor, want);

                // Active doctors only, schedules, one kiosk's bookings; no patients, no reports.
                let as_kiosk = take(
                    snapshot::Contents {
                        practitioners: Some(true),
                        schedules: true,
                        patients: false,
                        appointments: Some(appointments::Scope::Kiosk(kiosk)),
                        reports: false,
                    },
                    None,
                );
                assert_eq!(
                    as_kiosk,
                    vec![
                        SnapshotItem::Begin { event_id: event },
                        SnapshotItem::Practitioner(doc.clone()),
                        SnapshotItem::Schedule(schedule),
                        SnapshotItem::Appointment(by_kiosk),
                        SnapshotItem::End { records: 3 },
                    ]
                );
                // Resuming after a record starts after it.
                let cursor = snapshot::Cursor::parse(&format!("patient:{}", p.id)).unwrap();
                let resumed = take(doctors, Some(&cursor));
                assert_eq!(resumed.len(), 1 + 2 + 1 + 1);
                assert!(matches!(resumed[1], SnapshotItem::Appointment(_)));
                // Nothing at all; and one patient's appointments, everyone's.
                let nothing = snapshot::Contents {
                    practitioners: None,
                    schedules: false,
                    patients: false,
                    appointments: None,
                    reports: false,
                };
                assert_eq!(
                    take(nothing, None),
                    vec![
                        SnapshotItem::Begin { event_id: event },
                        SnapshotItem::End { records: 0 },
                    ]
                );
                let by_patient = take(
                    snapshot::Contents {
                        appointments: Some(appointments::Scope::Patient(p.id)),
                        ..nothing
                    },
                    None,
                );
                assert_eq!(by_patient.len(), 2 + 2);
                // Everyone's, as the front desk's snapshot holds them.
                let everyone = take(
                    snapshot::Contents {
                        appointments: Some(appointments::Scope::All),
                        ..nothing
                    },
                    None,
                );
                assert_eq!(everyone.len(), 2 + 2);
                let other = take(
                    snapshot::Contents {
                        appointments: Some(appointments::Scope::Patient(PatientId::new())),
                        ..nothing
                    },
                    None,
                );
                assert_eq!(other.len(), 2);
            })
            .join()
            .unwrap();
    });
    // A reader of its own reads one state between begin and end, whatever commits meanwhile.
    // (Blocking, so off the async thread, as the node uses it.)
    let store = env.store.clone();
    let (tx_reader, before) = tokio::task::spawn_blocking(move || {
        let r = store.open_reader().unwrap();
        r.begin().unwrap();
        let before = events::head(&r.tx()).unwrap();
        (r, before)
    })
    .await
    .unwrap();
    env.write(|ctx| ctx.emit(EventKind::PatientUpdated, clinical(), &0))
        .await;
    published(&mut sub, 1).await;
    let (still, after) = tokio::task::spawn_blocking(move || {
        let still = events::head(&tx_reader.tx()).unwrap();
        tx_reader.end().unwrap();
        (still, events::head(&tx_reader.tx()).unwrap())
    })
    .await
    .unwrap();
    assert_eq!(still, before);
    assert!(after > before);
}

// ---------------------------------------------------------------------------------------------
// Federation

async fn federation_peers(env: Env) {
    let k1 = signing_key();
    let g1 = grant(
        "insurer.example",
        "insurer",
        "https://ins.example/",
        &k1,
        "cbk_one",
    );
    add_peer(&env, g1.clone()).await;
    let (got, by_key, exists, missing) = env
        .read(|tx| {
            Ok((
                peers::get(tx, "insurer.example")?,
                peers::by_api_key(tx, "cbk_one")?,
                peers::exists(tx, "insurer.example")?,
                peers::exists(tx, "nobody.example")?,
            ))
        })
        .await;
    let got = got.unwrap();
    assert_eq!(got.name, "insurer.example");
    assert_eq!(got.kind, NodeKind::Insurer);
    assert_eq!(
        got.url, "https://ins.example",
        "the trailing slash is dropped"
    );
    assert_eq!(got.signing_key, k1.verifying_key());
    assert_eq!(
        got.agreement_key.as_bytes(),
        g1.identity.agreement_key().unwrap().as_bytes()
    );
    assert_eq!(got.api_key, "cbk_one");
    assert_eq!(got.allowed_sources, g1.allowed_sources);
    assert_eq!(got.allowed_types, vec![MessageType::MedicalReports]);
    assert_eq!(by_key.unwrap().name, "insurer.example");
    assert!(exists);
    assert!(!missing);

    // Put again: what is known of it is replaced; the old key no longer finds it.
    let k2 = signing_key();
    let mut g2 = grant(
        "insurer.example",
        "hospital",
        "https://new.example",
        &k2,
        "cbk_two",
    );
    g2.allowed_sources = vec![
        SourceRule::parse("127.0.0.2").unwrap(),
        SourceRule::parse("::1").unwrap(),
    ];
    g2.allowed_types = vec![MessageType::AdminUpdate, MessageType::AdminUpdateAck];
    add_peer(&env, g2.clone()).await;
    add_peer(
        &env,
        grant(
            "alpha.example",
            "hospital",
            "https://a.example",
            &k1,
            "cbk_a",
        ),
    )
    .await;
    let (got, old_key, new_key, list) = env
        .read(|tx| {
            Ok((
                peers::get(tx, "insurer.example")?,
                peers::by_api_key(tx, "cbk_one")?,
                peers::by_api_key(tx, "cbk_two")?,
                peers::list(tx)?,
            ))
        })
        .await;
    let got = got.unwrap();
    assert_eq!(got.kind, NodeKind::Hospital);
    assert_eq!(got.url, "https://new.example");
    assert_eq!(got.signing_key, k2.verifying_key());
    assert_eq!(got.api_key, "cbk_two");
    assert_eq!(got.allowed_sources, g2.allowed_sources);
    assert_eq!(got.allowed_types, g2.allowed_types);
    assert!(old_key.is_none());
    assert_eq!(new_key.unwrap().name, "insurer.example");
    assert_eq!(
        list.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        vec!["alpha.example", "insurer.example"]
    );
}

async fn federation_transmissions(env: Env) {
    let k = signing_key();
    add_peer(
        &env,
        grant("ins", "insurer", "https://ins.example", &k, "cbk_1"),
    )
    .await;
    add_peer(
        &env,
        grant("other", "insurer", "https://o.example", &k, "cbk_2"),
    )
    .await;
    let patient_a = PatientId::new();
    let t = env.now();
    assert_eq!(env.read(transmissions::oldest_waiting).await, None);
    let first = transmission("ins", Some(patient_a), t);
    let second = transmission("ins", None, t + Duration::minutes(1));
    let third = transmission("other", Some(patient_a), t + Duration::minutes(2));
    let (f, s, th) = (first.clone(), second.clone(), third.clone());
    env.write(move |ctx| {
        transmissions::insert(ctx, &f, b"envelope-1")?;
        transmissions::insert(ctx, &s, b"envelope-2")?;
        transmissions::insert(ctx, &th, b"envelope-3")
    })
    .await;
    let id = first.id;
    let (got, all, of_patient, limited, due, due_early, next) = env
        .read(move |tx| {
            Ok((
                transmissions::get(tx, id)?,
                transmissions::list(tx, None, 10)?,
                transmissions::list(tx, Some(patient_a), 10)?,
                transmissions::list(tx, None, 1)?,
                transmissions::due(tx, t + Duration::minutes(1), 10)?,
                transmissions::due(tx, t - Duration::milliseconds(1), 10)?,
                transmissions::next_due(tx)?,
            ))
        })
        .await;
    assert_eq!(got, Some(first.clone()), "queued, no attempts, version 1");
    let tids = |l: &[Transmission]| l.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        tids(&all),
        vec![third.id, second.id, first.id],
        "newest first"
    );
    assert_eq!(tids(&of_patient), vec![third.id, first.id]);
    assert_eq!(tids(&limited), vec![third.id]);
    assert_eq!(
        due.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(),
        vec![(first.id, 0), (second.id, 0)],
        "the longest-due first"
    );
    assert_eq!(due[0].peer, "ins");
    assert_eq!(due[0].envelope, b"envelope-1");
    assert!(due_early.is_empty());
    assert_eq!(next, Some(t));
    assert_eq!(env.read(transmissions::oldest_waiting).await, Some(t));

    // An attempt: sent, leased until its lease ends.
    env.clock.advance(Duration::seconds(10));
    let lease = env.now() + Duration::minutes(5);
    let taken = env
        .write(move |ctx| transmissions::take_for_attempt(ctx, id, lease))
        .await;
    assert!(taken);
    let (got, due_now, due_later) = env
        .read(move |tx| {
            Ok((
                transmissions::get(tx, id)?.unwrap(),
                transmissions::due(tx, lease - Duration::milliseconds(1), 10)?,
                transmissions::due(tx, lease, 10)?,
            ))
        })
        .await;
    assert_eq!(got.state, TransmissionState::Sent);
    assert_eq!(got.version, 2);
    assert_eq!(got.updated_at, t + Duration::seconds(10));
    assert!(!tids_due(&due_now).contains(&id));
    assert!(tids_due(&due_later).contains(&id));

    // Its outcome settles an attempt in flight, and only that (unless acknowledged).
    let retry = lease + Duration::minutes(1);
    let (settled, settled_again) = env
        .write(move |ctx| {
            Ok((
                transmissions::settle(
                    ctx,
                    id,
                    TransmissionState::Queued,
                    Some("timed out"),
                    1,
                    retry,
                )?,
                transmissions::settle(ctx, id, TransmissionState::Failed, Some("x"), 2, retry)?,
            ))
        })
        .await;
    assert!(settled);
    assert!(!settled_again, "a queued transmission is not in flight");
    let got = env
        .read(move |tx| transmissions::get(tx, id))
        .await
        .unwrap();
    assert_eq!(got.state, TransmissionState::Queued);
    assert_eq!(got.attempts, 1);
    assert_eq!(got.last_error.as_deref(), Some("timed out"));
    assert_eq!(got.version, 3);
    let next = env.read(transmissions::next_due).await;
    assert_eq!(
        next,
        Some(t + Duration::minutes(1)),
        "the second is due first now"
    );

    // The peer's receipt, then acknowledged (even though no longer in flight).
    let received_at = t + Duration::seconds(30);
    let acked = env
        .write(move |ctx| {
            transmissions::record_receipt(ctx, id, r#"{"ok":true}"#, received_at)?;
            transmissions::settle(ctx, id, TransmissionState::Acknowledged, None, 2, retry)
        })
        .await;
    assert!(acked);
    let got = env
        .read(move |tx| transmissions::get(tx, id))
        .await
        .unwrap();
    assert_eq!(got.state, TransmissionState::Acknowledged);
    assert_eq!(got.acknowledged_at, Some(received_at));
    assert_eq!(got.attempts, 2);
    assert_eq!(got.last_error, None);
    assert_eq!(
        env.read(move |tx| transmissions::envelope(tx, id)).await,
        Some(b"envelope-1".to_vec()),
        "reports' envelope is kept after the receipt"
    );
    let again = env
        .write(move |ctx| transmissions::take_for_attempt(ctx, id, lease))
        .await;
    assert!(!again, "an acknowledged transmission waits no more");
    assert_eq!(
        env.read(transmissions::oldest_waiting).await,
        Some(t + Duration::minutes(1)),
        "the acknowledged one waits no more"
    );

    // Overdue: waiting ones created at or before the time, once.
    let cutoff = t + Duration::minutes(1);
    let (overdue, overdue_again) = env
        .write(move |ctx| {
            Ok((
                transmissions::mark_overdue(ctx, cutoff)?,
                transmissions::mark_overdue(ctx, cutoff)?,
            ))
        })
        .await;
    assert_eq!(overdue, vec![second.id]);
    assert!(overdue_again.is_empty());
    let sid = second.id;
    let got = env
        .read(move |tx| transmissions::get(tx, sid))
        .await
        .unwrap();
    assert!(got.overdue);
    assert_eq!(got.version, 2);

    // Stop waiting: what waits for that peer about that patient fails, saying why.
    let third_id = third.id;
    let (stopped, none) = env
        .write(move |ctx| {
            Ok((
                transmissions::stop_waiting(ctx, patient_a, "other", "consent withdrawn")?,
                transmissions::stop_waiting(ctx, patient_a, "ins", "consent withdrawn")?,
            ))
        })
        .await;
    assert_eq!(stopped, vec![third_id]);
    assert!(none.is_empty(), "the acknowledged one is done");
    let (got, taken) = env
        .write(move |ctx| {
            Ok((
                transmissions::get(ctx, third_id)?.unwrap(),
                transmissions::take_for_attempt(ctx, third_id, lease)?,
            ))
        })
        .await;
    assert_eq!(got.state, TransmissionState::Failed);
    assert_eq!(got.last_error.as_deref(), Some("consent withdrawn"));
    assert!(!taken);
    let next = env.read(transmissions::next_due).await;
    assert_eq!(next, Some(t + Duration::minutes(1)));
    assert_eq!(
        env.read(transmissions::oldest_waiting).await,
        Some(t + Duration::minutes(1)),
        "the second still waits; the failed third does not"
    );
}

fn tids_due(l: &[transmissions::Due]) -> Vec<uuid::Uuid> {
    l.iter().map(|d| d.id).collect()
}

fn medical_reports(key: &SigningKey, p: &Patient, doc: &Practitioner) -> MedicalReports {
    let report = sign(
        &draft_report(p, doc, "Discharge letter", t0()),
        ReportStatus::Final,
        key,
        t0(),
    );
    MedicalReports {
        patient: SharedPatient {
            global_id: p.global_id.clone(),
            family_name: p.family_name.clone(),
            given_name: p.given_name.clone(),
            birth_date: p.birth_date,
        },
        reports: vec![report],
        sent_by: "Dr. moreau".into(),
        consent_recorded_at: t0(),
        consent_recorded_by: "Rita".into(),
    }
}

async fn federation_received(env: Env) {
    let key = signing_key();
    let content = medical_reports(
        &key,
        &patient("Doe", "Jane", date(1980, 1, 1), "1"),
        &doctor("moreau"),
    );
    let payload = serde_json::to_vec(&content).unwrap();
    let (e1, e2, e3) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    let first_at = env.now();
    let p = payload.clone();
    env.write(move |ctx| {
        received::insert(
            ctx,
            &received::Accepted {
                name: "medical-reports-hosp-1",
                envelope_id: e1,
                source: "hosp",
                message_type: MessageType::MedicalReports,
                payload: &p,
                receipt: r#"{"receipt":1}"#,
            },
        )
    })
    .await;
    env.clock.advance(Duration::minutes(1));
    let p = payload.clone();
    env.write(move |ctx| {
        received::insert(
            ctx,
            &received::Accepted {
                name: "medical-reports-hosp-2",
                envelope_id: e2,
                source: "hosp",
                message_type: MessageType::MedicalReports,
                payload: &p,
                receipt: r#"{"receipt":2}"#,
            },
        )?;
        received::insert(
            ctx,
            &received::Accepted {
                name: "admin-update-ack-hosp-3",
                envelope_id: e3,
                source: "hosp",
                message_type: MessageType::AdminUpdateAck,
                payload: b"{}",
                receipt: r#"{"receipt":3}"#,
            },
        )
    })
    .await;
    // The same envelope from the same peer is stored once.
    let p = payload.clone();
    assert!(
        env.try_write(move |ctx| received::insert(
            ctx,
            &received::Accepted {
                name: "medical-reports-hosp-9",
                envelope_id: e1,
                source: "hosp",
                message_type: MessageType::MedicalReports,
                payload: &p,
                receipt: "{}",
            },
        ))
        .await
        .is_err()
    );
    let (receipt, other_source, unknown, taken, free, got, list, one) = env
        .read(move |tx| {
            Ok((
                received::receipt_for(tx, "hosp", e1)?,
                received::receipt_for(tx, "elsewhere", e1)?,
                received::receipt_for(tx, "hosp", uuid::Uuid::now_v7())?,
                received::name_taken(tx, "admin-update-ack-hosp-3")?,
                received::name_taken(tx, "medical-reports-hosp-9")?,
                received::get(tx, "medical-reports-hosp-1")?,
                received::list(tx, 10)?,
                received::list(tx, 1)?,
            ))
        })
        .await;
    assert_eq!(receipt.as_deref(), Some(r#"{"receipt":1}"#));
    assert!(other_source.is_none());
    assert!(unknown.is_none());
    assert!(taken);
    assert!(!free);
    let got = got.unwrap();
    assert_eq!(got.name, "medical-reports-hosp-1");
    assert_eq!(got.source, "hosp");
    assert_eq!(got.received_at, first_at);
    assert_eq!(got.content, content);
    assert!(
        !got.signatures_verified,
        "an unknown peer's signatures do not verify"
    );
    let names = |l: &[carebridge_protocol::federation::payload::ReceivedReports]| {
        l.iter().map(|r| r.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(&list),
        vec!["medical-reports-hosp-2", "medical-reports-hosp-1"],
        "medical reports only, newest first"
    );
    assert_eq!(names(&one), vec!["medical-reports-hosp-2"]);
    let none = env
        .read(|tx| received::get(tx, "admin-update-ack-hosp-3"))
        .await;
    assert!(none.is_none(), "only medical reports are read as such");

    // Once the peer is known, its signatures verify (checked again on every read).
    add_peer(
        &env,
        grant("hosp", "hospital", "https://h.example", &key, "cbk_h"),
    )
    .await;
    let got = env
        .read(|tx| received::get(tx, "medical-reports-hosp-1"))
        .await
        .unwrap();
    assert!(got.signatures_verified);
    add_peer(
        &env,
        grant(
            "hosp",
            "hospital",
            "https://h.example",
            &signing_key(),
            "cbk_h",
        ),
    )
    .await;
    let got = env
        .read(|tx| received::get(tx, "medical-reports-hosp-1"))
        .await
        .unwrap();
    assert!(!got.signatures_verified, "a changed key no longer verifies");

    // Retention: what arrived before a time, oldest first, whatever its type; then deleted.
    let second_at = first_at + Duration::minutes(1);
    let (older, all, limited) = env
        .read(move |tx| {
            Ok((
                received::older_than(tx, second_at, 10)?,
                received::older_than(tx, second_at + Duration::milliseconds(1), 10)?,
                received::older_than(tx, second_at + Duration::milliseconds(1), 1)?,
            ))
        })
        .await;
    assert_eq!(
        older.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["medical-reports-hosp-1"]
    );
    assert_eq!(older[0].source, "hosp");
    assert_eq!(older[0].received_at, first_at);
    assert_eq!(older[0].message_type, "medical-reports");
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].name, "medical-reports-hosp-1");
    assert_eq!(limited.len(), 1);
    env.write(|ctx| received::delete(ctx, "medical-reports-hosp-1"))
        .await;
    let (taken, got, receipt, list) = env
        .read(move |tx| {
            Ok((
                received::name_taken(tx, "medical-reports-hosp-1")?,
                received::get(tx, "medical-reports-hosp-1")?,
                received::receipt_for(tx, "hosp", e1)?,
                received::list(tx, 10)?,
            ))
        })
        .await;
    assert!(!taken);
    assert!(got.is_none());
    assert!(receipt.is_none());
    assert_eq!(names(&list), vec!["medical-reports-hosp-2"]);
}

async fn federation_nonces(env: Env) {
    let (first, replay, other_peer, other_nonce) = env
        .write(|ctx| {
            Ok((
                received::record_nonce(ctx, "hosp", "n1")?,
                received::record_nonce(ctx, "hosp", "n1")?,
                received::record_nonce(ctx, "ins", "n1")?,
                received::record_nonce(ctx, "hosp", "n2")?,
            ))
        })
        .await;
    assert!(first);
    assert!(!replay, "a nonce seen before is a replay");
    assert!(other_peer);
    assert!(other_nonce);
    let seen_at = env.now();
    env.clock.advance(Duration::minutes(10));
    // Forgetting those seen before the time: not yet, then yes.
    let still_replay = env
        .write(move |ctx| {
            received::forget_nonces(ctx, seen_at)?;
            received::record_nonce(ctx, "hosp", "n1")
        })
        .await;
    assert!(!still_replay);
    let fresh = env
        .write(move |ctx| {
            received::forget_nonces(ctx, seen_at + Duration::milliseconds(1))?;
            Ok((
                received::record_nonce(ctx, "hosp", "n1")?,
                received::record_nonce(ctx, "ins", "n1")?,
            ))
        })
        .await;
    assert_eq!(fresh, (true, true));
}

async fn federation_consents(env: Env) {
    let (_, p) = seed(&env).await;
    let k = signing_key();
    add_peer(
        &env,
        grant("ins", "insurer", "https://i.example", &k, "cbk_i"),
    )
    .await;
    add_peer(
        &env,
        grant("alpha", "insurer", "https://a.example", &k, "cbk_a"),
    )
    .await;
    let pid = p.id;
    let first_at = env.now();
    let (first, second) = env
        .write(move |ctx| {
            Ok((
                consents::insert(ctx, pid, "ins", "staff:1", "Rita")?,
                consents::insert(ctx, pid, "alpha", "staff:1", "Rita")?,
            ))
        })
        .await;
    assert!(first && second);
    env.clock.advance(Duration::minutes(1));
    let again = env
        .write(move |ctx| consents::insert(ctx, pid, "ins", "staff:2", "Bob"))
        .await;
    assert!(!again, "the first consent is kept");
    let (got, missing, list, others) = env
        .read(move |tx| {
            Ok((
                consents::get(tx, pid, "ins")?,
                consents::get(tx, pid, "nobody")?,
                consents::list(tx, pid)?,
                consents::list(tx, PatientId::new())?,
            ))
        })
        .await;
    let got = got.unwrap();
    assert_eq!(got.patient_id, pid);
    assert_eq!(got.peer, "ins");
    assert_eq!(got.recorded_by, "Rita");
    assert_eq!(got.recorded_at, first_at);
    assert!(missing.is_none());
    assert_eq!(
        list.iter().map(|c| c.peer.as_str()).collect::<Vec<_>>(),
        vec!["alpha", "ins"]
    );
    assert!(others.is_empty());
    let (deleted, deleted_again) = env
        .write(move |ctx| {
            Ok((
                consents::delete(ctx, pid, "ins")?,
                consents::delete(ctx, pid, "ins")?,
            ))
        })
        .await;
    assert!(deleted);
    assert!(!deleted_again);
    let list = env.read(move |tx| consents::list(tx, pid)).await;
    assert_eq!(list.len(), 1);
    // A consent is to a known peer, for a known patient.
    assert!(
        env.try_write(move |ctx| consents::insert(ctx, pid, "nobody", "staff:1", "Rita"))
            .await
            .is_err()
    );
}

async fn federation_updates(env: Env) {
    use updates::Direction;
    let m1 = update_message("Formulary change", t0() - Duration::days(2));
    let m2 = update_message("New forms", t0() - Duration::days(1));
    let out = update_message("Sent by us", t0());
    let (a, b, o) = (m1.clone(), m2.clone(), out.clone());
    let (i1, i2, repeat, o1, same_id_out) = env
        .write(move |ctx| {
            Ok((
                updates::insert(ctx, Direction::In, "ins", "Insurer admin", &a)?,
                updates::insert(ctx, Direction::In, "ins", "Insurer admin", &b)?,
                updates::insert(ctx, Direction::In, "ins", "Someone else", &a)?,
                updates::insert(ctx, Direction::Out, "hosp", "Our admin", &o)?,
                updates::insert(ctx, Direction::Out, "hosp", "Our admin", &a)?,
            ))
        })
        .await;
    assert!(i1 && i2 && o1);
    assert!(!repeat, "a repeat changes nothing");
    assert!(!same_id_out);
    let (id1, oid) = (m1.id, out.id);
    let (got, wrong_way, out_got, ins, outs, limited) = env
        .read(move |tx| {
            Ok((
                updates::get(tx, id1, Direction::In)?,
                updates::get(tx, id1, Direction::Out)?,
                updates::get(tx, oid, Direction::Out)?,
                updates::list(tx, Direction::In, 10)?,
                updates::list(tx, Direction::Out, 10)?,
                updates::list(tx, Direction::In, 1)?,
            ))
        })
        .await;
    let got = got.unwrap();
    assert_eq!(got.id, m1.id);
    assert_eq!(got.peer, "ins");
    assert_eq!(got.from, "Insurer admin");
    assert_eq!(got.title, m1.title);
    assert_eq!(got.body, m1.body);
    assert_eq!(got.audience, UpdateAudience::Doctor);
    assert_eq!(got.sent_at, m1.sent_at);
    assert!(got.incoming);
    assert!(!got.acknowledged);
    assert_eq!(got.acknowledgements, 0);
    assert_eq!(got.version, 1);
    assert!(wrong_way.is_none());
    let out_got = out_got.unwrap();
    assert!(!out_got.incoming);
    assert_eq!(out_got.peer, "hosp");
    assert_eq!(out_got.from, "Our admin");
    let uids = |l: &[carebridge_protocol::federation::payload::AdminUpdate]| {
        l.iter().map(|u| u.id).collect::<Vec<_>>()
    };
    assert_eq!(uids(&ins), vec![m2.id, m1.id], "newest first");
    assert_eq!(uids(&outs), vec![out.id]);
    assert_eq!(uids(&limited), vec![m2.id]);

    // Acknowledgements: once per person; counted; the update's version bumped on request.
    let ack_at = t0() + Duration::minutes(3);
    let (first, again, other) = env
        .write(move |ctx| {
            let r = (
                updates::insert_ack(ctx, id1, "staff:1", "Dr. A", ack_at)?,
                updates::insert_ack(ctx, id1, "staff:1", "Dr. A", ack_at)?,
                updates::insert_ack(ctx, id1, "staff:2", "Dr. B", ack_at)?,
            );
            updates::bump_version(ctx, id1)?;
            Ok(r)
        })
        .await;
    assert!(first && !again && other);
    let (acks, by1, by3, none, got) = env
        .read(move |tx| {
            Ok((
                updates::acks(tx, id1)?,
                updates::acked_by(tx, id1, "staff:1")?,
                updates::acked_by(tx, id1, "staff:3")?,
                updates::acks(tx, oid)?,
                updates::get(tx, id1, Direction::In)?,
            ))
        })
        .await;
    assert_eq!(acks, 2);
    assert!(by1);
    assert!(!by3);
    assert_eq!(none, 0);
    assert_eq!(got.unwrap().version, 2);
    // An acknowledgement is of a stored update.
    assert!(
        env.try_write(|ctx| updates::insert_ack(ctx, uuid::Uuid::now_v7(), "staff:1", "A", t0()))
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// Imaging

fn imaging_order(p: &Patient, doc: &Practitioner, accession: String) -> ImagingOrder {
    ImagingOrder {
        id: ImagingOrderId::new(),
        patient_id: p.id,
        accession,
        modality: Modality::CT,
        procedure: "CT head".into(),
        reason: "headache".into(),
        scheduled_at: at(8, 9, 30),
        ordered_by: doc.id,
        ordered_by_name: doc.display_name.clone(),
        status: OrderStatus::Scheduled,
        created_at: t0(),
    }
}

fn pacs_study(uid: &str, patient: Option<&Patient>, order: Option<&ImagingOrder>) -> PacsStudy {
    PacsStudy {
        study: ImagingStudy {
            id: ImagingStudyId::new(),
            study_uid: uid.to_owned(),
            patient_id: patient.map(|p| p.id),
            order_id: order.map(|o| o.id),
            // Derived from the order when read, whatever is given here.
            ordered_by: None,
            matched_by: if order.is_some() {
                StudyMatch::Accession
            } else if patient.is_some() {
                StudyMatch::PatientId
            } else {
                StudyMatch::Unmatched
            },
            accession: order.map(|o| o.accession.clone()).unwrap_or_default(),
            dicom_patient_id: "MRN00000001".into(),
            dicom_issuer: NODE.into(),
            dicom_patient_name: "Doe^Jane".into(),
            modalities: vec!["CT".into(), "SR".into()],
            description: "CT head".into(),
            study_date: Some(date(2030, 1, 8)),
            series_count: 2,
            instance_count: 120,
            received_at: t0(),
            version: 1,
            viewer_url: None,
        },
        pacs_id: format!("orthanc-{uid}"),
        preview_instance: Some("instance-1".into()),
    }
}

async fn imaging_numbers_orders_and_accessions(env: Env) {
    let (doc, p) = seed(&env).await;
    let p2 = patient("Roe", "Rita", date(1990, 3, 3), "1000000002");
    add_patients(&env, &[&p2]).await;
    // A number is given once per patient, in order, and found again.
    let (a, again, b) = env
        .write(move |ctx| {
            Ok((
                imaging::assign_mrn(ctx, p.id)?,
                imaging::assign_mrn(ctx, p.id)?,
                imaging::assign_mrn(ctx, p2.id)?,
            ))
        })
        .await;
    assert_eq!(a, again);
    assert_ne!(a, b);
    assert!(a.len() <= carebridge_protocol::imaging::DICOM_PATIENT_ID_MAX);
    let (pid, p2id) = (p.id, p2.id);
    let (found, nobody, mrn2) = env
        .read(move |tx| {
            Ok((
                imaging::patient_by_mrn(tx, &a)?,
                imaging::patient_by_mrn(tx, "MRN99999999")?,
                imaging::mrn(tx, p2id)?,
            ))
        })
        .await;
    assert_eq!(found, Some(pid));
    assert_eq!(nobody, None);
    assert_eq!(mrn2, Some(b));

    // Accession numbers: in order, unique, at most 16 characters.
    let (pc, dc) = (p.clone(), doc.clone());
    let first = env
        .write(move |ctx| {
            let o = imaging_order(&pc, &dc, imaging::next_accession(ctx)?);
            imaging::insert_order(ctx, &o)?;
            Ok(o)
        })
        .await;
    let (pc, dc) = (p.clone(), doc.clone());
    let second = env
        .write(move |ctx| {
            let mut o = imaging_order(&pc, &dc, imaging::next_accession(ctx)?);
            o.created_at = t0() + Duration::minutes(1);
            imaging::insert_order(ctx, &o)?;
            Ok(o)
        })
        .await;
    assert!(first.accession.len() <= carebridge_protocol::imaging::ACCESSION_MAX);
    assert!(
        second.accession > first.accession,
        "{second:?} after {first:?}"
    );
    // A taken accession is refused and changes nothing.
    let (pc, dc, taken) = (p.clone(), doc.clone(), first.accession.clone());
    let refused = env
        .try_write(move |ctx| imaging::insert_order(ctx, &imaging_order(&pc, &dc, taken)))
        .await;
    assert!(refused.is_err());

    let (f, s) = (first.clone(), second.clone());
    let (one, by_accession, mine, scheduled) = env
        .read(move |tx| {
            Ok((
                imaging::order(tx, f.id)?,
                imaging::order_by_accession(tx, &s.accession)?,
                imaging::orders_of(tx, pid)?,
                imaging::scheduled_orders(tx)?,
            ))
        })
        .await;
    assert_eq!(one, Some(first.clone()));
    assert_eq!(by_accession, Some(second.clone()));
    assert_eq!(mine, vec![second.clone(), first.clone()], "newest first");
    assert_eq!(
        scheduled,
        vec![first.clone(), second.clone()],
        "oldest first"
    );

    // Completing: once.
    let fid = first.id;
    let (done, twice) = env
        .write(move |ctx| {
            Ok((
                imaging::complete_order(ctx, fid)?,
                imaging::complete_order(ctx, fid)?,
            ))
        })
        .await;
    assert!(done && !twice);
    let (completed, scheduled) = env
        .read(move |tx| Ok((imaging::order(tx, fid)?, imaging::scheduled_orders(tx)?)))
        .await;
    assert_eq!(completed.unwrap().status, OrderStatus::Completed);
    assert_eq!(scheduled, vec![second]);
}

async fn imaging_studies_once_per_uid_and_linked_once(env: Env) {
    let (doc, p) = seed(&env).await;
    let (pc, dc) = (p.clone(), doc.clone());
    let order = env
        .write(move |ctx| {
            let o = imaging_order(&pc, &dc, imaging::next_accession(ctx)?);
            imaging::insert_order(ctx, &o)?;
            Ok(o)
        })
        .await;
    let matched = pacs_study("1.2.3.1", Some(&p), Some(&order));
    let stray = pacs_study("1.2.3.2", None, None);
    let (m, s) = (matched.clone(), stray.clone());
    let (new_m, new_s) = env
        .write(move |ctx| {
            Ok((
                imaging::record_study(ctx, &m)?,
                imaging::record_study(ctx, &s)?,
            ))
        })
        .await;
    assert!(new_m && new_s);
    // The same StudyInstanceUID again (another id, other facts): not recorded.
    let mut again = pacs_study("1.2.3.1", None, None);
    again.study.description = "other".into();
    let new_again = env
        .write(move |ctx| imaging::record_study(ctx, &again))
        .await;
    assert!(!new_again);

    let mut expected = matched.clone();
    expected.study.ordered_by = Some(doc.id);
    let (mid, sid, pid, uid) = (
        matched.study.id,
        stray.study.id,
        p.id,
        matched.study.study_uid.clone(),
    );
    let (one, by_uid, mine, unmatched) = env
        .read(move |tx| {
            Ok((
                imaging::study(tx, mid)?,
                imaging::study_by_uid(tx, &uid)?,
                imaging::studies_of(tx, pid)?,
                imaging::unmatched(tx)?,
            ))
        })
        .await;
    assert_eq!(one, Some(expected.clone()));
    assert_eq!(by_uid, Some(expected.clone()));
    assert_eq!(mine, vec![expected]);
    assert_eq!(unmatched, vec![stray.clone()]);

    // Linking by hand: once, and only a study that has no patient.
    let (linked, twice, matched_again, nothing) = env
        .write(move |ctx| {
            Ok((
                imaging::link_study(ctx, sid, pid)?,
                imaging::link_study(ctx, sid, pid)?,
                imaging::link_study(ctx, mid, pid)?,
                imaging::link_study(ctx, ImagingStudyId::new(), pid)?,
            ))
        })
        .await;
    let linked = linked.unwrap();
    assert_eq!(linked.study.patient_id, Some(p.id));
    assert_eq!(linked.study.matched_by, StudyMatch::Hand);
    assert_eq!(linked.study.version, 2);
    assert_eq!(linked.pacs_id, stray.pacs_id);
    assert!(twice.is_none() && matched_again.is_none() && nothing.is_none());
    let (mine, unmatched, matched) = env
        .read(move |tx| {
            Ok((
                imaging::studies_of(tx, pid)?,
                imaging::unmatched(tx)?,
                imaging::matched_studies(tx)?,
            ))
        })
        .await;
    assert_eq!(mine.len(), 2);
    assert!(unmatched.is_empty());
    assert_eq!(matched, mine, "every study with its patient, newest first");
}

async fn imaging_feed_position_moves_forward_only(env: Env) {
    let start = env
        .read(|tx| imaging::feed_position(tx, "http://pacs.example:8042"))
        .await;
    assert_eq!(start, 0);
    env.write(|ctx| {
        imaging::set_feed_position(ctx, "http://pacs.example:8042", 40)?;
        imaging::set_feed_position(ctx, "http://pacs.example:8042", 12)?;
        imaging::set_feed_position(ctx, "http://other.example:8042", 3)
    })
    .await;
    let (a, b) = env
        .read(|tx| {
            Ok((
                imaging::feed_position(tx, "http://pacs.example:8042")?,
                imaging::feed_position(tx, "http://other.example:8042")?,
            ))
        })
        .await;
    assert_eq!((a, b), (40, 3));
    // Restarted (the PACS's database was replaced): from the start, the other feed untouched.
    env.write(|ctx| imaging::restart_feed(ctx, "http://pacs.example:8042"))
        .await;
    let (a, b) = env
        .read(|tx| {
            Ok((
                imaging::feed_position(tx, "http://pacs.example:8042")?,
                imaging::feed_position(tx, "http://other.example:8042")?,
            ))
        })
        .await;
    assert_eq!((a, b), (0, 3));
}

async fn imaging_studies_follow_the_pacs_but_keep_their_patient(env: Env) {
    let (_, p) = seed(&env).await;
    let first = pacs_study("1.2.3.9", Some(&p), None);
    let w = first.clone();
    env.write(move |ctx| imaging::record_study(ctx, &w)).await;
    let modalities = vec!["CT".to_owned(), "SR".to_owned(), "PR".to_owned()];
    let (same, more, unknown) = {
        let (m, f) = (modalities.clone(), first.clone());
        env.write(move |ctx| {
            let as_recorded = imaging::StudyNow {
                pacs_id: &f.pacs_id,
                preview_instance: f.preview_instance.as_deref(),
                modalities: &f.study.modalities,
                description: &f.study.description,
                study_date: f.study.study_date,
                series_count: f.study.series_count,
                instance_count: f.study.instance_count,
            };
            let same = imaging::refresh_study(ctx, "1.2.3.9", &as_recorded)?;
            let grown = imaging::StudyNow {
                pacs_id: "orthanc-new-id",
                preview_instance: Some("instance-7"),
                modalities: &m,
                series_count: 3,
                instance_count: 240,
                ..as_recorded.clone()
            };
            let more = imaging::refresh_study(ctx, "1.2.3.9", &grown)?;
            let unknown = imaging::refresh_study(ctx, "9.9.9", &grown)?;
            Ok((same, more, unknown))
        })
        .await
    };
    assert_eq!(same, None, "nothing changed: no new version");
    assert_eq!(unknown, None);
    let more = more.unwrap();
    assert_eq!(more.pacs_id, "orthanc-new-id");
    assert_eq!(more.preview_instance.as_deref(), Some("instance-7"));
    assert_eq!(more.study.modalities, modalities);
    assert_eq!(
        (more.study.series_count, more.study.instance_count),
        (3, 240)
    );
    assert_eq!(more.study.version, 2);
    assert_eq!(more.study.patient_id, Some(p.id));
    assert_eq!(more.study.matched_by, first.study.matched_by);
    assert_eq!(more.study.id, first.study.id);
}

async fn documents_are_found_by_title_and_keep_every_version(env: Env) {
    use carebridge_protocol::document::{DocumentId, DocumentMedia};
    let (doc, p) = seed(&env).await;
    let p2 = patient("Roe", "Rita", date(1990, 3, 3), "1000000002");
    add_patients(&env, &[&p2]).await;
    let id = DocumentId::new();
    let (pid, by, name) = (p.id, doc.id, doc.display_name.clone());
    let file = move |bytes: &'static [u8], sha: &'static str, media| NewVersion {
        media_type: media,
        file_name: Some("scan.pdf"),
        sha256: sha,
        bytes,
        added_by: by,
        added_by_name: "",
    };
    let n = name.clone();
    let first = env
        .write(move |ctx| {
            documents::insert_document(ctx, id, pid, " Discharge letter ", &["gp".into()])?;
            documents::add_version(
                ctx,
                id,
                NewVersion {
                    added_by_name: &n,
                    ..file(b"%PDF-one", "aa", DocumentMedia::Pdf)
                },
                &["gp".into()],
            )
        })
        .await;
    assert_eq!(first, 1);
    env.clock.advance(Duration::minutes(5));
    let n = name.clone();
    let second = env
        .write(move |ctx| {
            documents::add_version(
                ctx,
                id,
                NewVersion {
                    added_by_name: &n,
                    ..file(b"\x89PNG-two", "bb", DocumentMedia::Png)
                },
                &["gp".into(), "cardiology".into()],
            )
        })
        .await;
    assert_eq!(second, 2);
    // A second document of the same title for the same patient is refused; another patient
    // may have one.
    let p2id = p2.id;
    let refused = env
        .try_write(move |ctx| {
            documents::insert_document(ctx, DocumentId::new(), pid, "DISCHARGE  letter", &[])
        })
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let other = DocumentId::new();
    env.write(move |ctx| documents::insert_document(ctx, other, p2id, "Discharge letter", &[]))
        .await;

    let (by_title, nothing, read, list, newest, v1, missing) = env
        .read(move |tx| {
            Ok((
                documents::find_by_title(tx, pid, "discharge   LETTER")?,
                documents::find_by_title(tx, pid, "Referral")?,
                documents::document(tx, id)?,
                documents::documents_of(tx, pid)?,
                documents::content(tx, id, None)?,
                documents::content(tx, id, Some(1))?,
                documents::content(tx, id, Some(3))?,
            ))
        })
        .await;
    assert_eq!(by_title, Some(id));
    assert_eq!(nothing, None);
    let read = read.unwrap();
    assert_eq!(read.title, "Discharge letter");
    assert_eq!(read.patient_id, pid);
    assert_eq!(read.tags, vec!["gp", "cardiology"]);
    let numbers: Vec<u32> = read.versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, vec![2, 1]);
    assert_eq!(read.versions[0].media_type, DocumentMedia::Png);
    assert_eq!(read.versions[0].added_at, t0() + Duration::minutes(5));
    assert_eq!(read.versions[1].size, 8);
    assert_eq!(read.versions[1].sha256, "aa");
    assert_eq!(read.versions[1].added_by, by);
    assert_eq!(read.versions[1].added_by_name, name);
    assert_eq!(read.versions[1].file_name.as_deref(), Some("scan.pdf"));
    assert_eq!(list, vec![read.clone()]);
    let (v, bytes) = newest.unwrap();
    assert_eq!(
        (v.version, bytes.as_slice()),
        (2, b"\x89PNG-two".as_slice())
    );
    let (v, bytes) = v1.unwrap();
    assert_eq!((v.version, bytes.as_slice()), (1, b"%PDF-one".as_slice()));
    assert!(missing.is_none());
}

async fn transmissions_forget_a_secret_once_acknowledged(env: Env) {
    let k = signing_key();
    add_peer(
        &env,
        grant("ins", "insurer", "https://ins.example", &k, "cbk_1"),
    )
    .await;
    let t = env.now();
    let received_at = t + Duration::seconds(30);
    let reports = transmission("ins", None, t);
    let rid = reports.id;
    // A token's envelope is emptied once acknowledged: the pair's key would open it.
    let mut granted = transmission("ins", None, t);
    granted.message_type = "access-granted".into();
    granted.report_ids = Vec::new();
    let gid = granted.id;
    let (before, after) = env
        .write(move |ctx| {
            transmissions::insert(ctx, &granted, b"sealed-token")?;
            let before = transmissions::envelope(ctx, gid)?;
            transmissions::record_receipt(ctx, gid, r#"{"ok":true}"#, received_at)?;
            Ok((before, transmissions::envelope(ctx, gid)?))
        })
        .await;
    assert_eq!(before, Some(b"sealed-token".to_vec()));
    assert_eq!(after, Some(Vec::new()));
    let kept = env
        .write(move |ctx| {
            transmissions::insert(ctx, &reports, b"sealed-reports")?;
            transmissions::record_receipt(ctx, rid, r#"{"ok":true}"#, received_at)?;
            transmissions::envelope(ctx, rid)
        })
        .await;
    assert_eq!(
        kept,
        Some(b"sealed-reports".to_vec()),
        "reports' envelope is kept"
    );
}

// ---------------------------------------------------------------------------------------------
// Consented access across hospitals, and the mail outbox

fn home_request(
    patient: Option<PatientId>,
    peer_request: uuid::Uuid,
    at: DateTime<Utc>,
) -> access::HomeRequest {
    access::HomeRequest {
        id: uuid::Uuid::now_v7(),
        peer: "general.example".into(),
        peer_request_id: peer_request,
        patient_id: patient,
        practitioner_id: "doc-at-general".into(),
        practitioner_name: "Dr Ünal".into(),
        organisation: "General Hospital".into(),
        purpose: AccessPurpose::Treatment,
        scopes: vec!["patient/DiagnosticReport.rs".into()],
        hours: 24,
        state: AccessState::Pending,
        code_hash: Some(vec![7; 32]),
        code_expires_at: Some(at + Duration::minutes(10)),
        wrong_codes: 0,
        approved_by: None,
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

async fn access_wrong_codes_are_counted_to_the_limit_and_no_further(env: Env) {
    let (_, p) = seed(&env).await;
    let q = home_request(Some(p.id), uuid::Uuid::now_v7(), env.now());
    let (id, peer_request) = (q.id, q.peer_request_id);
    env.write(move |ctx| access::insert_request(ctx, &q)).await;
    let mut counted = Vec::new();
    for _ in 0..7 {
        counted.push(
            env.write(move |ctx| access::count_wrong_code(ctx, id, 5))
                .await,
        );
    }
    assert_eq!(
        counted,
        vec![Some(1), Some(2), Some(3), Some(4), Some(5), None, None],
        "the fifth locks it; later ones count nothing"
    );
    let stored = env
        .read(move |tx| access::request_from_peer(tx, "general.example", peer_request))
        .await
        .unwrap();
    assert_eq!(stored.wrong_codes, 5);
    assert_eq!(stored.state, AccessState::Locked);
    assert_eq!(stored.code_hash, None, "a locked request forgets its code");
    assert_eq!(stored.version, 6);
    // A locked request cannot be granted.
    let granted = env
        .write(move |ctx| access::settle(ctx, id, AccessState::Granted, Some("code"), &[], 1))
        .await;
    assert!(!granted);
    assert_eq!(
        env.read(move |tx| access::request_from_peer(tx, "general.example", uuid::Uuid::nil()))
            .await,
        None
    );
}

async fn access_pending_requests_are_listed_oldest_first_until_settled(env: Env) {
    let (_, p) = seed(&env).await;
    let t0 = env.now();
    let old = home_request(Some(p.id), uuid::Uuid::now_v7(), t0 - Duration::hours(30));
    let older = home_request(None, uuid::Uuid::now_v7(), t0 - Duration::hours(40));
    let fresh = home_request(Some(p.id), uuid::Uuid::now_v7(), t0 - Duration::hours(2));
    let mut answered = home_request(Some(p.id), uuid::Uuid::now_v7(), t0 - Duration::hours(50));
    answered.state = AccessState::Declined;
    let all = [old.clone(), older.clone(), fresh.clone(), answered];
    env.write(move |ctx| {
        for q in &all {
            access::insert_request(ctx, q)?;
        }
        Ok(())
    })
    .await;
    let cutoff = t0 - Duration::hours(24);
    let (due, first) = env
        .read(move |tx| {
            Ok((
                access::pending_before(tx, cutoff, 10)?,
                access::pending_before(tx, cutoff, 1)?,
            ))
        })
        .await;
    let ids: Vec<_> = due.iter().map(|q| q.id).collect();
    assert_eq!(
        ids,
        vec![older.id, old.id],
        "pending, older than the cut-off, oldest first"
    );
    assert_eq!(
        first.iter().map(|q| q.id).collect::<Vec<_>>(),
        vec![older.id]
    );
    let id = old.id;
    env.write(move |ctx| access::settle(ctx, id, AccessState::Expired, None, &[], 24))
        .await;
    let due = env
        .read(move |tx| access::pending_before(tx, cutoff, 10))
        .await;
    assert_eq!(due.iter().map(|q| q.id).collect::<Vec<_>>(), vec![older.id]);
    assert_eq!(due[0].patient_id, None);
}

async fn access_requests_settle_once_and_grants_end_once(env: Env) {
    let (_, p) = seed(&env).await;
    let t0 = env.now();
    let q = home_request(Some(p.id), uuid::Uuid::now_v7(), t0);
    let unknown = home_request(None, uuid::Uuid::now_v7(), t0);
    let id = q.id;
    let (q2, unknown2) = (q.clone(), unknown.clone());
    env.write(move |ctx| {
        access::insert_request(ctx, &q2)?;
        access::insert_request(ctx, &unknown2)
    })
    .await;
    // The same peer's request id twice is refused.
    let mut again = q.clone();
    again.id = uuid::Uuid::now_v7();
    assert!(
        env.try_write(move |ctx| access::insert_request(ctx, &again))
            .await
            .is_err()
    );

    let narrowed = vec!["patient/DiagnosticReport.r".to_owned()];
    let n = narrowed.clone();
    let (first, second) = env
        .write(move |ctx| {
            Ok((
                access::settle(ctx, id, AccessState::Granted, Some("kiosk"), &n, 4)?,
                access::settle(ctx, id, AccessState::Declined, None, &[], 1)?,
            ))
        })
        .await;
    assert_eq!(
        (first, second),
        (true, false),
        "of two answers, the first stands"
    );
    let token = vec![9u8; 32];
    let grant = access::Grant {
        id: uuid::Uuid::now_v7(),
        request_id: id,
        token_hash: token.clone(),
        peer: "general.example".into(),
        practitioner_id: "doc-at-general".into(),
        patient_id: p.id,
        scopes: narrowed.clone(),
        purpose: AccessPurpose::Treatment,
        starts_at: t0,
        expires_at: t0 + Duration::hours(4),
        revoked_at: None,
        revoked_by: None,
    };
    let g = grant.clone();
    env.write(move |ctx| {
        access::insert_grant(ctx, &g)?;
        access::record_read(ctx, g.id, "DiagnosticReport", 2)
    })
    .await;
    let pid = p.id;
    let t = token.clone();
    let (by_token, for_request, listed, pending, reads, untold) = env
        .read(move |tx| {
            Ok((
                access::grant_by_token(tx, &t)?,
                access::grant_for_request(tx, id)?,
                access::requests_for_patient(tx, pid, false)?,
                access::requests_for_patient(tx, pid, true)?,
                access::reads_for_patient(tx, pid, 10)?,
                access::ended_untold(tx, t0, 10)?,
            ))
        })
        .await;
    assert_eq!(by_token.as_ref(), Some(&grant));
    assert_eq!(for_request.as_ref(), Some(&grant));
    assert_eq!(listed.len(), 1, "the unknown patient's request is nobody's");
    assert_eq!(listed[0].state, AccessState::Granted);
    assert_eq!(listed[0].scopes, narrowed);
    assert_eq!(listed[0].hours, 4);
    assert_eq!(listed[0].approved_by.as_deref(), Some("kiosk"));
    assert!(pending.is_empty());
    assert_eq!(reads.len(), 1);
    assert_eq!(
        (
            reads[0].grant_id,
            reads[0].resource.as_str(),
            reads[0].count
        ),
        (grant.id, "DiagnosticReport", 2)
    );
    assert_eq!(reads[0].organisation, "General Hospital");
    assert!(untold.is_empty(), "nothing has ended yet");
    assert!(grant.active(t0));

    // Revoked once; the end is listed until told, then not.
    env.clock.advance(Duration::minutes(30));
    let gid = grant.id;
    let (revoked, twice) = env
        .write(move |ctx| {
            let first = access::revoke_grant(ctx, gid, "front-desk")?;
            access::end_granted(ctx, id, AccessState::Revoked)?;
            Ok((first, access::revoke_grant(ctx, gid, "kiosk")?))
        })
        .await;
    assert_eq!((revoked, twice), (true, false));
    let now = env.now();
    let ended = env.read(move |tx| access::ended_untold(tx, now, 10)).await;
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].revoked_by.as_deref(), Some("front-desk"));
    assert!(!ended[0].active(now));
    let untold = env.read(move |tx| access::grant_untold(tx, gid)).await;
    assert_eq!(untold.map(|g| g.id), Some(gid));
    env.write(move |ctx| access::mark_ended_told(ctx, gid))
        .await;
    assert_eq!(
        env.read(move |tx| access::grant_untold(tx, gid)).await,
        None
    );
    let (ended, state) = env
        .read(move |tx| {
            Ok((
                access::ended_untold(tx, now + Duration::days(1), 10)?,
                access::request(tx, id)?.unwrap().state,
            ))
        })
        .await;
    assert!(ended.is_empty());
    assert_eq!(state, AccessState::Revoked);
    assert_eq!(
        env.read(access::next_expiry).await,
        None,
        "no grant is left to expire"
    );
}

async fn access_the_requesting_side_keeps_a_token_only_while_granted(env: Env) {
    let (doc, p) = seed(&env).await;
    let t0 = env.now();
    let a = RemoteAccess {
        id: uuid::Uuid::now_v7(),
        patient_id: p.id,
        peer: "st-marys.example".into(),
        organisation: "st-marys.example".into(),
        practitioner_id: doc.id.to_string(),
        practitioner_name: doc.display_name.clone(),
        purpose: AccessPurpose::Treatment,
        scopes: vec!["patient/Patient.r".into()],
        hours: 24,
        state: AccessState::Pending,
        tries_left: 5,
        grant_id: None,
        patient: None,
        expires_at: None,
        created_at: t0,
        updated_at: t0,
        version: 1,
    };
    let a2 = a.clone();
    env.write(move |ctx| access::insert_remote(ctx, &a2)).await;
    let mut granted = a.clone();
    granted.state = AccessState::Granted;
    granted.grant_id = Some(uuid::Uuid::now_v7());
    granted.organisation = "St Mary's Hospital".into();
    granted.expires_at = Some(t0 + Duration::hours(1));
    granted.patient = Some(GrantedPatient {
        global_id: "x@st-marys.example".into(),
        family_name: "Doe".into(),
        given_name: "Jane".into(),
        birth_date: date(1980, 1, 1),
    });
    granted.version = 2;
    let g = granted.clone();
    env.write(move |ctx| access::update_remote(ctx, &g, Some("the-token")))
        .await;
    let (id, pid, me) = (a.id, p.id, doc.id.to_string());
    let (read, mine, others) = env
        .read(move |tx| {
            Ok((
                access::remote(tx, id)?,
                access::remote_for_patient(tx, pid, Some(&me))?,
                access::remote_for_patient(tx, pid, Some("someone-else"))?,
            ))
        })
        .await;
    assert_eq!(read, Some((granted.clone(), Some("the-token".to_owned()))));
    assert_eq!(mine, vec![granted.clone()]);
    assert!(others.is_empty());
    // An update without a token keeps it while granted.
    let mut seen = granted.clone();
    seen.version = 3;
    let s = seen.clone();
    env.write(move |ctx| access::update_remote(ctx, &s, None))
        .await;
    assert_eq!(
        env.read(move |tx| access::remote(tx, id))
            .await
            .unwrap()
            .1
            .as_deref(),
        Some("the-token")
    );
    // Expired here after its hour; revoked, the token is gone.
    let later = t0 + Duration::hours(1);
    assert_eq!(
        env.read(move |tx| access::remote_expired(tx, later)).await,
        vec![id]
    );
    let mut revoked = seen;
    revoked.state = AccessState::Revoked;
    revoked.version = 4;
    let r = revoked.clone();
    env.write(move |ctx| access::update_remote(ctx, &r, Some("ignored")))
        .await;
    assert_eq!(
        env.read(move |tx| access::remote(tx, id)).await,
        Some((revoked, None))
    );
    assert!(
        env.read(move |tx| access::remote_expired(tx, later))
            .await
            .is_empty()
    );
}

async fn mail_outbox_sends_retries_and_forgets_the_text(env: Env) {
    let t0 = env.now();
    let m = |about: &str, discard: Option<DateTime<Utc>>| mail::OutgoingMail {
        id: uuid::Uuid::now_v7(),
        recipient: "ada@mail.example".into(),
        subject: "A code".into(),
        body: "Code 4821-7730".into(),
        about: about.into(),
        discard_after: discard,
    };
    let (a, b, c) = (
        m("access-code/1", Some(t0 + Duration::minutes(10))),
        m("access-code/2", None),
        m("access-code/3", Some(t0 + Duration::minutes(1))),
    );
    let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
    env.write(move |ctx| {
        mail::queue(ctx, &a2)?;
        mail::queue(ctx, &b2)?;
        mail::queue(ctx, &c2)
    })
    .await;
    let due = env.read(move |tx| mail::due(tx, t0, 10)).await;
    assert_eq!(due.len(), 3);
    assert_eq!(due[0].body, "Code 4821-7730");
    assert_eq!(env.read(mail::next_due).await, Some(t0));

    let (aid, bid, cid) = (a.id, b.id, c.id);
    env.write(move |ctx| {
        mail::sent(ctx, aid)?;
        mail::retry(ctx, bid, t0 + Duration::seconds(30), "451 busy")
    })
    .await;
    let due = env.read(move |tx| mail::due(tx, t0, 10)).await;
    assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![cid]);
    let sent = env.read(move |tx| mail::state(tx, aid)).await.unwrap();
    assert_eq!(
        (sent.state.as_str(), sent.attempts, sent.body_kept),
        ("sent", 1, false)
    );
    let waiting = env.read(move |tx| mail::state(tx, bid)).await.unwrap();
    assert_eq!(
        (
            waiting.state.as_str(),
            waiting.attempts,
            waiting.last_error.as_deref(),
            waiting.body_kept
        ),
        ("queued", 1, Some("451 busy"), true)
    );
    // Two minutes on: c's code has run out, so c is discarded unsent; b is due again.
    env.clock.advance(Duration::minutes(2));
    let discarded = env.write(|ctx| mail::discard_stale(ctx)).await;
    assert_eq!(discarded, 1);
    let now = env.now();
    let due = env.read(move |tx| mail::due(tx, now, 10)).await;
    assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![bid]);
    let gone = env.read(move |tx| mail::state(tx, cid)).await.unwrap();
    assert_eq!((gone.state.as_str(), gone.body_kept), ("discarded", false));
    env.write(move |ctx| mail::failed(ctx, bid, "550 no such user"))
        .await;
    let failed = env.read(move |tx| mail::state(tx, bid)).await.unwrap();
    assert_eq!((failed.state.as_str(), failed.body_kept), ("failed", false));
    assert!(env.read(move |tx| mail::due(tx, now, 10)).await.is_empty());
    assert_eq!(
        env.read(|tx| mail::about(tx, "access-code/2")).await,
        vec![bid]
    );
}

// ---------------------------------------------------------------------------------------------
// Moving a patient's record to another hospital

fn patient_transfer(patient: PatientId, peer: &str, at: DateTime<Utc>) -> PatientTransfer {
    PatientTransfer {
        id: uuid::Uuid::now_v7(),
        patient_id: patient,
        peer: peer.to_owned(),
        organisation: None,
        state: TransferState::Sending,
        parts: 3,
        parts_delivered: 0,
        bytes: 1_200_000,
        sha256: "ab".repeat(32),
        identity_document: IdentityDocument::Passport,
        authorised_by: "Ann Reception".into(),
        new_global_id: None,
        reason: None,
        created_at: at,
        updated_at: at,
    }
}

async fn transfers_one_under_way_per_patient_settled_once(env: Env) {
    let (_, p) = seed(&env).await;
    let k = signing_key();
    add_peer(
        &env,
        grant(
            "general.example",
            "hospital",
            "https://general.example",
            &k,
            "cbk_1",
        ),
    )
    .await;
    let t = env.now();
    let first = patient_transfer(p.id, "general.example", t);
    let second = patient_transfer(p.id, "general.example", t + Duration::seconds(1));
    let third = patient_transfer(p.id, "general.example", t + Duration::seconds(2));
    let (f, s) = (first.clone(), second.clone());
    let (a, b) = env
        .write(move |ctx| {
            Ok((
                transfers::insert_out(ctx, &f)?,
                transfers::insert_out(ctx, &s)?,
            ))
        })
        .await;
    assert!(a, "the first is recorded");
    assert!(!b, "a second while one is under way is not");
    // Its parts, two acknowledged, are counted through the transmissions tied to it.
    let fid = first.id;
    let ids: Vec<uuid::Uuid> = env
        .write(move |ctx| {
            let mut ids = Vec::new();
            for (i, kind) in [
                "transfer-manifest",
                "transfer-chunk",
                "transfer-chunk",
                "transfer-chunk",
            ]
            .into_iter()
            .enumerate()
            {
                let mut m = transmission("general.example", Some(p.id), t);
                m.message_type = kind.into();
                m.report_ids = Vec::new();
                transmissions::insert(ctx, &m, format!("sealed-{i}").as_bytes())?;
                transfers::tie(ctx, m.id, fid)?;
                ids.push(m.id);
            }
            for id in &ids[..3] {
                transmissions::settle(ctx, *id, TransmissionState::Acknowledged, None, 1, t)?;
            }
            Ok(ids)
        })
        .await;
    let (found, of_chunk, of_none) = env
        .read(move |tx| {
            Ok((
                transfers::out(tx, fid)?,
                transfers::of_transmission(tx, ids[1])?,
                transfers::of_transmission(tx, uuid::Uuid::now_v7())?,
            ))
        })
        .await;
    let found = found.unwrap();
    assert_eq!(found.parts_delivered, 2, "chunks only, not the manifest");
    assert_eq!(found.state, TransferState::Sending);
    assert_eq!(found.identity_document, IdentityDocument::Passport);
    assert_eq!((of_chunk, of_none), (Some(fid), None));

    // Settled once: a refusal after the confirmation changes nothing.
    let (confirmed, refused_after) = env
        .write(move |ctx| {
            Ok((
                transfers::settle_out(
                    ctx,
                    fid,
                    transfers::Settled::Confirmed {
                        new_global_id: "x@general.example",
                        organisation: "General Hospital",
                        signature: "c2lnbmVk",
                    },
                )?,
                transfers::settle_out(ctx, fid, transfers::Settled::Refused { reason: "late" })?,
            ))
        })
        .await;
    assert!(confirmed && !refused_after);
    // A confirmed transfer blocks another one, as one under way does.
    let th = third.clone();
    assert!(!env.write(move |ctx| transfers::insert_out(ctx, &th)).await);
    let listed = env
        .read(move |tx| transfers::out_for_patient(tx, p.id))
        .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, TransferState::Confirmed);
    assert_eq!(
        listed[0].new_global_id.as_deref(),
        Some("x@general.example")
    );
    assert_eq!(listed[0].organisation.as_deref(), Some("General Hospital"));
    assert_eq!(listed[0].reason, None);
    let kept = env.read(move |tx| transfers::confirmation(tx, fid)).await;
    assert_eq!(
        kept.as_deref(),
        Some("c2lnbmVk"),
        "the peer's signed statement is kept"
    );
}

async fn transfers_incoming_keeps_each_chunk_once_until_it_ends(env: Env) {
    let (_, p) = seed(&env).await;
    let manifest = TransferManifest {
        transfer_id: uuid::Uuid::now_v7(),
        patient_global_id: "a1@st-marys.example".into(),
        organisation: "St Mary's Hospital".into(),
        authorised_by: "Ann Reception".into(),
        bytes: 10,
        sha256: "cd".repeat(32),
        chunks: vec!["01".repeat(32), "02".repeat(32), "03".repeat(32)],
    };
    let other = TransferManifest {
        transfer_id: uuid::Uuid::now_v7(),
        ..manifest.clone()
    };
    let (m, o) = (manifest.clone(), other.clone());
    let id = manifest.transfer_id;
    let other_id = other.transfer_id;
    let (first, again, counts, from_elsewhere) = env
        .write(move |ctx| {
            let first = transfers::insert_in(ctx, "st-marys.example", &m)?;
            let again = transfers::insert_in(ctx, "st-marys.example", &m)?;
            transfers::insert_in(ctx, "st-marys.example", &o)?;
            let counts = vec![
                transfers::put_chunk(ctx, "st-marys.example", id, 2, b"three")?,
                transfers::put_chunk(ctx, "st-marys.example", id, 0, b"one")?,
                transfers::put_chunk(ctx, "st-marys.example", id, 0, b"not again")?,
                transfers::put_chunk(ctx, "st-marys.example", o.transfer_id, 0, b"other")?,
            ];
            Ok((
                first,
                again,
                counts,
                transfers::incoming(ctx, "elsewhere.example", id)?,
            ))
        })
        .await;
    assert!(first && !again, "a manifest is kept once");
    assert_eq!(
        counts,
        vec![1, 2, 2, 1],
        "each transfer's chunks, each once"
    );
    assert_eq!(from_elsewhere, None, "a transfer is its sender's");
    let (kept, incoming) = env
        .read(move |tx| {
            Ok((
                transfers::chunks(tx, "st-marys.example", id, 3)?,
                transfers::incoming(tx, "st-marys.example", id)?,
            ))
        })
        .await;
    assert_eq!(
        kept,
        vec![Some(b"one".to_vec()), None, Some(b"three".to_vec())],
        "the first copy stands"
    );
    let incoming = incoming.unwrap();
    assert_eq!(incoming.manifest, manifest);
    assert_eq!(incoming.state, transfers::IncomingState::Receiving);

    // Imported: the record kept beside its patient, the chunks forgotten, ended once.
    let record =
        serde_json::to_vec(&json!({"resourceType": "Bundle", "type": "collection"})).unwrap();
    let (imported, refused_after, left, refused_other) = env
        .write(move |ctx| {
            Ok((
                transfers::end_in(
                    ctx,
                    "st-marys.example",
                    id,
                    transfers::Ended::Imported {
                        patient: p.id,
                        bundle: &record,
                    },
                )?,
                transfers::end_in(
                    ctx,
                    "st-marys.example",
                    id,
                    transfers::Ended::Refused { reason: "late" },
                )?,
                transfers::chunks(ctx, "st-marys.example", id, 3)?,
                transfers::end_in(
                    ctx,
                    "st-marys.example",
                    other_id,
                    transfers::Ended::Refused {
                        reason: "chunk 0 does not match",
                    },
                )?,
            ))
        })
        .await;
    assert!(imported && !refused_after && refused_other);
    assert_eq!(left, vec![None, None, None]);
    let (records, other_now, other_chunks) = env
        .read(move |tx| {
            Ok((
                transfers::records_for_patient(tx, p.id)?,
                transfers::incoming(tx, "st-marys.example", other.transfer_id)?,
                transfers::chunks(tx, "st-marys.example", other.transfer_id, 3)?,
            ))
        })
        .await;
    assert_eq!(records.len(), 1, "a refused transfer is no record");
    assert_eq!(records[0].transfer_id, id);
    assert_eq!(records[0].organisation, "St Mary's Hospital");
    assert_eq!(records[0].from_global_id, "a1@st-marys.example");
    assert_eq!(records[0].bundle["type"], "collection");
    let other_now = other_now.unwrap();
    assert_eq!(other_now.state, transfers::IncomingState::Refused);
    assert_eq!(other_now.reason.as_deref(), Some("chunk 0 does not match"));
    assert_eq!(
        other_chunks,
        vec![None, None, None],
        "nothing of it is kept"
    );
}

async fn transfers_a_patient_is_marked_transferred_once(env: Env) {
    let (_, p) = seed(&env).await;
    let to = TransferredTo {
        global_id: "b2@general.example".into(),
        peer: "general.example".into(),
        organisation: "General Hospital".into(),
        at: env.now(),
    };
    let other = TransferredTo {
        global_id: "c3@third.example".into(),
        ..to.clone()
    };
    let (t, o) = (to.clone(), other.clone());
    let (first, again) = env
        .write(move |ctx| {
            Ok((
                patients::mark_transferred(ctx, p.id, &t)?,
                patients::mark_transferred(ctx, p.id, &o)?,
            ))
        })
        .await;
    assert!(first && !again);
    let now = env
        .read(move |tx| patients::get(tx, p.id, NODE))
        .await
        .unwrap();
    assert_eq!(now.transferred_to, Some(to), "the first stands");
    assert_eq!(now.version, p.version + 1, "clients read it again");
}

async fn transmissions_due_together_go_in_the_order_queued(env: Env) {
    let k = signing_key();
    add_peer(
        &env,
        grant(
            "general.example",
            "hospital",
            "https://general.example",
            &k,
            "cbk_1",
        ),
    )
    .await;
    let t = env.now();
    // Queued in one write at one instant, with ids that do not sort in that order.
    let list: Vec<Transmission> = (0..6)
        .map(|_| transmission("general.example", None, t))
        .rev()
        .collect();
    let queued: Vec<uuid::Uuid> = list.iter().map(|m| m.id).collect();
    env.write(move |ctx| {
        for (i, m) in list.iter().enumerate() {
            transmissions::insert(ctx, m, format!("sealed-{i}").as_bytes())?;
        }
        Ok(())
    })
    .await;
    let due = env.read(move |tx| transmissions::due(tx, t, 16)).await;
    assert_eq!(tids_due(&due), queued);
}

async fn transfers_chunks_wait_for_their_manifest_and_stop_with_their_transfer(env: Env) {
    let (_, p) = seed(&env).await;
    let k = signing_key();
    add_peer(
        &env,
        grant(
            "general.example",
            "hospital",
            "https://general.example",
            &k,
            "cbk_1",
        ),
    )
    .await;
    let t = env.now();
    let transfer = patient_transfer(p.id, "general.example", t);
    let tid = transfer.id;
    // A manifest and two chunks, and a transmission of no transfer, all due now.
    let (manifest, chunks, other) = env
        .write(move |ctx| {
            assert!(transfers::insert_out(ctx, &transfer)?);
            let mut ids = Vec::new();
            for kind in ["transfer-manifest", "transfer-chunk", "transfer-chunk"] {
                let mut m = transmission("general.example", Some(p.id), t);
                m.message_type = kind.into();
                m.report_ids = Vec::new();
                transmissions::insert(ctx, &m, b"sealed")?;
                transfers::tie(ctx, m.id, tid)?;
                ids.push(m.id);
            }
            let other = transmission("general.example", None, t);
            transmissions::insert(ctx, &other, b"sealed")?;
            Ok((ids[0], vec![ids[1], ids[2]], other.id))
        })
        .await;
    let (due, next, under_way) = env
        .read(move |tx| {
            Ok((
                transmissions::due(tx, t, 16)?,
                transmissions::next_due(tx)?,
                transfers::sending(tx, p.id)?.map(|x| x.id),
            ))
        })
        .await;
    assert_eq!(
        tids_due(&due),
        vec![manifest, other],
        "chunks wait for the manifest"
    );
    assert_eq!(next, Some(t));
    assert_eq!(under_way, Some(tid));

    // The manifest acknowledged, its chunks are due.
    env.write(move |ctx| {
        transmissions::settle(ctx, manifest, TransmissionState::Acknowledged, None, 1, t)?;
        transmissions::settle(ctx, other, TransmissionState::Acknowledged, None, 1, t)
    })
    .await;
    let (due, next) = env
        .read(move |tx| Ok((transmissions::due(tx, t, 16)?, transmissions::next_due(tx)?)))
        .await;
    assert_eq!(tids_due(&due), chunks);
    assert_eq!(next, Some(t));

    // The transfer ends: what waits of it stops, and nothing is due or under way any more.
    let (stopped, again) = env
        .write(move |ctx| {
            transfers::settle_out(ctx, tid, transfers::Settled::Refused { reason: "refused" })?;
            Ok((
                transfers::stop_parts(ctx, tid, "refused")?,
                transfers::stop_parts(ctx, tid, "refused")?,
            ))
        })
        .await;
    assert_eq!((stopped, again), (2, 0));
    let (due, next, under_way, failed) = env
        .read(move |tx| {
            Ok((
                transmissions::due(tx, t, 16)?,
                transmissions::next_due(tx)?,
                transfers::sending(tx, p.id)?,
                transmissions::get(tx, chunks[0])?.map(|x| (x.state, x.last_error)),
            ))
        })
        .await;
    assert!(due.is_empty());
    assert_eq!(next, None);
    assert_eq!(under_way, None);
    assert_eq!(
        failed,
        Some((TransmissionState::Failed, Some("refused".to_owned())))
    );
}
