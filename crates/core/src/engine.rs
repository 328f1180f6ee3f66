//! The sync engine: keeps a signed-in profile's mirror in step with the node (first sync, then
//! the live stream, again after a reset), drains the outbox of the user's writes in order, tells
//! the notifier about news, and publishes the connection state the UI shows.

use std::sync::Arc;
use std::time::Duration;

use carebridge_protocol::PractitionerId;
use carebridge_protocol::appointment::{
    Appointment, AppointmentAction, BookAppointment, BookedBy, Reschedule, WithReason,
};
use carebridge_protocol::patient::{
    KioskIdentify, KioskPatient, NewPatient, Patient, PatientUpdate,
};
use carebridge_protocol::report::{Report, ReportAction, ReportContent, ReportRevision};
use carebridge_protocol::schedule::Slot;
use carebridge_protocol::session::Principal;
use chrono_tz::Tz;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::changes::{ChangeKind, Changed, Changes};
use crate::error::{CoreError, problem_of};
use crate::live::{LiveEnd, LiveNews, follow};
use crate::notify::{ExchangeNotices, Notice, Notifier, notice_for};
use crate::session::SignedIn;
use crate::store::{Applied, LocalStore, NodeRecord, OutboxItem, Outcome, Write};
use crate::sync::{SnapshotOptions, first_sync};
use carebridge_protocol::problem::ProblemType;

/// How many change notices a listener may fall behind before it is told it lagged.
pub const CHANGES_BACKLOG: usize = 256;

/// How the client stands with its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    /// The live stream is connected.
    Online,
    /// Syncing, or opening the stream.
    Connecting,
    /// The node cannot be reached; writes wait in the outbox.
    Offline,
    /// The node no longer accepts the session: sign in again.
    SignedOut,
}

/// What the UI's connection indicator shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Status {
    /// The connection.
    pub link: Link,
    /// Writes waiting for the node.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub pending: u64,
    /// Writes the node refused, not yet dismissed by the user.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub refused: u64,
}

/// Backoff between attempts: doubling from half a second to 30 s, with jitter so that many
/// clients coming back together do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = 500u64.saturating_mul(1 << attempt.min(6)).min(30_000);
    let jitter = rand::thread_rng().gen_range(0..=base / 2);
    Duration::from_millis(base / 2 + jitter)
}

struct Shared {
    store: LocalStore,
    http: reqwest::Client,
    signed_in: SignedIn,
    notifier: Arc<dyn Notifier>,
    status: watch::Sender<Status>,
    /// What the user sees changed (live events, answers to writes, new writes): the UI
    /// re-reads what shows it.
    changes: broadcast::Sender<Arc<Changes>>,
    outbox_wake: Notify,
    stop: CancellationToken,
    counting: tokio::sync::Mutex<()>,
}

impl Shared {
    fn set_link(&self, link: Link) {
        self.status.send_if_modified(|s| {
            // Signed out is final for this engine.
            if s.link == link || s.link == Link::SignedOut {
                return false;
            }
            s.link = link;
            true
        });
    }

    /// Publishes the outbox's counts. Read and publish happen under one lock, so two callers
    /// cannot publish in the wrong order.
    async fn refresh_counts(&self) {
        let _one_at_a_time = self.counting.lock().await;
        match self.store.outbox_counts().await {
            Ok((pending, refused)) => {
                self.status.send_if_modified(|s| {
                    let changed = s.pending != pending || s.refused != refused;
                    s.pending = pending;
                    s.refused = refused;
                    changed
                });
            }
            Err(e) => tracing::error!(error = %e, "counting the outbox failed"),
        }
    }

    /// Tells the listeners what changed (nobody listening is fine: nothing is shown).
    fn changed(&self, changes: Changes) {
        if !changes.is_empty() {
            let _ = self.changes.send(Arc::new(changes));
        }
    }

    fn signed_out(&self) {
        self.set_link(Link::SignedOut);
        self.stop.cancel();
    }
}

