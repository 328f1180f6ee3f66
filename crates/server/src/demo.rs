//! Demo data: a small hospital with doctors, reception, an admin, a kiosk, patients and
//! appointments in every status, and the credentials to sign in as each of them.

use std::path::Path;
use std::sync::Arc;

use carebridge_protocol::appointment::{Appointment, AppointmentStatus, BookedBy};
use carebridge_protocol::imaging::{ImagingOrderId, Modality, NewImagingOrder};
use carebridge_protocol::kiosk::KioskDevice;
use carebridge_protocol::patient::Patient;
use carebridge_protocol::practitioner::{Practitioner, Role};
use carebridge_protocol::schedule::{Schedule, WorkingHours};
use carebridge_protocol::{AppointmentId, KioskDeviceId, PatientId, PractitionerId};
use chrono::{Duration, NaiveDate, NaiveTime, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::node::Node;
use crate::store::{AuditDraft, StoreError};
use crate::store::{appointments, kiosks, patients, practitioners, schedules};
use crate::{practitioner, schedule};

/// The demo admin's password (the node is throw-away and listens on loopback by default).
pub const ADMIN_PASSWORD: &str = "admin-demo-pass";
/// The demo reception user's password.
pub const RECEPTION_PASSWORD: &str = "reception-demo-pass";
/// Every demo doctor's password.
pub const DOCTOR_PASSWORD: &str = "doctor-demo-pass";

/// How big a demo to make.
#[derive(Debug, Clone)]
pub struct DemoSize {
    /// Doctors (at least 1).
    pub doctors: u32,
    /// Days ahead over which appointments are spread.
    pub days: u32,
    /// Patients.
    pub patients: u32,
    /// Add a benchmark doctor with round-the-clock 5-minute slots.
    pub bench: bool,
    /// Instead of a few appointments a day: exactly this many, filling every slot of every
    /// doctor from 30 days ago onwards (a large hospital's load, for benchmarks).
    pub appointments: Option<u32>,
}

/// A username and password.
#[derive(Debug, Clone, Serialize)]
pub struct Login {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A demo doctor's login.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorLogin {
    /// Account id.
    pub id: PractitionerId,
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// Name.
    pub display_name: String,
}

/// The demo kiosk's credential.
#[derive(Debug, Clone, Serialize)]
pub struct KioskLogin {
    /// Device id.
    pub device_id: KioskDeviceId,
    /// Device secret.
    pub secret: String,
}

/// A demo patient, as a kiosk would identify them.
#[derive(Debug, Clone, Serialize)]
pub struct PatientCard {
    /// Patient id.
    pub id: PatientId,
    /// Card number.
    pub card_number: String,
    /// Birth date.
    pub birth_date: NaiveDate,
    /// Name.
    pub name: String,
}

/// What the benchmark books against.
#[derive(Debug, Clone, Serialize)]
pub struct BenchTarget {
    /// A doctor with many free slots.
    pub practitioner_id: PractitionerId,
    /// A patient.
    pub patient_id: PatientId,
}

/// Everything needed to use the demo, written to `demo-credentials.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DemoCredentials {
    /// The node's name.
    pub node: String,
    /// Its base URL.
    pub url: String,
    /// The admin.
    pub admin: Login,
    /// Reception.
    pub reception: Login,
    /// Doctors.
    pub doctors: Vec<DoctorLogin>,
    /// The kiosk device.
    pub kiosk: KioskLogin,
    /// The first few patients.
    pub patients: Vec<PatientCard>,
    /// For `make bench`.
    pub bench: BenchTarget,
}

const DOCTOR_NAMES: &[(&str, &str)] = &[
    ("moreau", "Dr. Ada Moreau"),
    ("okafor", "Dr. Kwame Okafor"),
    ("lindqvist", "Dr. Ingrid Lindqvist"),
    ("mehta", "Dr. Rahul Mehta"),
    ("alvarez", "Dr. Sofia Alvarez"),
    ("tanaka", "Dr. Kenji Tanaka"),
];
const FAMILY: &[&str] = &[
    "Jansen", "de Vries", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Vos", "Peters",
    "Hendriks", "Dekker", "Brouwer", "Dijkstra", "Kok", "Garcia", "Nowak", "Rossi", "Müller",
    "O'Brien", "Nguyen", "Haddad", "Kowalski", "Yilmaz",
];
const GIVEN: &[&str] = &[
    "Emma", "Noah", "Julia", "Liam", "Sophie", "Lucas", "Mila", "Finn", "Sara", "Daan", "Anna",
    "Sem", "Eva", "Levi", "Lotte", "Amir", "Fatima", "Chen", "Olga", "José", "Zoë", "Mohammed",
    "Ines", "Pieter",
];
const REASONS: &[&str] = &[
    "Follow-up",
    "Blood pressure check",
    "Persistent cough",
    "Knee pain",
    "Medication review",
    "Skin rash",
    "Headaches",
    "Annual check-up",
    "Back pain",
    "Vaccination",
];

