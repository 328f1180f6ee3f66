//! A real Orthanc of a test's own (Debian's `orthanc`, `make deps` installs it) on loopback
//! ports, with its worklist plugin and a script that hints the node when a study is stable;
//! and what a modality does with dcmtk: ask the worklist (`findscu`), make an image
//! (ImageMagick → `img2dcm` → `dcmodify`) and send it (`storescu`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::free_port;

/// The Orthanc user the node signs in as.
pub const ORTHANC_USER: &str = "carebridge";
/// Its password.
pub const ORTHANC_PASSWORD: &str = "orthanc-test-password";
/// The token Orthanc's script sends with its hint.
pub const HINT_TOKEN: &str = "hint-token-for-the-tests-0123456789";
/// Orthanc calls a study stable after this many seconds without a new image.
pub const STABLE_AGE: u64 = 1;
/// Orthanc's DICOM application entity title.
pub const PACS_AET: &str = "CBPACS";

/// An Orthanc of the test's own, stopped when dropped. Its ports are chosen first, so that the
/// node can be configured for it before it starts (its script needs the node's address).
pub struct Pacs {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its REST API's port.
    pub http_port: u16,
    /// Its DICOM port.
    pub dicom_port: u16,
}

impl Default for Pacs {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacs {
    /// Chooses its ports and folders; [`Self::start`] starts it.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a scratch folder for Orthanc");
        std::fs::create_dir_all(dir.path().join("worklists")).expect("the worklist folder");
        Self {
            child: None,
            dir,
            http_port: free_port(),
            dicom_port: free_port(),
        }
    }

    /// Starts Orthanc with its worklist folder and a script that hints `node_url` (with
    /// `token`) when a study is stable; waits until it answers a DICOM echo.
    pub async fn start(&mut self, node_url: &str, token: &str) {
        let dir = self.dir.path();
        let lua = dir.join("hint.lua");
        std::fs::write(
            &lua,
            format!(
                "function OnStableStudy(studyId, tags, metadata)\n  \
                 HttpPost('{node_url}/api/v1/imaging/hint', '{{}}', {{['Authorization'] = 'Bearer {token}'}})\n\
                 end\n"
            ),
        )
        .expect("the hint script");
        // Another test's process may take the DICOM port between its choice and Orthanc's
        // start: Orthanc then exits, and is started again on another port (the node knows only
        // the HTTP port).
        for _ in 0..3 {
            self.spawn(&lua);
            if self.ready().await {
                return;
            }
            self.dicom_port = free_port();
        }
        panic!(
            "Orthanc did not start (see {})",
            self.dir.path().join("orthanc.log").display()
        );
    }