/// A running sync engine for one signed-in profile.
pub struct SyncEngine {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SyncEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncEngine")
            .field("signed_in", &self.shared.signed_in)
            .finish_non_exhaustive()
    }
}

impl SyncEngine {
    /// Starts syncing `store` with the node `signed_in` names. Call within a Tokio runtime.
    pub fn start(store: LocalStore, signed_in: SignedIn, notifier: Arc<dyn Notifier>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Not a total timeout: a large hospital's snapshot takes longer than any sensible
            // deadline; silence is what shows a dead connection.
            .read_timeout(Duration::from_secs(45))
            .build()
            .unwrap_or_default();
        let (status, _) = watch::channel(Status {
            link: Link::Connecting,
            pending: 0,
            refused: 0,
        });
        let shared = Arc::new(Shared {
            store,
            http,
            signed_in,
            notifier,
            status,
            changes: broadcast::channel(CHANGES_BACKLOG).0,
            outbox_wake: Notify::new(),
            stop: CancellationToken::new(),
            counting: tokio::sync::Mutex::new(()),
        });
        let (news_tx, news_rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(run_sync(shared.clone(), news_tx)),
            tokio::spawn(run_news(shared.clone(), news_rx)),
            tokio::spawn(run_outbox(shared.clone())),
        ];
        Self { shared, tasks }
    }

    /// The connection state and counts, for the UI to watch.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// What the user sees changed, notice by notice, for the UI to re-read what shows it. A
    /// listener that falls more than [`CHANGES_BACKLOG`] notices behind is told it lagged:
    /// it should take everything as changed.
    pub fn changes(&self) -> broadcast::Receiver<Arc<Changes>> {
        self.shared.changes.subscribe()
    }

    /// Tells the screens of a change the engine did not make itself (a workstation's folder
    /// import, a document filed through the node).
    pub fn tell(&self, changes: Changes) {
        self.shared.changed(changes);
    }

    /// The local store, for the UI's queries.
    pub fn store(&self) -> &LocalStore {
        &self.shared.store
    }

    /// Who is signed in.
    pub fn principal(&self) -> &Principal {
        self.shared.signed_in.principal()
    }

    /// The session.
    pub fn signed_in(&self) -> &SignedIn {
        &self.shared.signed_in
    }

    /// The node's time zone.
    pub fn time_zone(&self) -> Tz {
        self.shared.signed_in.time_zone()
    }

    /// The node's date today.
    pub fn today(&self) -> chrono::NaiveDate {
        self.now_at_node().date_naive()
    }

    /// Now, on the node's clock face.
    pub fn now_at_node(&self) -> chrono::DateTime<Tz> {
        crate::clock::now().with_timezone(&self.time_zone())
    }

    /// After a write was queued: wake the outbox first (the write is stored; nothing may
    /// make the caller think otherwise), then update the counts.
    async fn queued<T: Changed>(&self, r: Result<T, CoreError>) -> Result<T, CoreError> {
        let v = r?;
        self.shared.outbox_wake.notify_one();
        let mut changes = v.changes();
        changes.merge(Changes::of(ChangeKind::Outbox));
        self.shared.changed(changes);
        self.shared.refresh_counts().await;
        Ok(v)
    }

    /// Books an appointment (see [`LocalStore::queue_booking`]).
    pub async fn book(&self, body: BookAppointment) -> Result<Appointment, CoreError> {
        let r = self
            .shared
            .store
            .queue_booking(self.principal().clone(), body)
            .await;
        if let Ok(a) = &r {
            tracing::trace!(target: crate::TIMELINE, mark = "client.stored", id = %a.id);
        }
        self.queued(r).await
    }

    /// Confirms, declines, cancels, checks in, completes or marks a no-show.
    pub async fn act(
        &self,
        id: carebridge_protocol::AppointmentId,
        action: AppointmentAction,
        reason: Option<String>,
    ) -> Result<Appointment, CoreError> {
        let r = self.shared.store.queue_action(id, action, reason).await;
        self.queued(r).await
    }

