//! RFC 9421 HTTP message signatures with Ed25519, for the requests nodes send each other:
//! the signature base over the covered components and `@signature-params`, the
//! `Signature-Input` and `Signature` header values, and signing and verifying.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// Why a message signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is not in the form this side writes and reads.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A covered component is missing from the message, or cannot be signed as it is.
    #[error("covered component {0} is missing or not signable")]
    Component(String),
    /// The signature does not verify with the signer's key.
    #[error("the signature does not verify")]
    BadSignature,
}

/// What a signature covers and says about itself (`@signature-params`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    /// Covered components, in order: derived ones (`@method`, `@path`, `@authority`) and
    /// lower-case header names (`content-digest`).
    pub components: Vec<String>,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// Which key: the signing node's key id.
    pub keyid: String,
    /// A single-use value, so that a replayed request is recognised.
    pub nonce: Option<String>,
    /// The algorithm, when stated (`ed25519`).
    pub alg: Option<String>,
}

impl SignatureParams {
    /// The structured-field form: `("@method" "@path");created=…;keyid="…";nonce="…";alg="…"`.
    pub fn serialize(&self) -> String {
        let items: Vec<String> = self.components.iter().map(|c| format!("\"{c}\"")).collect();
        let mut s = format!(
            "({});created={};keyid=\"{}\"",
            items.join(" "),
            self.created,
            self.keyid
        );
        if let Some(n) = &self.nonce {
            s.push_str(&format!(";nonce=\"{n}\""));
        }
        if let Some(a) = &self.alg {
            s.push_str(&format!(";alg=\"{a}\""));
        }
        s
    }

    /// Parses the form [`Self::serialize`] writes (string and integer parameters only).
    pub fn parse(s: &str) -> Result<Self, SignatureError> {
        let bad = || SignatureError::Malformed("Signature-Input");
        let rest = s.trim().strip_prefix('(').ok_or_else(bad)?;
        let (list, params) = rest.split_once(')').ok_or_else(bad)?;
        let components = list
            .split_whitespace()
            .map(|c| unquote(c).map(str::to_owned).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Self {
            components,
            created: 0,
            keyid: String::new(),
            nonce: None,
            alg: None,
        };
        let mut created = None;
        for p in params.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = p.split_once('=').ok_or_else(bad)?;
            match k {
                "created" => created = Some(v.parse().map_err(|_| bad())?),
                "keyid" => out.keyid = unquote(v).ok_or_else(bad)?.to_owned(),
                "nonce" => out.nonce = Some(unquote(v).ok_or_else(bad)?.to_owned()),
                "alg" => out.alg = Some(unquote(v).ok_or_else(bad)?.to_owned()),
                _ => {}
            }
        }
        out.created = created.ok_or_else(bad)?;
        if out.keyid.is_empty() {
            return Err(bad());
        }
        Ok(out)
    }
}

fn unquote(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains(['"', '\\'])).then_some(inner)
}

/// The signature base (RFC 9421 §2.5): one line per covered component, in the order the
/// parameters list them, then `@signature-params`. `value_of` gives each component's value
/// as the message has it (`None`: the message lacks it). `params` is the serialized
/// parameters exactly as sent in `Signature-Input`.
pub fn signature_base(
    params: &SignatureParams,
    serialized_params: &str,
    value_of: impl Fn(&str) -> Option<String>,
) -> Result<String, SignatureError> {
    let mut base = String::new();
    for c in &params.components {
        let v = value_of(c).ok_or_else(|| SignatureError::Component(c.clone()))?;
        // A line break would let one component pass for another.
        if v.contains(['\n', '\r']) {
            return Err(SignatureError::Component(c.clone()));
        }
        base.push_str(&format!("\"{c}\": {}\n", v.trim()));
    }
    base.push_str(&format!("\"@signature-params\": {serialized_params}"));
    Ok(base)
}

/// Signs a signature base; the `Signature` header's byte sequence, base64.
pub fn sign(base: &str, key: &SigningKey) -> String {
    STANDARD.encode(key.sign(base.as_bytes()).to_bytes())
}

/// Verifies a base64 signature over `base` with `key`.
pub fn verify(base: &str, signature_b64: &str, key: &VerifyingKey) -> Result<(), SignatureError> {
    let bytes = STANDARD
        .decode(signature_b64)
        .map_err(|_| SignatureError::Malformed("Signature"))?;
    let sig = ed25519_dalek::Signature::from_slice(&bytes)
        .map_err(|_| SignatureError::Malformed("Signature"))?;
    key.verify(base.as_bytes(), &sig)
        .map_err(|_| SignatureError::BadSignature)
}

