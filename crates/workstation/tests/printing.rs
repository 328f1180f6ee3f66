//! Printing through a real CUPS: a private `cupsd` of the test's own on a loopback port (its
//! own configuration, spool and logs; nothing of the system's), with a raw queue whose device is
//! a socket this test listens on, so the bytes the printer would get are compared with what was
//! printed.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use carebridge_testkit::{eventually, free_port};
use carebridge_workstation::{Cups, PrintError};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

/// A CUPS server of the test's own, stopped when dropped.
struct PrivateCups {
    child: Child,
    _dir: tempfile::TempDir,
    server: String,
}

impl PrivateCups {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path();
        // The socket backend runs as `lp`: it must be able to pass through the folder to the
        // spooled file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(b, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        for d in ["conf", "spool/tmp", "cache", "state", "log"] {
            std::fs::create_dir_all(b.join(d)).unwrap();
        }
        let port = free_port();
        std::fs::write(
            b.join("conf/cupsd.conf"),
            format!(
                "Listen 127.0.0.1:{port}\nLogLevel warn\nBrowsing Off\nBrowseLocalProtocols none\n\
                 DefaultAuthType None\nWebInterface No\nErrorPolicy abort-job\nPreserveJobFiles No\n\
                 <Location />\n  Order allow,deny\n  Allow 127.0.0.1\n</Location>\n\
                 <Location /admin>\n  Order allow,deny\n  Allow 127.0.0.1\n</Location>\n\
                 <Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n"
            ),
        )
        .unwrap();
        std::fs::write(
            b.join("conf/cups-files.conf"),
            format!(
                "ServerRoot {root}/conf\nServerBin /usr/lib/cups\nRequestRoot {root}/spool\n\
                 TempDir {root}/spool/tmp\nCacheDir {root}/cache\nStateDir {root}/state\n\
                 ErrorLog {root}/log/error_log\nAccessLog {root}/log/access_log\n\
                 PageLog {root}/log/page_log\n",
                root = b.display()
            ),
        )
        .unwrap();
        let child = Command::new("cupsd")
            .arg("-f")
            .arg("-c")
            .arg(b.join("conf/cupsd.conf"))
            .arg("-s")
            .arg(b.join("conf/cups-files.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cupsd (Debian's cups-daemon; `make deps` installs it)");
        let server = format!("127.0.0.1:{port}");
        let s = server.clone();
        eventually("the private CUPS answers", Duration::from_secs(20), || {
            let s = s.clone();
            async move {
                tokio::process::Command::new("lpstat")
                    .args(["-h", &s, "-r"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .is_ok_and(|st| st.success())
            }
        })
        .await;
        Self {
            child,
            _dir: dir,
            server,
        }
    }

    /// Adds a raw queue whose device is the socket at `port`. A scheduler that has just
    /// started may still turn a connection away: asked again until it takes the queue.
    async fn add_queue(&self, name: &str, port: u16) {
        let (server, name) = (self.server.clone(), name.to_owned());
        eventually(
            "the private CUPS takes the queue",
            Duration::from_secs(20),
            || {
                let (server, name) = (server.clone(), name.clone());
                async move {
                    let out = tokio::process::Command::new("lpadmin")
                        .args(["-h", &server, "-p", &name, "-E", "-v"])
                        .arg(format!("socket://127.0.0.1:{port}"))
                        .output()
                        .await
                        .unwrap();
                    if !out.status.success() {
                        eprintln!("lpadmin: {}", String::from_utf8_lossy(&out.stderr));
                    }
                    out.status.success()
                }
            },
        )
        .await;
    }
}

impl Drop for PrivateCups {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A printer's socket: what one job sent, once the backend closed its side.
async fn printer_socket() -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let job = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).await.unwrap();
        // Dropping the connection tells the backend the printer has it all.
        got
    });
    (port, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_goes_to_the_printer_byte_for_byte_and_a_wrong_printer_is_refused() {
    let cups = PrivateCups::start().await;
    let (port, job) = printer_socket().await;
    cups.add_queue("ward-printer", port).await;
    let client = Cups {
        server: Some(cups.server.clone()),
    };
    assert_eq!(client.printers().await.unwrap(), vec!["ward-printer"]);

    let printed = client
        .print("ward-printer", "Discharge letter", PDF)
        .await
        .unwrap();
    assert!(
        printed.id.starts_with("ward-printer-"),
        "a job id: {printed:?}"
    );
    let got = tokio::time::timeout(Duration::from_secs(30), job)
        .await
        .expect("the printer got the job within 30 s")
        .unwrap();
    assert_eq!(got, PDF, "the printer got the document as it is");

    // No such printer: CUPS's refusal, in words.
    match client.print("no-such-printer", "x", PDF).await {
        Err(PrintError::Refused(why)) => assert!(why.contains("does not exist"), "{why}"),
        other => panic!("printed to a printer that does not exist: {other:?}"),
    }
    // A name that is no queue's is refused before CUPS is asked.
    match client.print("ward printer/../x", "x", PDF).await {
        Err(PrintError::Refused(why)) => assert!(why.contains("not a printer's name"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workstation_without_printers_lists_none() {
    let cups = PrivateCups::start().await;
    let client = Cups {
        server: Some(cups.server.clone()),
    };
    assert_eq!(client.printers().await.unwrap(), Vec::<String>::new());
}
