//! The core's error: what went wrong, whether trying again can help, and the stable code the
//! UI switches on ([`CoreError::code`]). The mapping from error to code is decided here, once,
//! so the app's commands only translate it (2026-12: issue 16, typed errors to the UI).

use carebridge_protocol::Problem;
use carebridge_protocol::patient::Patient;
use carebridge_protocol::problem::ProblemType;
use serde::Serialize;

/// Whether an operation that failed is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// When the node can be reached again.
    WhenOnline,
    /// After a pause (the node had a passing fault).
    Backoff,
    /// Never as it is: the user or the data must change.
    Never,
}

/// What can go wrong in the client core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The key does not open the local database (wrong passphrase, or another profile's file).
    #[error("this profile's local data does not open with that key: check the passphrase")]
    WrongKey,
    /// The local database failed.
    #[error("local database: {0}")]
    Store(#[from] rusqlite::Error),
    /// The node could not be reached, or the connection broke.
    #[error("the node cannot be reached: {0}")]
    Offline(#[from] reqwest::Error),
    /// The node refused, with its reason.
    #[error("the node refused: {}", .0.detail.as_deref().unwrap_or(.0.title.as_str()))]
    Rejected(Box<Problem>),
    /// The practitioner already has a live appointment at that time, as this client's mirror
    /// shows it: the node would refuse the booking with `slot-taken`, so nothing was queued.
    #[error("{0}")]
    SlotTaken(String),
    /// The node sent something this client does not understand.
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
    /// The snapshot stopped before its end; what came is kept, and it resumes from there.
    #[error("the snapshot was cut off after {0} records; it resumes from there")]
    Interrupted(u64),
    /// The user's input cannot be sent as it is; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// No such record here.
    #[error("{0} is not known here")]
    NotFound(String),
    /// The session is over (signed out, expired, or ended by an admin): sign in again.
    #[error("signed out: sign in again")]
    SignedOut,
    /// Neither the OS keychain nor a passphrase can unlock this profile.
    #[error("{0}")]
    NoKey(String),
    /// A blocking task failed.
    #[error("internal error: {0}")]
    Task(String),
    /// A file the user asked for could not be written here; none was left half-written.
    #[error("the file could not be written: {0}")]
    File(#[source] std::io::Error),
}

impl From<serde_json::Error> for CoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Protocol(e.to_string())
    }
}

/// What went wrong, as a stable code the UI switches on (it shows its own text for a code and
/// reacts to some, e.g. offers other slots for `slot-taken`). A closed list: a problem code the
/// node uses, or one of the client's own; the two never share a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export, untagged))]
pub enum ErrorCode {
    /// A code the node uses: the node refused with it, or the client's own check found what
    /// the node would refuse with it (a taken slot, a record not known).
    Problem(ProblemType),
    /// A failure of the client's own, where the node did not answer.
    Client(ClientCode),
}

/// The client's (the core's and the app's) own error codes: failures the node never answers
/// with, because it was not asked or could not be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum ClientCode {
    /// The node cannot be reached or the connection broke; questions need it, writes wait.
    Offline,
    /// The snapshot stopped before its end; what came is kept and it resumes from there.
    Interrupted,
    /// The node answered something this client does not understand.
    UnexpectedAnswer,
    /// The session is over (signed out, expired, or ended by an admin): sign in again.
    SignedOut,
    /// The app's session is locked after inactivity or by the user: sign in again.
    Locked,
    /// The password given does not unlock the locked session.
    WrongPassword,
    /// The key does not open this profile's local database.
    WrongKey,
    /// Neither the OS keychain nor a passphrase can unlock this profile.
    NoKey,
    /// The user's input cannot be sent as it is; nothing was changed.
    Invalid,
    /// Something failed on this computer (its database, a file, a task); nothing was changed.
    LocalFailure,
}

impl From<ProblemType> for ErrorCode {
    fn from(code: ProblemType) -> Self {
        Self::Problem(code)
    }
}

impl From<ClientCode> for ErrorCode {
    fn from(code: ClientCode) -> Self {
        Self::Client(code)
    }
}