/// `Signature-Input` header value for one signature labelled `label`.
pub fn signature_input_header(label: &str, serialized_params: &str) -> String {
    format!("{label}={serialized_params}")
}

/// `Signature` header value for one signature labelled `label`.
pub fn signature_header(label: &str, signature_b64: &str) -> String {
    format!("{label}=:{signature_b64}:")
}

/// Splits a one-member `Signature-Input` into its label and serialized parameters.
pub fn parse_signature_input(header: &str) -> Result<(&str, &str), SignatureError> {
    header
        .trim()
        .split_once('=')
        .filter(|(label, _)| !label.is_empty())
        .ok_or(SignatureError::Malformed("Signature-Input"))
}

/// The base64 signature labelled `label` in a `Signature` header.
pub fn parse_signature<'a>(header: &'a str, label: &str) -> Result<&'a str, SignatureError> {
    header
        .split(',')
        .filter_map(|m| m.trim().split_once('='))
        .find(|(l, _)| *l == label)
        .and_then(|(_, v)| v.strip_prefix(':')?.strip_suffix(':'))
        .ok_or(SignatureError::Malformed("Signature"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;

    /// RFC 9421 appendix B.1.4: the example Ed25519 key `test-key-ed25519`.
    const TEST_KEY_ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----";

    /// RFC 9421 appendix B.2.6, "Signing a Request Using ed25519": the example request's
    /// covered components.
    fn example_request(component: &str) -> Option<String> {
        Some(
            match component {
                "date" => "Tue, 20 Apr 2021 02:07:55 GMT",
                "@method" => "POST",
                "@path" => "/foo",
                "@authority" => "example.com",
                "content-type" => "application/json",
                "content-length" => "18",
                _ => return None,
            }
            .to_owned(),
        )
    }

    #[test]
    fn reproduces_rfc_9421_b_2_6_byte_for_byte() {
        let key = SigningKey::from_pkcs8_pem(TEST_KEY_ED25519).expect("the RFC's key");
        let input = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
        let (label, serialized) = parse_signature_input(input).expect("input");
        assert_eq!(label, "sig-b26");
        let params = SignatureParams::parse(serialized).expect("params");
        assert_eq!(params.serialize(), serialized);
        let base = signature_base(&params, serialized, example_request).expect("base");
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n\"content-type\": application/json\n\"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
        );
        let signature = sign(&base, &key);
        assert_eq!(
            signature,
            "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
        );
        assert_eq!(
            signature_header(label, &signature),
            "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
        );
        assert_eq!(verify(&base, &signature, &key.verifying_key()), Ok(()));
    }

    #[test]
    fn a_changed_request_or_another_key_does_not_verify() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let params = SignatureParams {
            components: vec![
                "@method".into(),
                "@path".into(),
                "@authority".into(),
                "content-digest".into(),
            ],
            created: 1_800_000_000,
            keyid: "st-marys.example".into(),
            nonce: Some("n-1".into()),
            alg: Some("ed25519".into()),
        };
        let serialized = params.serialize();
        assert_eq!(SignatureParams::parse(&serialized).as_ref(), Ok(&params));
        let value = |path: &'static str| {
            move |c: &str| {
                Some(
                    match c {
                        "@method" => "POST",
                        "@path" => path,
                        "@authority" => "insurer.example",
                        "content-digest" => "sha-256=:AAAA:",
                        _ => return None,
                    }
                    .to_owned(),
                )
            }
        };
        let base = signature_base(&params, &serialized, value("/federation/v1/inbox")).unwrap();
        let sig = sign(&base, &key);
        assert_eq!(verify(&base, &sig, &key.verifying_key()), Ok(()));
        let other = signature_base(&params, &serialized, value("/federation/v1/other")).unwrap();
        assert_eq!(
            verify(&other, &sig, &key.verifying_key()),
            Err(SignatureError::BadSignature)
        );
        let stranger = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(
            verify(&base, &sig, &stranger),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            signature_base(&params, &serialized, |_| None),
            Err(SignatureError::Component("@method".into()))
        );
        assert_eq!(
            signature_base(&params, &serialized, |_| Some("a\nb".into())),
            Err(SignatureError::Component("@method".into()))
        );
        assert_eq!(parse_signature("sig1=:abc:, sig2=:def:", "sig2"), Ok("def"));
        assert!(SignatureParams::parse("(\"@method\");keyid=\"k\"").is_err());
    }
}