fn weekdays(start: (u32, u32), end: (u32, u32), days: &[Weekday]) -> Vec<WorkingHours> {
    let (Some(s), Some(e)) = (
        NaiveTime::from_hms_opt(start.0, start.1, 0),
        NaiveTime::from_hms_opt(end.0, end.1, 0),
    ) else {
        return Vec::new();
    };
    days.iter()
        .map(|d| WorkingHours {
            weekday: *d,
            start: s,
            end: e,
        })
        .collect()
}

/// Seeds the node (already initialised with `admin`/[`ADMIN_PASSWORD`]) with demo data.
pub async fn seed(
    node: &Arc<Node>,
    size: &DemoSize,
    url: &str,
) -> Result<DemoCredentials, StoreError> {
    let doctors_n = size.doctors.max(1) as usize;
    let reception_hash = hash(RECEPTION_PASSWORD).await?;
    let doctor_hash = hash(DOCTOR_PASSWORD).await?;
    let tz = node.tz;
    let node_name = node.name().to_owned();
    let size = size.clone();
    let draft = AuditDraft {
        actor: "node".into(),
        action: "demo.seed".into(),
        entity: String::new(),
        source: "local".into(),
    };
    let url = url.to_owned();
    let wanted = size.appointments;
    let (creds, patient_ids, kiosk_id, reception_id) = node
        .store
        .write(Some(draft), move |ctx| {
            let now = ctx.now();
            let now_ms = now.timestamp_millis();
            let mut rng = StdRng::seed_from_u64(7);
            let reception = Practitioner {
                id: PractitionerId::new(),
                username: "reception".into(),
                display_name: "Front Desk".into(),
                role: Role::Reception,
                disabled: false,
                version: 1,
            };
            practitioners::insert(ctx, &reception, &reception_hash, now_ms)?;
            let reception_id = reception.id;
            let all_week = [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ];
            let mut doctors = Vec::new();
            for i in 0..doctors_n {
                let (user, name) = DOCTOR_NAMES
                    .get(i)
                    .map(|(u, n)| (format!("dr.{u}"), (*n).to_owned()))
                    .unwrap_or_else(|| (format!("dr.{}", i + 1), format!("Dr. Doctor {}", i + 1)));
                let p = Practitioner {
                    id: PractitionerId::new(),
                    username: user.clone(),
                    display_name: name.clone(),
                    role: Role::Doctor,
                    disabled: false,
                    version: 1,
                };
                practitioners::insert(ctx, &p, &doctor_hash, now_ms)?;
                // Every day, so the demo has free slots whenever someone tries it.
                let mut hours = weekdays((8, 0), (12, 0), &all_week);
                hours.extend(weekdays((13, 0), (18, 0), &all_week));
                schedules::put(
                    ctx,
                    &Schedule {
                        practitioner_id: p.id,
                        slot_minutes: 15,
                        hours,
                        version: 1,
                    },
                )?;
                doctors.push(DoctorLogin {
                    id: p.id,
                    username: user,
                    password: DOCTOR_PASSWORD.into(),
                    display_name: name,
                });
            }
            let bench_doctor = if size.bench {
                let p = Practitioner {
                    id: PractitionerId::new(),
                    username: "dr.bench".into(),
                    display_name: "Dr. Bench (load tests)".into(),
                    role: Role::Doctor,
                    disabled: false,
                    version: 1,
                };
                practitioners::insert(ctx, &p, &doctor_hash, now_ms)?;
                let hours = weekdays((0, 0), (23, 55), &all_week);
                schedules::put(
                    ctx,
                    &Schedule {
                        practitioner_id: p.id,
                        slot_minutes: 5,
                        hours,
                        version: 1,
                    },
                )?;
                p.id
            } else {
                doctors[0].id
            };
            let kiosk_id = KioskDeviceId::new();
            let kiosk_secret = format!("kiosk-demo-secret-{}", &kiosk_id.to_string()[..8]);
            kiosks::insert(
                ctx,
                &KioskDevice {
                    id: kiosk_id,
                    label: "Entrance kiosk".into(),
                    revoked: false,
                    registered_at: now,
                },
                &kiosk_secret,
            )?;
            let mut patients = Vec::new();
            for i in 0..size.patients.max(1) {
                let family = FAMILY[rng.gen_range(0..FAMILY.len())];
                let given = GIVEN[rng.gen_range(0..GIVEN.len())];
                let birth = NaiveDate::from_ymd_opt(
                    rng.gen_range(1940..2020),
                    rng.gen_range(1..=12),
                    rng.gen_range(1..=28),
                )
                .unwrap_or_default();
                let id = PatientId::new();
                let p = Patient {
                    id,
                    global_id: format!("{id}@{node_name}"),
                    family_name: family.into(),
                    given_name: given.into(),
                    birth_date: birth,
                    phone: Some(format!("+31 6 {:08}", rng.gen_range(0..100_000_000))),
                    email: None,
                    card_number: format!("{}", 1_000_000_001u64 + u64::from(i)),
                    version: 1,
                    created_at: now,
                    updated_at: now,
                    transferred_to: None,
                };
                patients::insert(ctx, &p)?;
                patients.push(p);
            }
            // Appointments in every status: yesterday's done or missed, today's waiting or
            // arrived, and the coming days' booked, pending (kiosk) and cancelled.
            let today = schedule::local_date(tz, now);
            let mut n = 0usize;
            // With a set number of appointments, the bulk seeding below makes them instead.
            let last_day = if size.appointments.is_some() {
                -2
            } else {
                i64::from(size.days.clamp(1, 60))
            };
            for offset in -1i64..=last_day {
                let date = today + Duration::days(offset);
                for d in &doctors {
                    let Some(s) = schedules::get(ctx, d.id)? else {
                        continue;
                    };
                    let slots = schedule::slot_times(tz, &s, date, date);
                    let phase = n % 3;
                    for (k, (start, end)) in
                        slots.iter().enumerate().filter(|(k, _)| k % 5 == phase)
                    {
                        let status = match (offset, k % 4) {
                            (-1, 0) => AppointmentStatus::Noshow,
                            (-1, _) => AppointmentStatus::Fulfilled,
                            (0, _) if *end < now => AppointmentStatus::Fulfilled,
                            (0, 1) if *start < now + Duration::hours(2) => {
                                AppointmentStatus::Arrived
                            }
                            (_, 2) => AppointmentStatus::Pending,
                            (_, 3) if offset > 0 => AppointmentStatus::Cancelled,
                            _ => AppointmentStatus::Booked,
                        };
                        let p = &patients[n % patients.len()];
                        n += 1;
                        let mut a = demo_appointment(
                            Slot {
                                patient: p.id,
                                doctor: d.id,
                                start: *start,
                                end: *end,
                            },
                            status,
                            n,
                            (kiosk_id, reception.id),
                            now,
                        );
                        a.reference = appointments::new_reference(ctx)?;
                        appointments::insert(ctx, &a)?;
                    }
                }
            }
            ctx.set_detail(format!(
                "{} doctors, {} patients, {n} appointments",
                doctors.len(),
                patients.len()
            ));
            let patient_ids: Vec<PatientId> = patients.iter().map(|p| p.id).collect();
            let creds = DemoCredentials {
                node: node_name.clone(),
                url,
                admin: Login {
                    username: "admin".into(),
                    password: ADMIN_PASSWORD.into(),
                },
                reception: Login {
                    username: reception.username,
                    password: RECEPTION_PASSWORD.into(),
                },
                bench: BenchTarget {
                    practitioner_id: bench_doctor,
                    patient_id: patients[0].id,
                },
                doctors,
                kiosk: KioskLogin {
                    device_id: kiosk_id,
                    secret: kiosk_secret,
                },
                patients: patients
                    .iter()
                    .take(5)
                    .map(|p| PatientCard {
                        id: p.id,
                        card_number: p.card_number.clone(),
                        birth_date: p.birth_date,
                        name: format!("{} {}", p.given_name, p.family_name),
                    })
                    .collect(),
            };
            Ok::<_, StoreError>((creds, patient_ids, kiosk_id, reception_id))
        })
        .await?;
    if let Some(n) = wanted {
        bulk_appointments(node, &creds, &patient_ids, kiosk_id, reception_id, n).await?;
    }
    if node.imaging.is_some() {
        seed_imaging_order(node, &creds).await?;
    }
    Ok(creds)
}