impl ErrorCode {
    /// The code of a refusal whose problem may be missing (an outbox row written before
    /// refusals kept it): the problem's, else `internal`.
    pub fn of_refusal(problem: Option<&Problem>) -> Self {
        problem.map_or(ProblemType::Internal, |p| p.code).into()
    }
}

/// The patients a `possible-duplicate` refusal names (its `current`); empty for any other
/// problem, or when the node sent none this client can read.
pub fn duplicate_candidates(problem: &Problem) -> Vec<Patient> {
    match (&problem.code, &problem.current) {
        (ProblemType::PossibleDuplicate, Some(current)) => {
            serde_json::from_value(current.clone()).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

impl CoreError {
    /// The stable code of this error, for the UI to switch on: the node's problem code when
    /// the node refused, else the client's own.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rejected(p) => p.code.into(),
            Self::SlotTaken(_) => ProblemType::SlotTaken.into(),
            Self::NotFound(_) => ProblemType::NotFound.into(),
            Self::WrongKey => ClientCode::WrongKey.into(),
            Self::Store(_) | Self::Task(_) | Self::File(_) => ClientCode::LocalFailure.into(),
            Self::Offline(_) => ClientCode::Offline.into(),
            Self::Protocol(_) => ClientCode::UnexpectedAnswer.into(),
            Self::Interrupted(_) => ClientCode::Interrupted.into(),
            Self::Invalid(_) => ClientCode::Invalid.into(),
            Self::SignedOut => ClientCode::SignedOut.into(),
            Self::NoKey(_) => ClientCode::NoKey.into(),
        }
    }

    /// The node's problem, when the node refused.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Rejected(p) => Some(p),
            _ => None,
        }
    }

    /// Whether trying again can help, and when.
    pub fn retry(&self) -> Retry {
        match self {
            Self::Offline(_) | Self::Interrupted(_) => Retry::WhenOnline,
            Self::Rejected(p) if p.status >= 500 => Retry::Backoff,
            Self::Task(_) | Self::Protocol(_) => Retry::Backoff,
            _ => Retry::Never,
        }
    }
}

/// The node's problem document from an error response; one made up from the status when the
/// body is not one (a proxy's error page).
pub(crate) async fn problem_of(res: reqwest::Response) -> Problem {
    let status = res.status();
    let body = res.bytes().await.unwrap_or_default();
    if let Some(p) = outcome_as_problem(&body, status.as_u16()) {
        return p;
    }
    match serde_json::from_slice::<Problem>(&body) {
        Ok(p) => p,
        Err(_) => {
            let code = if status.is_server_error() {
                ProblemType::Internal
            } else {
                ProblemType::Validation
            };
            let mut p = Problem::new(code, format!("the node answered {status}"));
            p.status = status.as_u16();
            p
        }
    }
}

