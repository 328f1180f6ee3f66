//! Hospital nodes served in-process for the tests between hospitals (consented access,
//! transfer): each seeded with the demo data, optionally sending mail, peered as `peer add`
//! peers them.

use std::sync::Arc;

use carebridge_server::clock::Clock;
use carebridge_server::config::{MailConfig, MailSecurity};
use carebridge_server::demo::{self, DemoCredentials, DemoSize};
use carebridge_server::federation::peer::{AddPeer, SourceRule};
use carebridge_server::node::Node;

use reqwest::Method;
use serde_json::json;

use super::Client;

/// A hospital node served in-process.
pub struct Side {
    pub node: Arc<Node>,
    pub url: String,
    pub creds: DemoCredentials,
    pub dir: tempfile::TempDir,
    pub cfg: carebridge_server::NodeConfig,
    pub served: tokio::task::JoinHandle<()>,
}

impl Side {
    pub async fn start(
        name: &str,
        organisation: &str,
        clock: Arc<dyn Clock>,
        smtp: Option<u16>,
        listener: Option<tokio::net::TcpListener>,
    ) -> Self {
        let l = match listener {
            Some(l) => l,
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let url = format!("http://{}", l.local_addr().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = super::init_dir_named(dir.path(), name);
        cfg.organisation = Some(organisation.into());
        cfg.delivery_max_backoff_seconds = 1;
        cfg.mail = smtp.map(|port| MailConfig {
            host: "127.0.0.1".into(),
            port: Some(port),
            security: MailSecurity::None,
            username: None,
            password: None,
            from: format!("{organisation} <no-reply@{name}>"),
            timeout_seconds: 10,
        });
        let node = Node::open(cfg.clone(), clock).unwrap();
        let size = DemoSize {
            doctors: 2,
            days: 1,
            patients: 3,
            bench: false,
            appointments: None,
        };
        let creds = demo::seed(&node, &size, &url).await.unwrap();
        let served = serve(node.clone(), l);
        Self {
            node,
            url,
            creds,
            dir,
            cfg,
            served,
        }
    }

    pub async fn doctor(&self, i: usize) -> Client {
        let d = &self.creds.doctors[i];
        Client::sign_in(&self.url, &d.username, &d.password).await
    }

    pub async fn reception(&self) -> Client {
        let r = &self.creds.reception;
        Client::sign_in(&self.url, &r.username, &r.password).await
    }

    pub async fn kiosk(&self) -> Client {
        let k = &self.creds.kiosk;
        Client::kiosk_sign_in(&self.url, &k.device_id.to_string(), &k.secret).await
    }

    /// Doctor 0 signs a report titled `title` for patient `p`, and leaves a draft beside it
    /// (drafts never leave the hospital).
    pub async fn signed_report_and_a_draft(&self, p: carebridge_protocol::PatientId, title: &str) {
        let doctor = self.doctor(0).await;
        let r = doctor
            .post(
                "/api/v1/reports",
                json!({"patient_id": p, "content": {"title": title, "findings": "Meniscal tear.", "conclusion": "Refer.", "codes": ["S83.2"]}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let f = doctor
            .call(
                Method::POST,
                &format!(
                    "/api/v1/reports/{}/finalise",
                    r.body["id"].as_str().unwrap()
                ),
                None,
                &[("if-match", &format!("\"{}\"", r.body["version"]))],
            )
            .await;
        assert_eq!(f.status, 200, "{}", f.body);
        let d = doctor
            .post(
                "/api/v1/reports",
                json!({"patient_id": p, "content": {"title": "Unfinished draft", "findings": "…", "conclusion": "…", "codes": []}}),
            )
            .await;
        assert_eq!(d.status, 201, "{}", d.body);
    }

    pub fn doctor_id(&self, i: usize) -> String {
        self.creds.doctors[i].id.to_string()
    }

    pub fn db(&self) -> rusqlite::Connection {
        carebridge_server::store::open_connection(
            &self.node.config.db_path(),
            &carebridge_server::node::load_key(&self.node.config).unwrap(),
            true,
        )
        .unwrap()
    }

    pub fn count(&self, sql: &str, p: &[&dyn rusqlite::ToSql]) -> i64 {
        self.db().query_row(sql, p, |r| r.get(0)).unwrap()
    }

    pub fn verify_audit(&self) {
        let reader = carebridge_server::store::Reader::open(
            &self.node.config.db_path(),
            &carebridge_server::node::load_key(&self.node.config).unwrap(),
        )
        .unwrap();
        carebridge_server::store::audit::verify(&reader.tx())
            .unwrap()
            .unwrap();
    }

    /// The audit entries of `action` on `entity`, as (actor, outcome, detail).
    pub fn audited(&self, action: &str, entity: &str) -> Vec<(String, String, String)> {
        let c = self.db();
        let mut st = c
            .prepare(
                "SELECT actor, outcome, detail FROM audit WHERE action = ?1 AND entity = ?2 ORDER BY seq",
            )
            .unwrap();
        st.query_map([action, entity], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    pub async fn stop(self) -> (tempfile::TempDir, String, carebridge_server::NodeConfig) {
        self.node.shutdown.cancel();
        let _ = self.served.await;
        (self.dir, self.url, self.cfg)
    }
}

/// A hospital node stopped, its data kept, to be started again on the same address.
pub struct Down {
    dir: tempfile::TempDir,
    url: String,
    cfg: carebridge_server::NodeConfig,
    creds: DemoCredentials,
}

impl Side {
    /// Stops serving (the delivery worker and every job stop with it); the data stays. Returns
    /// once every task that held the node has ended (the node and its data directory's lock
    /// are released then).
    pub async fn down(self) -> Down {
        let creds = self.creds.clone();
        let node = Arc::downgrade(&self.node);
        let (dir, url, cfg) = self.stop().await;
        carebridge_testkit::eventually(
            "the stopped node's tasks end",
            std::time::Duration::from_secs(30),
            || async { node.upgrade().is_none() },
        )
        .await;
        Down {
            dir,
            url,
            cfg,
            creds,
        }
    }
}

impl Down {
    /// Opens the node again from its data and serves it on its old address.
    pub async fn up(self) -> Side {
        let addr = self.url.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        let node = Node::open(
            self.cfg.clone(),
            Arc::new(carebridge_server::clock::SystemClock),
        )
        .unwrap();
        let served = serve(node.clone(), listener);
        Side {
            node,
            url: self.url,
            creds: self.creds,
            dir: self.dir,
            cfg: self.cfg,
            served,
        }
    }
}

pub fn serve(node: Arc<Node>, l: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        carebridge_server::serve::serve(node, l).await.unwrap();
    })
}

pub async fn identity(side: &Side) -> carebridge_protocol::federation::identity::NodeIdentity {
    let cfg = side.node.config.clone();
    let url = side.url.clone();
    side.node
        .store
        .read(move |c| carebridge_server::identity::identity(c, &cfg, &url))
        .await
        .unwrap()
}

/// Peers two nodes both ways (hospital ↔ hospital: the access types by default); the API key.
pub async fn peer(a: &Side, b: &Side) -> String {
    let (key, _) = carebridge_server::federation::peering::add(
        &a.node,
        AddPeer {
            identity: identity(b).await,
            allowed_sources: vec![SourceRule::parse("127.0.0.1").unwrap()],
            allowed_types: Vec::new(),
            their_api_key: None,
        },
    )
    .await
    .unwrap();
    carebridge_server::federation::peering::add(
        &b.node,
        AddPeer {
            identity: identity(a).await,
            allowed_sources: vec![SourceRule::parse("127.0.0.1").unwrap()],
            allowed_types: Vec::new(),
            their_api_key: Some(key.clone()),
        },
    )
    .await
    .unwrap();
    key
}
