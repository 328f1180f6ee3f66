//! The node's client of Orthanc's REST API: its change feed, what a study holds, and an
//! instance's rendered preview. Orthanc is reached on loopback or a private network with the
//! credentials of `node.toml`; nothing here is exposed to the app.

use std::time::Duration;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::config::ImagingConfig;

/// Why Orthanc could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PacsError {
    /// It did not answer, or the connection broke.
    #[error("Orthanc at {url} did not answer: {source}")]
    Unreachable {
        /// Where.
        url: String,
        /// What happened.
        source: reqwest::Error,
    },
    /// It answered with an error status.
    #[error("Orthanc answered {status} to {path}")]
    Status {
        /// The status.
        status: u16,
        /// What was asked.
        path: String,
    },
    /// It answered something this node cannot read.
    #[error("Orthanc's answer to {path} was not understood: {reason}")]
    Unreadable {
        /// What was asked.
        path: String,
        /// Why.
        reason: String,
    },
}

/// One entry of Orthanc's change feed.
#[derive(Debug, Clone, Deserialize)]
pub struct Change {
    /// e.g. `StableStudy`, `NewInstance`.
    #[serde(rename = "ChangeType")]
    pub change_type: String,
    /// The resource's Orthanc id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its position in the feed.
    #[serde(rename = "Seq")]
    pub seq: i64,
}

/// A page of the change feed.
#[derive(Debug, Clone, Deserialize)]
pub struct Changes {
    /// The changes after the asked position, oldest first.
    #[serde(rename = "Changes")]
    pub changes: Vec<Change>,
    /// Whether this page reaches the end of the feed (while not, ask again from `last`).
    #[serde(rename = "Done")]
    pub done: bool,
    /// The position of the last change this page covers.
    #[serde(rename = "Last")]
    pub last: i64,
}

/// What the node records of a stable study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyFacts {
    /// Orthanc's id of the study.
    pub pacs_id: String,
    /// StudyInstanceUID.
    pub study_uid: String,
    /// AccessionNumber.
    pub accession: String,
    /// StudyDescription.
    pub description: String,
    /// StudyDate, when valid.
    pub study_date: Option<NaiveDate>,
    /// PatientID.
    pub patient_id: String,
    /// IssuerOfPatientID.
    pub issuer: String,
    /// PatientName.
    pub patient_name: String,
    /// The modalities of its series, each once, in series order.
    pub modalities: Vec<String>,
    /// Its series.
    pub series_count: i64,
    /// Its instances.
    pub instance_count: i64,
    /// The instance its preview shows: the middle one of its first series.
    pub preview_instance: Option<String>,
}

/// What Orthanc says of a stored file.
#[derive(Debug, Clone, Deserialize)]
pub struct Stored {
    /// `Success`, or `AlreadyStored` for a file it had.
    #[serde(rename = "Status")]
    pub status: String,
    /// Orthanc's id of the file's study.
    #[serde(rename = "ParentStudy")]
    pub study: String,
}

/// Main DICOM tags as Orthanc lists them: text, or (for tags added to its main tags by its
/// configuration) sequences, which the node does not read.
#[derive(Deserialize, Default)]
#[serde(transparent)]
struct Tags(std::collections::HashMap<String, serde_json::Value>);

impl Tags {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(serde_json::Value::as_str)
    }
}

#[derive(Deserialize)]
struct StudyJson {
    #[serde(rename = "MainDicomTags", default)]
    main: Tags,
    #[serde(rename = "PatientMainDicomTags", default)]
    patient: Tags,
}

#[derive(Deserialize)]
struct SeriesJson {
    #[serde(rename = "MainDicomTags", default)]
    main: Tags,
    #[serde(rename = "Instances", default)]
    instances: Vec<String>,
}

/// A client of one Orthanc.
#[derive(Debug, Clone)]
pub struct Orthanc {
    http: reqwest::Client,
    base: String,
    username: String,
    password: String,
}

