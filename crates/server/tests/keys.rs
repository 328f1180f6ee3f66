//! `carebridge-node keys`: a node's public identity, the document a peer adds. It names the
//! node, carries the keys `init` made (the signing key is the one the node signs with), is
//! the same each time, and holds no secret.

mod support;

use carebridge_protocol::federation::identity::NodeIdentity;
use carebridge_server::store::open_connection;
use ed25519_dalek::Signer as _;

#[test]
fn keys_prints_the_nodes_public_identity_and_nothing_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = support::init_dir(dir.path());
    let run = || {
        carebridge_testkit::node_command()
            .args(["keys", "--data-dir"])
            .arg(dir.path())
            .args(["--url", "https://node.st-marys.example"])
            .env_remove("CAREBRIDGE_PASSPHRASE")
            .output()
            .expect("carebridge-node keys")
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let id: NodeIdentity = serde_json::from_str(&text).expect("an identity document");
    assert_eq!(id.name, "st-marys.example");
    assert_eq!(id.kind, "hospital");
    assert_eq!(id.url, "https://node.st-marys.example");
    let fingerprint = id.fingerprint().expect("a valid signing key");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&fingerprint),
        "the fingerprint is printed for people to compare"
    );
    id.agreement_key().expect("a valid agreement key");
    assert_eq!(run().stdout, text.as_bytes(), "the same document each time");

    // The signing key in the document is the node's own: what it signs verifies with it.
    let key = carebridge_server::node::load_key(&cfg).expect("db key");
    let conn = open_connection(&cfg.db_path(), &key, true).expect("db");
    let (secret, public): (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT secret, public FROM node_keys WHERE purpose = 'ed25519'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the node's signing key");
    let signing =
        ed25519_dalek::SigningKey::from_bytes(&secret.clone().try_into().expect("32 bytes"));
    assert_eq!(
        signing.verifying_key().as_bytes().as_slice(),
        public.as_slice()
    );
    let sig = signing.sign(b"receipt");
    id.signing_key()
        .expect("key")
        .verify_strict(b"receipt", &sig)
        .expect("the document's key verifies the node's signature");
    // Nothing secret is printed.
    let secret_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &secret);
    assert!(!text.contains(&secret_b64));
}

#[test]
fn keys_without_a_url_is_refused_with_usage() {
    let dir = tempfile::tempdir().expect("tempdir");
    support::init_dir(dir.path());
    let out = carebridge_testkit::node_command()
        .args(["keys", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("carebridge-node keys");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--url"));
}