    /// Moves an appointment.
    pub async fn reschedule(
        &self,
        id: carebridge_protocol::AppointmentId,
        body: Reschedule,
    ) -> Result<Appointment, CoreError> {
        let r = self
            .shared
            .store
            .queue_reschedule(self.principal().clone(), id, body)
            .await;
        self.queued(r).await
    }

    /// Registers a patient.
    pub async fn register_patient(&self, body: NewPatient) -> Result<Patient, CoreError> {
        let node = self.shared.signed_in.session.node.clone();
        let r = self
            .shared
            .store
            .queue_new_patient(body, node, self.today())
            .await;
        self.queued(r).await
    }

    /// Changes a patient's details.
    pub async fn update_patient(
        &self,
        id: carebridge_protocol::PatientId,
        body: PatientUpdate,
    ) -> Result<Patient, CoreError> {
        let r = self
            .shared
            .store
            .queue_patient_update(id, body, self.today())
            .await;
        self.queued(r).await
    }

    /// The signed-in doctor, or a clear refusal for anyone else.
    fn doctor(&self) -> Result<(PractitionerId, String), CoreError> {
        match self.principal() {
            Principal::Staff {
                id,
                role: carebridge_protocol::practitioner::Role::Doctor,
                display_name,
            } => Ok((*id, display_name.clone())),
            _ => Err(CoreError::Invalid("only doctors write reports".into())),
        }
    }

    /// Starts a report about a patient: a draft, kept here and sent when the node is reachable.
    pub async fn new_report(
        &self,
        patient: carebridge_protocol::PatientId,
        content: ReportContent,
    ) -> Result<Report, CoreError> {
        let (me, name) = self.doctor()?;
        let r = self
            .shared
            .store
            .queue_new_report(me, name, patient, content)
            .await;
        self.queued(r).await
    }

    /// Saves a draft, finalises it, amends a final report or enters it in error.
    pub async fn report_action(
        &self,
        id: carebridge_protocol::ReportId,
        action: ReportAction,
        content: Option<ReportContent>,
        reason: Option<String>,
    ) -> Result<Report, CoreError> {
        let (me, name) = self.doctor()?;
        let r = self
            .shared
            .store
            .queue_report_action(me, name, id, action, content, reason)
            .await;
        self.queued(r).await
    }

    /// A report's signed revisions, from the node (the mirror keeps each report's current
    /// state only).
    pub async fn report_revisions(
        &self,
        id: carebridge_protocol::ReportId,
    ) -> Result<Vec<ReportRevision>, CoreError> {
        self.doctor()?;
        let req = self.node_request(reqwest::Method::GET, &format!("reports/{id}/revisions"));
        self.ask_node(req).await
    }

    /// A report as a PDF, rendered by the node (revision `None`: as it is now).
    pub async fn report_pdf(
        &self,
        id: carebridge_protocol::ReportId,
        revision: Option<u32>,
    ) -> Result<Vec<u8>, CoreError> {
        self.doctor()?;
        let mut req = self.node_request(reqwest::Method::GET, &format!("reports/{id}/pdf"));
        if let Some(n) = revision {
            req = req.query(&[("revision", n)]);
        }
        let res = self.node_answer(req).await?;
        Ok(res.bytes().await?.to_vec())
    }

    /// At a kiosk: the patient identifies with card number and birth date. Needs the node (the
    /// kiosk keeps no patient list to check against).
    pub async fn identify_patient(
        &self,
        card_number: String,
        birth_date: chrono::NaiveDate,
    ) -> Result<KioskPatient, CoreError> {
        let body = KioskIdentify {
            card_number,
            birth_date,
        };
        let req = self.node_request(reqwest::Method::POST, "kiosk/identify");
        let patient: KioskPatient = self.ask_node(req.json(&body)).await?;
        // Kept so that the patient can check in through the outbox like any other write.
        let today = patient
            .appointments_today
            .iter()
            .cloned()
            .map(NodeRecord::Appointment)
            .collect();
        let changes = patient
            .appointments_today
            .iter()
            .fold(Changes::default(), |mut c, a| {
                c.merge(a.changes());
                c
            });
        self.shared.store.land_records(today).await?;
        self.shared.changed(changes);
        Ok(patient)
    }