/// Where the node follows a PACS: the first doctor has ordered a CT of the first patient for
/// tomorrow morning, so that the worklist has an entry for `findscu` and a study sent with its
/// accession arrives on the patient's page (README, "Imaging").
async fn seed_imaging_order(node: &Arc<Node>, creds: &DemoCredentials) -> Result<(), StoreError> {
    let (Some(doctor), Some(patient)) = (creds.doctors.first(), creds.patients.first()) else {
        return Ok(());
    };
    let tomorrow = node.clock.now().with_timezone(&node.tz).date_naive() + chrono::Days::new(1);
    let at = tomorrow
        .and_hms_opt(9, 30, 0)
        .and_then(|t| t.and_local_timezone(node.tz).earliest())
        .map_or_else(|| node.clock.now(), |t| t.with_timezone(&chrono::Utc));
    let req = NewImagingOrder {
        id: None,
        patient_id: patient.id,
        modality: Modality::CT,
        procedure: "CT head without contrast".into(),
        reason: "Headache after a fall".into(),
        scheduled_at: at,
    };
    let (by, name) = (doctor.id, doctor.display_name.clone());
    let order = node
        .store
        .write(None, move |ctx| {
            crate::imaging::place_order(ctx, ImagingOrderId::new(), &req, by, &name)
        })
        .await?;
    if let Err(e) = crate::imaging::publish(node, order).await {
        tracing::warn!(error = %e, "the demo's imaging order is not on the worklist");
    }
    Ok(())
}