    fn spawn(&mut self, lua: &Path) {
        let dir = self.dir.path();
        let config = serde_json::json!({
            "Name": "carebridge-test",
            "StorageDirectory": dir.join("db"),
            "IndexDirectory": dir.join("db"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": PACS_AET,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": true,
            "RegisteredUsers": { ORTHANC_USER: ORTHANC_PASSWORD },
            "StableAge": STABLE_AGE,
            "DicomModalities": { "ct1": ["CT1", "127.0.0.1", free_port()] },
            "Plugins": ["/usr/share/orthanc/plugins/libModalityWorklists.so"],
            "Worklists": { "Enable": true, "Database": dir.join("worklists") },
            "LuaScripts": [lua],
        });
        let conf = dir.join("orthanc.json");
        std::fs::write(
            &conf,
            serde_json::to_vec_pretty(&config).expect("Orthanc's configuration"),
        )
        .expect("Orthanc's configuration file");
        let log = std::fs::File::create(dir.join("orthanc.log")).expect("Orthanc's log");
        self.child = Some(
            Command::new("Orthanc")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("Orthanc (Debian's orthanc package; `make deps` installs it)"),
        );
    }

    /// Waits until this Orthanc (not another test's on a reused port) answers a DICOM echo and
    /// its REST API names its DICOM port; `false` if it exited first. Panics after 30 s.
    async fn ready(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().is_ok_and(|exited| exited.is_some())
            {
                self.child = None;
                return false;
            }
            let port = self.dicom_port;
            let echoed = tokio::task::spawn_blocking(move || {
                Command::new("echoscu")
                    .args(["-aec", PACS_AET, "127.0.0.1", &port.to_string()])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .await
            .unwrap_or(false);
            if echoed {
                let ours = reqwest::Client::new()
                    .get(format!("{}/system", self.url()))
                    .basic_auth(ORTHANC_USER, Some(ORTHANC_PASSWORD))
                    .send()
                    .await
                    .ok();
                if let Some(r) = ours
                    && let Ok(v) = r.json::<serde_json::Value>().await
                    && v["DicomPort"].as_u64() == Some(u64::from(port))
                {
                    return true;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Orthanc did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its REST API's base.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The folder its worklist plugin serves.
    pub fn worklists(&self) -> PathBuf {
        self.dir.path().join("worklists")
    }

    /// The node's `[imaging]` settings for this Orthanc, as `CAREBRIDGE_IMAGING__*` variables
    /// (for a node run as a process).
    pub fn node_env(&self, poll_seconds: u32) -> Vec<(&'static str, String)> {
        vec![
            ("CAREBRIDGE_IMAGING__ORTHANC_URL", self.url()),
            ("CAREBRIDGE_IMAGING__USERNAME", ORTHANC_USER.into()),
            ("CAREBRIDGE_IMAGING__PASSWORD", ORTHANC_PASSWORD.into()),
            (
                "CAREBRIDGE_IMAGING__WORKLIST_DIR",
                self.worklists().display().to_string(),
            ),
            ("CAREBRIDGE_IMAGING__HINT_TOKEN", HINT_TOKEN.into()),
            ("CAREBRIDGE_IMAGING__POLL_SECONDS", poll_seconds.to_string()),
        ]
    }

    /// Orthanc's own REST API, as an operator would ask it.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url()))
            .basic_auth(ORTHANC_USER, Some(ORTHANC_PASSWORD))
            .send()
            .await
            .expect("Orthanc answers")
            .json()
            .await
            .expect("Orthanc answers JSON")
    }

    /// The last position of its change feed.
    pub async fn last_change(&self) -> i64 {
        self.get("/changes?last").await["Last"]
            .as_i64()
            .expect("a last change")
    }

    /// Asks the worklist for `accession` as modality `CT1` does; returns findscu's log of the
    /// answers.
    pub async fn find_worklist(&self, accession: &str) -> String {
        let port = self.dicom_port;
        let accession = format!("(0008,0050)={accession}");
        tokio::task::spawn_blocking(move || {
            let out = Command::new("findscu")
                .args(["-v", "-W", "-aet", "CT1", "-aec", PACS_AET, "127.0.0.1"])
                .arg(port.to_string())
                .args(["-k", &accession])
                .args([
                    "-k",
                    "(0010,0010)",
                    "-k",
                    "(0010,0020)",
                    "-k",
                    "(0010,0021)",
                    "-k",
                    "(0010,0030)",
                    "-k",
                    "(0020,000d)",
                    "-k",
                    "(0040,0100)[0].(0008,0060)",
                    "-k",
                    "(0040,0100)[0].(0040,0002)",
                    "-k",
                    "(0040,0100)[0].(0040,0007)",
                ])
                .output()
                .expect("findscu (dcmtk)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stderr).into_owned()
        })
        .await
        .expect("findscu ran")
    }

    /// Sends a DICOM file as the modality does.
    pub async fn store(&self, file: &Path) {
        let port = self.dicom_port;
        let file = file.to_owned();
        tokio::task::spawn_blocking(move || {
            let out = Command::new("storescu")
                .args(["-aet", "CT1", "-aec", PACS_AET, "127.0.0.1"])
                .arg(port.to_string())
                .arg(&file)
                .output()
                .expect("storescu (dcmtk)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
        .await
        .expect("storescu ran");
    }
}

impl Drop for Pacs {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of `tag` (e.g. `(0010,0020)`) in the first answer findscu logged.
pub fn answered(log: &str, tag: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains(tag) && l.contains('['))
        .unwrap_or_else(|| panic!("no {tag} in the worklist's answer:\n{log}"));
    let start = line.find('[').map_or(0, |i| i + 1);
    let end = line[start..].find(']').map_or(line.len(), |i| i + start);
    line[start..end].trim().to_owned()
}

/// Makes a real DICOM image (a CT slice of a gradient) with these attributes, as a modality
/// that read the worklist would, in `dir` as `name.dcm`.
pub fn dicom_file(dir: &Path, name: &str, tags: &[(&str, &str)]) -> PathBuf {
    let bmp = dir.join(format!("{name}.bmp"));
    let dcm = dir.join(format!("{name}.dcm"));
    let ok = Command::new("convert")
        .args([
            "-size",
            "64x64",
            "gradient:black-white",
            "-type",
            "TrueColor",
        ])
        .arg(format!("BMP3:{}", bmp.display()))
        .status()
        .expect("ImageMagick's convert");
    assert!(ok.success(), "ImageMagick made no image");
    let ok = Command::new("img2dcm")
        .args(["-i", "BMP"])
        .arg(&bmp)
        .arg(&dcm)
        .status()
        .expect("img2dcm (dcmtk)");
    assert!(ok.success(), "img2dcm made no DICOM file");
    let mut modify = Command::new("dcmodify");
    // Names are UTF-8, as the worklist's.
    modify.args(["-nb", "-i", "(0008,0005)=ISO_IR 192"]);
    for (tag, value) in tags {
        modify.args(["-i", &format!("{tag}={value}")]);
    }
    let ok = modify.arg(&dcm).status().expect("dcmodify (dcmtk)");
    assert!(ok.success(), "dcmodify failed");
    let _ = std::fs::remove_file(bmp);
    dcm
}