    /// At a kiosk: the patient is done. The node forgets their identification at once, so that
    /// the kiosk can no longer book or answer for them (it would, for ten more minutes).
    pub async fn end_identification(&self) -> Result<(), CoreError> {
        let req = self.node_request(reqwest::Method::DELETE, "kiosk/identify");
        self.tell_node(req).await
    }

    /// A doctor's slots on local dates `from..=to`. Staff see every appointment, so their
    /// client computes the slots from its mirror (offline too, with its own pending bookings
    /// held); a kiosk sees only its own bookings, so it asks the node.
    pub async fn slots(
        &self,
        practitioner: PractitionerId,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<Slot>, CoreError> {
        match self.principal() {
            Principal::Staff { .. } => {
                let tz = self.time_zone();
                self.shared.store.slots(practitioner, from, to, tz).await
            }
            Principal::Kiosk { .. } => {
                let req = self
                    .node_request(
                        reqwest::Method::GET,
                        &format!("practitioners/{practitioner}/slots"),
                    )
                    .query(&[("from", from), ("to", to)]);
                self.ask_node(req).await
            }
        }
    }

    pub(crate) fn node_request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.shared
            .http
            .request(
                method,
                format!("{}/api/v1/{path}", self.shared.signed_in.node_url),
            )
            .timeout(Duration::from_secs(30))
            .bearer_auth(&self.shared.signed_in.session.token)
    }

