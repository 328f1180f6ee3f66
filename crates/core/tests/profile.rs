//! Profiles at rest: the local database holds no patient data in clear, a wrong passphrase is
//! a clear error, *forget this workstation* removes store and key, and the OS keychain path
//! keeps a random key in a real Secret Service (gnome-keyring on a private session bus).

mod support;

use std::time::Duration;

use carebridge_core::{CoreError, KeySource, Profiles, Unlock};
use carebridge_testkit::NodeProcess;
use support::{Client, Hospital};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_holds_no_patient_name_in_clear_and_refuses_a_wrong_key() {
    let h = Hospital::seeded().await;
    let node = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let root = tempfile::tempdir().unwrap();
    let reception = Client::staff(
        root.path(),
        &node.url,
        "reception",
        carebridge_server::demo::RECEPTION_PASSWORD,
    )
    .await;
    reception.converges_with_node(Duration::from_secs(20)).await;
    let names: Vec<String> = h.creds.patients.iter().map(|p| p.name.clone()).collect();
    let found = reception
        .engine
        .store()
        .search(names[0].split_whitespace().last().unwrap().to_owned(), 5)
        .await
        .unwrap();
    assert!(!found.is_empty(), "the names are there, searchable");
    let profile = reception.profile.clone();
    reception.engine.shutdown().await;

    let dir = root.path().join(&profile);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        // The WAL goes away when the last connection closes, which may be just now.
        let bytes = match std::fs::read(entry.unwrap().path()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{e}"),
        };
        files += 1;
        for name in &names {
            for part in name.split_whitespace().filter(|p| p.len() > 3) {
                assert!(
                    !bytes.windows(part.len()).any(|w| w == part.as_bytes()),
                    "{part:?} in clear in the profile"
                );
            }
        }
        let token = &reception.signed_in.session.token;
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token in clear"
        );
    }
    assert!(files >= 2, "the database and its salt at least");

    let profiles = Profiles::at(root.path());
    let wrong = Unlock {
        use_keychain: false,
        passphrase: Some("not the passphrase".into()),
    };
    assert!(matches!(
        profiles.open(&profile, &wrong).await,
        Err(CoreError::WrongKey)
    ));
    let none = Unlock::default();
    let err = profiles.open(&profile, &none).await.unwrap_err();
    assert!(err.to_string().contains("CAREBRIDGE_PASSPHRASE"), "{err}");
    let open = profiles.open(&profile, &support::unlock()).await.unwrap();
    assert_eq!(open.key_source, KeySource::Passphrase);
    assert!(open.store.signed_in().await.unwrap().is_some());
    drop(open);

    assert_eq!(profiles.list(), std::slice::from_ref(&profile));
    profiles.forget(&profile).await.unwrap();
    assert!(!dir.exists());
    assert!(profiles.list().is_empty());
}

/// Runs [`keychain_child`] inside `dbus-run-session` with gnome-keyring serving the Secret
/// Service, so the real keychain path is exercised without touching the user's own keyring.
#[test]
fn the_os_keychain_keeps_a_random_key_and_forgetting_deletes_it() {
    let scratch = tempfile::tempdir().unwrap();
    for tool in ["dbus-run-session", "gnome-keyring-daemon"] {
        assert!(
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .status()
                .unwrap()
                .success(),
            "{tool} is missing: `make deps` installs it"
        );
    }
    let script = r#"printf 'keychain-test' | gnome-keyring-daemon --unlock --components=secrets >/dev/null &&
        gnome-keyring-daemon --start --components=secrets >/dev/null &&
        exec "$0" --exact keychain_child --ignored --nocapture"#;
    let out = std::process::Command::new("dbus-run-session")
        .args(["--", "sh", "-c", script])
        .arg(std::env::current_exe().unwrap())
        .env("HOME", scratch.path())
        .env("XDG_DATA_HOME", scratch.path().join("data"))
        .env("XDG_RUNTIME_DIR", scratch.path())
        .env(
            "CAREBRIDGE_KEYCHAIN_TEST_ROOT",
            scratch.path().join("profiles"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the keychain child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "run by the_os_keychain_keeps_a_random_key_and_forgetting_deletes_it on its own session bus"]
async fn keychain_child() {
    let root = std::env::var("CAREBRIDGE_KEYCHAIN_TEST_ROOT").expect("run by the parent test");
    let profiles = Profiles::at(root);
    let unlock = Unlock {
        use_keychain: true,
        passphrase: None,
    };
    let name = "node.example--doctor";
    let open = profiles.open(name, &unlock).await.unwrap();
    assert_eq!(open.key_source, KeySource::Keychain);
    open.store
        .set_setting("node_url", Some("https://node.example".into()))
        .await
        .unwrap();
    drop(open);

    let entry = keyring::Entry::new("carebridge", name).unwrap();
    assert_eq!(
        entry.get_secret().unwrap().len(),
        32,
        "a 256-bit key in the keychain"
    );
    // Reopened with the key from the keychain: the data is there.
    let open = profiles.open(name, &unlock).await.unwrap();
    assert_eq!(open.key_source, KeySource::Keychain);
    assert_eq!(
        open.store.remembered_node().await.unwrap().as_deref(),
        Some("https://node.example")
    );
    drop(open);
    // A profile made with the keychain keeps using it, whatever passphrase is offered.
    let with_passphrase = Unlock {
        use_keychain: false,
        passphrase: Some("guess".into()),
    };
    let open = profiles.open(name, &with_passphrase).await.unwrap();
    assert_eq!(open.key_source, KeySource::Keychain);
    drop(open);

    profiles.forget(name).await.unwrap();
    assert!(
        matches!(entry.get_secret(), Err(keyring::Error::NoEntry)),
        "the key is gone"
    );
    assert!(profiles.list().is_empty());
}