/// A FHIR OperationOutcome (what `/fhir/R4` answers errors with) as the problem the rest of
/// the app words: its first issue's type and text.
fn outcome_as_problem(body: &[u8], status: u16) -> Option<Problem> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if v["resourceType"] != "OperationOutcome" {
        return None;
    }
    let issue = &v["issue"][0];
    let code = match issue["code"].as_str().unwrap_or("") {
        "forbidden" | "security" => ProblemType::Forbidden,
        "login" => ProblemType::Unauthenticated,
        "not-found" => ProblemType::NotFound,
        "conflict" | "duplicate" => ProblemType::Conflict,
        "too-costly" => ProblemType::PayloadTooLarge,
        "throttled" => ProblemType::TooManyRequests,
        "transient" => ProblemType::Unavailable,
        "exception" => ProblemType::Internal,
        _ => ProblemType::Validation,
    };
    let mut p = Problem::new(code, issue["diagnostics"].as_str().map(str::to_owned));
    p.status = status;
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline() -> reqwest::Error {
        // A request that cannot be built fails without any I/O.
        reqwest::Client::new()
            .get("http://[::1")
            .build()
            .expect_err("not a URL")
    }

    fn code_text(code: ErrorCode) -> String {
        serde_json::to_value(code)
            .expect("serialises")
            .as_str()
            .expect("a string")
            .to_owned()
    }

    #[test]
    fn every_error_has_its_code() {
        let problem = |code| CoreError::Rejected(Box::new(Problem::new(code, None)));
        let cases: Vec<(CoreError, &str)> = vec![
            (CoreError::WrongKey, "wrong-key"),
            (
                CoreError::Store(rusqlite::Error::InvalidQuery),
                "local-failure",
            ),
            (CoreError::Offline(offline()), "offline"),
            (problem(ProblemType::SlotTaken), "slot-taken"),
            (
                problem(ProblemType::PossibleDuplicate),
                "possible-duplicate",
            ),
            (
                problem(ProblemType::InvalidTransition),
                "invalid-transition",
            ),
            (
                problem(ProblemType::PreconditionFailed),
                "precondition-failed",
            ),
            (CoreError::SlotTaken("taken".into()), "slot-taken"),
            (CoreError::Protocol("what?".into()), "unexpected-answer"),
            (CoreError::Interrupted(3), "interrupted"),
            (CoreError::Invalid("reason: empty".into()), "invalid"),
            (CoreError::NotFound("patient x".into()), "not-found"),
            (CoreError::SignedOut, "signed-out"),
            (CoreError::NoKey("no keychain".into()), "no-key"),
            (CoreError::Task("join".into()), "local-failure"),
        ];
        for (error, code) in cases {
            assert_eq!(code_text(error.code()), code, "{error:?}");
        }
    }

    #[test]
    fn a_node_problem_passes_its_code_and_itself_through() {
        let mut p = Problem::new(ProblemType::OutsideSchedule, Some("not a slot".into()));
        p.status = 422;
        let e = CoreError::Rejected(Box::new(p.clone()));
        assert_eq!(e.code(), ErrorCode::Problem(ProblemType::OutsideSchedule));
        assert_eq!(e.problem(), Some(&p));
        assert_eq!(CoreError::SlotTaken("x".into()).problem(), None);
        assert_eq!(
            ErrorCode::of_refusal(Some(&p)),
            ErrorCode::Problem(ProblemType::OutsideSchedule)
        );
        assert_eq!(
            ErrorCode::of_refusal(None),
            ErrorCode::Problem(ProblemType::Internal)
        );
    }

    #[test]
    fn the_clients_own_codes_never_reuse_a_node_code() {
        let own = [
            ClientCode::Offline,
            ClientCode::Interrupted,
            ClientCode::UnexpectedAnswer,
            ClientCode::SignedOut,
            ClientCode::Locked,
            ClientCode::WrongPassword,
            ClientCode::WrongKey,
            ClientCode::NoKey,
            ClientCode::Invalid,
            ClientCode::LocalFailure,
        ];
        for code in own {
            let text = code_text(code.into());
            let as_node: Result<ProblemType, _> = serde_json::from_value(text.clone().into());
            assert!(as_node.is_err(), "{text} is also a node code");
        }
    }

    #[test]
    fn a_possible_duplicate_names_its_candidates() {
        let mut p = Problem::new(ProblemType::PossibleDuplicate, None);
        p.current = Some(serde_json::json!([]));
        assert!(duplicate_candidates(&p).is_empty());
        p.current = Some(serde_json::json!({ "not": "patients" }));
        assert!(duplicate_candidates(&p).is_empty());
        let ada = serde_json::json!({
            "id": "0190a4c8-0000-7000-8000-000000000001",
            "global_id": "0190a4c8-0000-7000-8000-000000000001@hospital.example",
            "family_name": "Lovelace", "given_name": "Ada", "birth_date": "1990-12-10",
            "phone": null, "email": null, "card_number": "C-100", "version": 1,
            "created_at": "2026-12-01T09:00:00Z", "updated_at": "2026-12-01T09:00:00Z",
        });
        p.current = Some(serde_json::json!([ada]));
        let found = duplicate_candidates(&p);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].family_name, "Lovelace");
        let mut other = Problem::new(ProblemType::PreconditionFailed, None);
        other.current = Some(serde_json::json!([ada]));
        assert!(duplicate_candidates(&other).is_empty());
    }
}