/// Who and when, for [`demo_appointment`].
struct Slot {
    patient: PatientId,
    doctor: PractitionerId,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
}

/// A demo appointment in `status` (its reference is set when it is stored): pending ones were
/// booked at the kiosk, the others by reception; `i` picks the reason.
fn demo_appointment(
    slot: Slot,
    status: AppointmentStatus,
    i: usize,
    (kiosk, reception): (KioskDeviceId, PractitionerId),
    now: chrono::DateTime<chrono::Utc>,
) -> Appointment {
    Appointment {
        id: AppointmentId::new(),
        reference: String::new(),
        patient_id: slot.patient,
        practitioner_id: slot.doctor,
        start: slot.start,
        end: slot.end,
        reason: REASONS[i % REASONS.len()].into(),
        status,
        booked_by: if status == AppointmentStatus::Pending {
            BookedBy::Kiosk { id: kiosk }
        } else {
            BookedBy::Staff { id: reception }
        },
        override_reason: None,
        cancellation_reason: (status == AppointmentStatus::Cancelled)
            .then(|| "Patient called to cancel".into()),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// Makes `n` appointments, filling every slot of every demo doctor day by day from 30 days ago,
/// in write jobs of at most 20 000 (so no single transaction grows without bound).
async fn bulk_appointments(
    node: &Node,
    creds: &DemoCredentials,
    patients: &[PatientId],
    kiosk: KioskDeviceId,
    reception: PractitionerId,
    n: u32,
) -> Result<(), StoreError> {
    const BATCH: usize = 20_000;
    let tz = node.tz;
    let ids: Vec<PractitionerId> = creds.doctors.iter().map(|d| d.id).collect();
    let doctors_hours = node
        .store
        .read(move |c| {
            ids.iter()
                .filter_map(|id| schedules::get(c, *id).transpose())
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let now = node.clock.now();
    let today = schedule::local_date(tz, now);
    let mut date = today - Duration::days(30);
    let mut made = 0usize;
    let total = n as usize;
    let mut batch = Vec::with_capacity(BATCH);
    while made < total {
        for s in &doctors_hours {
            for (k, (start, end)) in schedule::slot_times(tz, s, date, date)
                .into_iter()
                .enumerate()
            {
                if made + batch.len() >= total {
                    break;
                }
                let i = made + batch.len();
                let status = if end < now {
                    if i.is_multiple_of(10) {
                        AppointmentStatus::Noshow
                    } else {
                        AppointmentStatus::Fulfilled
                    }
                } else if k % 7 == 3 {
                    AppointmentStatus::Pending
                } else if k % 11 == 5 {
                    AppointmentStatus::Cancelled
                } else {
                    AppointmentStatus::Booked
                };
                batch.push(demo_appointment(
                    Slot {
                        patient: patients[i % patients.len()],
                        doctor: s.practitioner_id,
                        start,
                        end,
                    },
                    status,
                    i,
                    (kiosk, reception),
                    now,
                ));
            }
        }
        date = date.succ_opt().unwrap_or(date);
        if batch.len() >= BATCH || made + batch.len() >= total || doctors_hours.is_empty() {
            let chunk = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            made += chunk.len();
            let draft = AuditDraft {
                actor: "node".into(),
                action: "demo.seed".into(),
                entity: String::new(),
                source: "local".into(),
            };
            node.store
                .write(Some(draft), move |ctx| {
                    for mut a in chunk {
                        a.reference = appointments::new_reference(ctx)?;
                        appointments::insert(ctx, &a)?;
                    }
                    ctx.set_detail(format!("{made} appointments so far"));
                    Ok::<_, StoreError>(())
                })
                .await?;
            if doctors_hours.is_empty() {
                break;
            }
        }
    }
    Ok(())
}

async fn hash(password: &'static str) -> Result<String, StoreError> {
    tokio::task::spawn_blocking(move || practitioner::hash_password(password))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

/// Writes the credentials where a user (and the bench) can read them.
pub fn write_credentials(
    dir: &Path,
    creds: &DemoCredentials,
) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write as _;
    let path = dir.join("demo-credentials.json");
    // Passwords and a kiosk's secret: readable by their owner only (the demo's user).
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&path)?;
    // A file left by an earlier run keeps its mode on open: narrow it too.
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(&serde_json::to_vec_pretty(creds).unwrap_or_default())?;
    Ok(path)
}

/// The demo hospital's name.
pub const DEMO_NODE_NAME: &str = "st-marys.example";

/// How a fresh demo node is initialised: the demo hospital, its admin, the given zone.
pub fn init_options(time_zone: &str) -> crate::node::InitOptions {
    crate::node::InitOptions {
        name: DEMO_NODE_NAME.into(),
        kind: crate::config::NodeKind::Hospital,
        time_zone: time_zone.into(),
        admin_username: "admin".into(),
        admin_password: ADMIN_PASSWORD.into(),
        database_url: None,
    }
}

/// Why an embedded demo node did not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// Initialising or opening the node failed.
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    /// Seeding it failed.
    #[error("seeding the demo: {0}")]
    Seed(#[from] StoreError),
    /// Its address is taken, or the credentials could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A demo node served inside the calling process (the desktop app's one-room clinic and its
/// `make run`). It stops when `node.shutdown` is cancelled.
pub struct Embedded {
    /// Who can sign in, and the node's URL.
    pub credentials: DemoCredentials,
    /// Where the credentials were written (for a kiosk process to read).
    pub credentials_path: std::path::PathBuf,
    /// The node.
    pub node: std::sync::Arc<Node>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("url", &self.credentials.url)
            .finish_non_exhaustive()
    }
}

/// Initialises a demo node in the empty or absent `dir`, seeds it, and serves it on `listen`
/// in the background. Call within a multi-threaded Tokio runtime.
pub async fn serve_embedded(
    dir: &Path,
    listen: std::net::SocketAddr,
    time_zone: &str,
    size: &DemoSize,
) -> Result<Embedded, EmbeddedError> {
    let clock = std::sync::Arc::new(crate::clock::SystemClock);
    crate::node::init(dir, &init_options(time_zone), clock.as_ref())?;
    // The node.toml just written, with the environment's options over it (`CAREBRIDGE_IMAGING__…`
    // points the demo at a PACS).
    let mut cfg = crate::config::NodeConfig::load(Some(&dir.join(crate::config::CONFIG_FILE)))
        .map_err(crate::node::NodeError::from)?;
    cfg.listen = listen;
    let node = Node::open(cfg, clock)?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let credentials = seed(&node, size, &url).await?;
    let credentials_path = write_credentials(dir, &credentials)?;
    let served = node.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::serve::serve(served, listener).await {
            tracing::error!(error = %e, "the embedded node stopped");
        }
    });
    Ok(Embedded {
        credentials,
        credentials_path,
        node,
    })
}
