//! A PostgreSQL database of a test's own, on the throw-away cluster that `make test` starts
//! (`scripts/with-postgres.sh`, which names it in `TEST_POSTGRES_URL`).
//!
//! Each [`ScratchDatabase`] is a new, empty database, dropped (its connections ended) when the
//! value is: tests running together never see each other's rows.

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the test cluster: a URL of a user that may create databases.
pub const CLUSTER_VARIABLE: &str = "TEST_POSTGRES_URL";

/// The test cluster's URL. Panics, saying how to get one, when it is not set: a test that
/// needs PostgreSQL and silently passed without it would prove nothing.
pub fn cluster_url() -> String {
    std::env::var(CLUSTER_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{CLUSTER_VARIABLE} is not set: run the tests through `make test`, or wrap the \
             command in scripts/with-postgres.sh, which starts a throw-away PostgreSQL cluster"
        )
    })
}

/// A fresh database on the test cluster, dropped with this value.
#[derive(Debug)]
pub struct ScratchDatabase {
    name: String,
    url: String,
    admin: String,
}

impl ScratchDatabase {
    /// Creates an empty database. Blocking (a thread of its own runs the client, so it may be
    /// called from an async test).
    pub fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin = cluster_url();
        let name = format!(
            "carebridge_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let sql = format!("CREATE DATABASE {name}");
        run(&admin, sql);
        let (base, _) = admin
            .rsplit_once('/')
            .expect("the cluster URL ends with a database name");
        let url = format!("{base}/{name}");
        Self { name, url, admin }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        run(
            &self.admin,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs `sql` on the cluster, on a thread of its own (the blocking client may not run on an
/// async thread).
fn run(url: &str, sql: String) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("the test PostgreSQL cluster does not answer: {e}"));
        client
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
    .join()
    .expect("the PostgreSQL test thread panicked");
}