    /// A request to the node's FHIR API (`/fhir/R4/{path}`; the base itself when `path` is
    /// empty), signed in as the user.
    pub(crate) fn fhir_request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let base = format!("{}/fhir/R4", self.shared.signed_in.node_url);
        let url = if path.is_empty() {
            base
        } else {
            format!("{base}/{path}")
        };
        self.shared
            .http
            .request(method, url)
            .timeout(Duration::from_secs(30))
            .header(reqwest::header::ACCEPT, "application/fhir+json")
            .bearer_auth(&self.shared.signed_in.session.token)
    }

    /// Sends a question that only the node can answer (nothing is queued).
    pub(crate) async fn ask_node<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, CoreError> {
        let res = self.node_answer(req).await?;
        Ok(res.json().await?)
    }

    /// Sends a request whose answer has no body the client needs.
    pub(crate) async fn tell_node(&self, req: reqwest::RequestBuilder) -> Result<(), CoreError> {
        self.node_answer(req).await.map(|_| ())
    }

    /// The node's successful answer, or its refusal as an error.
    pub(crate) async fn node_answer(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CoreError> {
        let res = req.send().await?;
        match res.status() {
            s if s.is_success() => Ok(res),
            reqwest::StatusCode::UNAUTHORIZED => {
                self.shared.signed_out();
                Err(CoreError::SignedOut)
            }
            _ => Err(CoreError::Rejected(Box::new(problem_of(res).await))),
        }
    }

    /// The user has read a refusal.
    pub async fn dismiss_refused(&self, seq: i64) -> Result<(), CoreError> {
        self.shared.store.dismiss_refused(seq).await?;
        self.shared.changed(Changes::of(ChangeKind::Outbox));
        self.shared.refresh_counts().await;
        Ok(())
    }

    /// Tells the tasks to stop, without waiting for them (for a holder that cannot take the
    /// engine to [`Self::shutdown`] it). What is pending stays in the outbox.
    pub fn stop(&self) {
        self.shared.stop.cancel();
    }

    /// The kiosk bookings waiting for the signed-in doctor's answer, from the start of today
    /// (the node's date) on, soonest first. Empty for anyone but a doctor.
    pub async fn waiting_bookings(&self) -> Result<Vec<crate::store::AppointmentRow>, CoreError> {
        let Principal::Staff { id, .. } = self.principal() else {
            return Ok(Vec::new());
        };
        let (start_of_today, _) = crate::store::day_bounds(self.today(), self.time_zone());
        self.shared.store.waiting_for(*id, start_of_today).await
    }

    /// At a kiosk: one of this kiosk's own bookings, or an appointment of today (an identified
    /// patient's, kept for checking in), as it stands here. Nothing else, whatever the id.
    pub async fn kiosk_appointment(
        &self,
        id: carebridge_protocol::AppointmentId,
    ) -> Result<Option<crate::store::AppointmentRow>, CoreError> {
        let Principal::Kiosk { id: me, .. } = self.principal() else {
            return Ok(None);
        };
        let (from, to) = crate::store::day_bounds(self.today(), self.time_zone());
        Ok(self.shared.store.appointment(id).await?.filter(|r| {
            let a = &r.appointment;
            let mine = matches!(a.booked_by, BookedBy::Kiosk { id } if id == *me);
            mine || (a.start >= from && a.start < to)
        }))
    }

    /// Stops syncing and waits for the tasks to end. What is pending stays in the outbox.
    pub async fn shutdown(mut self) {
        self.shared.stop.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for SyncEngine {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// First sync, then the live stream; again after a reset; retrying while the node is away.
/// Every change of the link goes through `news`, in order, so a late "connected" can never
/// overwrite a newer "offline".
async fn run_sync(shared: Arc<Shared>, news: mpsc::UnboundedSender<LiveNews>) {
    let base = shared.signed_in.node_url.clone();
    let token = shared.signed_in.session.token.clone();
    let opts = SnapshotOptions::default();
    let mut attempt = 0u32;
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let synced = tokio::select! {
            _ = shared.stop.cancelled() => return,
            r = first_sync(&shared.http, &base, &token, &shared.store, &opts) => r,
        };
        match synced {
            Ok(stored) => {
                if stored > 0 {
                    attempt = 0;
                    // The snapshot changed what the user sees.
                    shared.changed(Changes::everything());
                }
            }
            Err(CoreError::SignedOut) => return shared.signed_out(),
            // Cut off after some progress: go on from there at once.
            Err(CoreError::Interrupted(n)) if n > 0 => {
                attempt = 0;
                shared.changed(Changes::everything());
                continue;
            }
            Err(e) => {
                tracing::info!(error = %e, "first sync did not finish; trying again");
                let _ = news.send(LiveNews::Disconnected);
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                }
                attempt = attempt.saturating_add(1);
                continue;
            }
        }
        let followed_from = tokio::time::Instant::now();
        match follow(
            &base,
            &token,
            &shared.store,
            shared.stop.clone(),
            news.clone(),
        )
        .await
        {
            Ok(LiveEnd::Stopped) => return,
            Ok(LiveEnd::SignedOut) => return shared.signed_out(),
            Ok(LiveEnd::Reset) => {
                tracing::info!("the node asked for a reset; reading the snapshot again");
                let _ = news.send(LiveNews::Connecting);
            }
            Err(e) => {
                tracing::warn!(error = %e, "following the live stream failed; starting over");
                let _ = news.send(LiveNews::Disconnected);
                // A stream that ran for a while was working: this failure starts a new count.
                if followed_from.elapsed() > Duration::from_secs(60) {
                    attempt = 0;
                }
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Turns what the stream reports into the connection state and notices.
async fn run_news(shared: Arc<Shared>, mut news: mpsc::UnboundedReceiver<LiveNews>) {
    let mut exchange_notices = ExchangeNotices::default();
    while let Some(n) = news.recv().await {
        match n {
            LiveNews::Connected => {
                shared.set_link(Link::Online);
                // Writes held back by the outage can go now.
                shared.outbox_wake.notify_one();
            }
            LiveNews::Disconnected => shared.set_link(Link::Offline),
            LiveNews::Connecting => shared.set_link(Link::Connecting),
            LiveNews::Applied(applied) => {
                shared.changed(Changes::applied(&applied));
                for a in &applied {
                    notify(&shared, a).await;
                }
            }
            LiveNews::Exchange(events) => {
                shared.changed(Changes::exchange(&events));
                for e in &events {
                    if let Some(mut n) = exchange_notices.notice(shared.signed_in.principal(), e) {
                        if let Notice::StudyAvailable {
                            study,
                            patient_name,
                        } = &mut n
                            && let Some(p) = study.patient_id
                            && let Ok(Some(p)) = shared.store.patient(p).await
                        {
                            *patient_name = Some(format!(
                                "{} {}",
                                p.patient.given_name, p.patient.family_name
                            ));
                        }
                        shared.notifier.notify(n);
                    }
                }
            }
        }
    }
}

/// Tells the notifier about a change, if it is news to this user.
async fn notify(shared: &Shared, applied: &Applied) {
    let Some(mut notice) = notice_for(shared.signed_in.principal(), applied) else {
        return;
    };
    if let Notice::KioskBooking {
        appointment,
        patient_name,
    } = &mut notice
        && let Ok(Some(p)) = shared.store.patient(appointment.patient_id).await
    {
        *patient_name = Some(format!(
            "{} {}",
            p.patient.given_name, p.patient.family_name
        ));
    }
    shared.notifier.notify(notice);
}

/// What sending one outbox item came to.
enum Sent {
    Answered(Box<Outcome>),
    /// A success whose body could not be read: the repeat returns the same answer.
    Unreadable(String),
    /// Network trouble or a passing fault on the node: try again later.
    Retry(String),
    SignedOut,
}

/// Drains the outbox in order, one item at a time, with backoff while the node is away.
async fn run_outbox(shared: Arc<Shared>) {
    shared.refresh_counts().await;
    let mut attempt = 0u32;
    // Consecutive failures to record or read the node's answer to the current item.
    let mut stuck = 0u32;
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let item = match shared.store.next_pending().await {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox failed");
                None
            }
        };
        let Some(item) = item else {
            tokio::select! {
                _ = shared.stop.cancelled() => return,
                _ = shared.outbox_wake.notified() => continue,
            }
        };
        tracing::trace!(target: crate::TIMELINE, mark = "client.sending", id = %item.record_id);
        let sent = tokio::select! {
            _ = shared.stop.cancelled() => return,
            s = send(&shared, &item) => s,
        };
        match sent {
            Sent::Answered(outcome) => {
                tracing::trace!(target: crate::TIMELINE, mark = "client.answered", id = %item.record_id);
                attempt = 0;
                match shared.store.complete(item.seq, *outcome).await {
                    Ok(shown) => {
                        stuck = 0;
                        let mut changes = item_changes(&item);
                        if let Some(applied) = &shown {
                            changes.merge(Changes::node_record(&applied.record));
                        }
                        shared.changed(changes);
                        if let Some(applied) = shown {
                            // Someone else's change that waited behind this write: news now.
                            notify(&shared, &applied).await;
                        }
                    }
                    Err(e) => {
                        // The item stays pending; its repeat (same Idempotency-Key) brings the
                        // same answer. Pause rather than spin, and after a few tries show it to
                        // the user as refused rather than block the queue behind it.
                        tracing::error!(error = %e, seq = item.seq, "recording the node's answer failed");
                        stuck += 1;
                        if stuck >= 5 {
                            give_up(
                                &shared,
                                &item,
                                &format!("its answer could not be recorded here: {e}"),
                            )
                            .await;
                            stuck = 0;
                        } else {
                            tokio::select! {
                                _ = shared.stop.cancelled() => return,
                                _ = tokio::time::sleep(backoff(3)) => {}
                            }
                        }
                    }
                }
                shared.refresh_counts().await;
            }
            Sent::SignedOut => return shared.signed_out(),
            Sent::Unreadable(why) => {
                stuck += 1;
                if stuck >= 5 {
                    give_up(&shared, &item, &why).await;
                    stuck = 0;
                    shared.refresh_counts().await;
                    continue;
                }
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff(3)) => {}
                }
            }
            Sent::Retry(why) => {
                tracing::info!(seq = item.seq, why, "write not delivered yet; will retry");
                let _ = shared.store.note_attempt(item.seq).await;
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                    // The stream came back: try at once.
                    _ = shared.outbox_wake.notified() => {}
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Marks an item the client cannot complete as refused, with why, so the user sees it and the
/// queue moves on.
async fn give_up(shared: &Shared, item: &OutboxItem, why: &str) {
    let mut problem =
        carebridge_protocol::Problem::new(ProblemType::Internal, format!("Not confirmed: {why}"));
    problem.title = "This change could not be confirmed".into();
    if let Err(e) = shared
        .store
        .complete(item.seq, Outcome::Refused(problem))
        .await
    {
        tracing::error!(error = %e, seq = item.seq, "the outbox item cannot be set aside either");
    }
    shared.changed(item_changes(item));
}

/// What an outbox item's answer changed: its record, and the outbox.
fn item_changes(item: &OutboxItem) -> Changes {
    let mut changes = Changes::of(ChangeKind::Outbox);
    if let Some(kind) = ChangeKind::of_record(&item.kind) {
        changes.merge(Changes::record(kind, &item.record_id));
    }
    changes
}

async fn send(shared: &Shared, item: &OutboxItem) -> Sent {
    let base = &shared.signed_in.node_url;
    let http = &shared.http;
    let if_match = |v: i64| format!("\"{v}\"");
    let req = match &item.write {
        Write::Book { body, .. } => http.post(format!("{base}/api/v1/appointments")).json(body),
        Write::Act {
            id,
            action,
            reason,
            if_match: v,
        } => {
            let r = http
                .post(format!(
                    "{base}/api/v1/appointments/{id}/{}",
                    action.as_str()
                ))
                .header("If-Match", if_match(*v));
            match reason {
                Some(reason) => r.json(&WithReason {
                    reason: reason.clone(),
                }),
                None => r,
            }
        }
        Write::Reschedule {
            id,
            body,
            if_match: v,
        } => http
            .post(format!("{base}/api/v1/appointments/{id}/reschedule"))
            .header("If-Match", if_match(*v))
            .json(body),
        Write::RegisterPatient { body, .. } => {
            http.post(format!("{base}/api/v1/patients")).json(body)
        }
        Write::UpdatePatient {
            id,
            body,
            if_match: v,
        } => http
            .patch(format!("{base}/api/v1/patients/{id}"))
            .header("If-Match", if_match(*v))
            .json(body),
        Write::CreateReport { body } => http.post(format!("{base}/api/v1/reports")).json(body),
        Write::ReportAct {
            id,
            action,
            content,
            reason,
            if_match: v,
        } => {
            let r = match action {
                ReportAction::SaveDraft => http.put(format!("{base}/api/v1/reports/{id}/draft")),
                other => http.post(format!("{base}/api/v1/reports/{id}/{}", other.as_str())),
            }
            .header("If-Match", if_match(*v));
            match (content, reason) {
                (Some(c), _) => r.json(c),
                (None, Some(reason)) => r.json(&WithReason {
                    reason: reason.clone(),
                }),
                (None, None) => r,
            }
        }
    };
    let res = match req
        .timeout(Duration::from_secs(30))
        .bearer_auth(&shared.signed_in.session.token)
        .header("Idempotency-Key", &item.idempotency_key)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Sent::Retry(e.to_string()),
    };
    let status = res.status();
    if status.is_success() {
        let record = match &item.write {
            Write::RegisterPatient { .. } | Write::UpdatePatient { .. } => {
                res.json::<Patient>().await.map(NodeRecord::Patient)
            }
            Write::CreateReport { .. } | Write::ReportAct { .. } => {
                res.json::<Report>().await.map(NodeRecord::Report)
            }
            _ => res.json::<Appointment>().await.map(NodeRecord::Appointment),
        };
        return match record {
            Ok(r) => Sent::Answered(Box::new(Outcome::Accepted(r))),
            // The body was cut off or is not what this client expects: the repeat (same
            // Idempotency-Key) returns the same answer.
            Err(e) => Sent::Unreadable(format!("the node's answer could not be read: {e}")),
        };
    }
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Sent::SignedOut;
    }
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        return Sent::Retry(format!("the node answered {status}"));
    }
    Sent::Answered(Box::new(Outcome::Refused(problem_of(res).await)))
}