impl Orthanc {
    /// A client of the Orthanc `cfg` names.
    pub fn new(cfg: &ImagingConfig) -> Self {
        // Without its timeouts a stalled Orthanc would hold the follower: a client that cannot
        // be built (no TLS roots) is a bug to see at once, in the log and the first read.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "the PACS client has no timeouts");
                reqwest::Client::new()
            });
        Self {
            http,
            base: cfg.orthanc_url.trim_end_matches('/').to_owned(),
            username: cfg.username.clone(),
            password: cfg.password.clone(),
        }
    }

    /// Turns a failed request or read into [`PacsError::Unreachable`].
    fn unreachable(&self) -> impl Fn(reqwest::Error) -> PacsError + '_ {
        move |source| PacsError::Unreachable {
            url: self.base.clone(),
            source,
        }
    }

    /// The address the feed's position is kept under: a different Orthanc starts again.
    pub fn source(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str) -> Result<Option<reqwest::Response>, PacsError> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.username, Some(&self.password))
            .send()
            .await
            .map_err(self.unreachable())?;
        match res.status().as_u16() {
            200 => Ok(Some(res)),
            404 => Ok(None),
            status => Err(PacsError::Status {
                status,
                path: path.to_owned(),
            }),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, PacsError> {
        let Some(res) = self.get(path).await? else {
            return Ok(None);
        };
        let bytes = res.bytes().await.map_err(self.unreachable())?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PacsError::Unreadable {
                path: path.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The changes after `since`, at most `limit`.
    pub async fn changes(&self, since: i64, limit: u32) -> Result<Changes, PacsError> {
        let path = format!("/changes?since={since}&limit={limit}");
        self.json(&path)
            .await?
            .ok_or(PacsError::Status { status: 404, path })
    }

    /// What a study holds; `None` when Orthanc no longer has it (deleted since its change).
    pub async fn study(&self, id: &str) -> Result<Option<StudyFacts>, PacsError> {
        let Some(study) = self.json::<StudyJson>(&format!("/studies/{id}")).await? else {
            return Ok(None);
        };
        let Some(series) = self
            .json::<Vec<SeriesJson>>(&format!("/studies/{id}/series"))
            .await?
        else {
            return Ok(None);
        };
        let mut modalities: Vec<String> = Vec::new();
        for s in &series {
            if let Some(m) = s.main.get("Modality").map(|m| m.trim())
                && !m.is_empty()
                && !modalities.iter().any(|x| x == m)
            {
                modalities.push(m.to_owned());
            }
        }
        let first = series.iter().find(|s| !s.instances.is_empty());
        // The preview is an image: not a dose report, key-object note or presentation state,
        // which Orthanc cannot render.
        let imaged = series.iter().find(|s| {
            !s.instances.is_empty()
                && !matches!(
                    s.main.get("Modality").map(|m| m.trim()),
                    Some("SR" | "KO" | "PR" | "DOC")
                )
        });
        let preview_instance = imaged.map(|s| s.instances[s.instances.len() / 2].clone());
        // IssuerOfPatientID is not among Orthanc's main tags: read it from one instance.
        let issuer = match first.and_then(|s| s.instances.first()) {
            Some(instance) => match self
                .get(&format!("/instances/{instance}/content/0010-0021"))
                .await?
            {
                Some(res) => res
                    .text()
                    .await
                    .map_err(self.unreachable())?
                    .trim_end_matches(['\0', ' '])
                    .to_owned(),
                None => String::new(),
            },
            None => String::new(),
        };
        let tag =
            |tags: &Tags, k: &str| tags.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        let study_uid = tag(&study.main, "StudyInstanceUID");
        if study_uid.is_empty() {
            return Err(PacsError::Unreadable {
                path: format!("/studies/{id}"),
                reason: "the study has no StudyInstanceUID".into(),
            });
        }
        Ok(Some(StudyFacts {
            pacs_id: id.to_owned(),
            study_uid,
            accession: tag(&study.main, "AccessionNumber"),
            description: tag(&study.main, "StudyDescription"),
            study_date: NaiveDate::parse_from_str(&tag(&study.main, "StudyDate"), "%Y%m%d").ok(),
            patient_id: tag(&study.patient, "PatientID"),
            issuer,
            patient_name: tag(&study.patient, "PatientName"),
            modalities,
            series_count: series.len() as i64,
            instance_count: series.iter().map(|s| s.instances.len() as i64).sum(),
            preview_instance,
        }))
    }

    /// Stores a DICOM file in Orthanc (as a modality's C-STORE would), streamed from `body`.
    /// `Ok(None)` when Orthanc refuses it as not DICOM.
    pub async fn store_instance(&self, body: reqwest::Body) -> Result<Option<Stored>, PacsError> {
        let path = "/instances";
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.username, Some(&self.password))
            .header(reqwest::header::CONTENT_TYPE, "application/dicom")
            // A large file over a slow disk: more than the usual 30 s.
            .timeout(Duration::from_secs(600))
            .body(body)
            .send()
            .await
            .map_err(self.unreachable())?;
        match res.status().as_u16() {
            200 => {}
            400 => return Ok(None),
            status => {
                return Err(PacsError::Status {
                    status,
                    path: path.to_owned(),
                });
            }
        }
        let bytes = res.bytes().await.map_err(self.unreachable())?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PacsError::Unreadable {
                path: path.to_owned(),
                reason: e.to_string(),
            })
    }

    /// An instance rendered as a PNG by Orthanc; `None` when it is gone or cannot be rendered.
    pub async fn preview(&self, instance: &str) -> Result<Option<bytes::Bytes>, PacsError> {
        let res = match self.get(&format!("/instances/{instance}/preview")).await {
            Ok(Some(res)) => res,
            Ok(None) => return Ok(None),
            // Orthanc refuses to render it (an unsupported transfer syntax, no pixels).
            Err(PacsError::Status { status, .. }) if (400..500).contains(&status) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        res.bytes().await.map(Some).map_err(self.unreachable())
    }
}
