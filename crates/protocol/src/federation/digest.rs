//! RFC 9530 `Content-Digest`: a structured-field dictionary of algorithm → byte sequence, e.g.
//! `sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256, Sha512};

/// Why a `Content-Digest` does not vouch for a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header is not a dictionary of byte sequences.
    #[error("Content-Digest is malformed: {0}")]
    Malformed(String),
    /// No algorithm this side checks (sha-256, sha-512) is in it.
    #[error("Content-Digest has no sha-256 or sha-512 value")]
    NoKnownAlgorithm,
    /// A value does not match the body: it changed after it was digested.
    #[error("the body does not match its {0} digest")]
    Mismatch(&'static str),
}

/// The `Content-Digest` header value for `body`, with SHA-256.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// Checks `header` against `body`: every sha-256 and sha-512 value in it must match, and at
/// least one must be there. Other algorithms are ignored, as RFC 9530 allows.
pub fn verify_content_digest(header: &str, body: &[u8]) -> Result<(), DigestError> {
    let mut checked = false;
    for member in header.split(',') {
        let member = member.trim();
        let (alg, value) = member
            .split_once('=')
            .ok_or_else(|| DigestError::Malformed(member.to_owned()))?;
        let bytes = value
            .strip_prefix(':')
            .and_then(|v| v.strip_suffix(':'))
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or_else(|| DigestError::Malformed(member.to_owned()))?;
        let (name, expected): (&'static str, Vec<u8>) = match alg.trim() {
            "sha-256" => ("sha-256", Sha256::digest(body).to_vec()),
            "sha-512" => ("sha-512", Sha512::digest(body).to_vec()),
            _ => continue,
        };
        if bytes != expected {
            return Err(DigestError::Mismatch(name));
        }
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(DigestError::NoKnownAlgorithm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9530's own sample body and values (section 2, and appendix B).
    const BODY: &[u8] = br#"{"hello": "world"}"#;
    const SHA256: &str = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
    const SHA512: &str = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";

    #[test]
    fn reproduces_the_rfcs_sample_digests() {
        assert_eq!(content_digest(BODY), SHA256);
        assert_eq!(verify_content_digest(SHA512, BODY), Ok(()));
        assert_eq!(
            verify_content_digest(&format!("{SHA512}, {SHA256}"), BODY),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_or_a_bad_header_is_refused() {
        assert_eq!(
            verify_content_digest(SHA256, br#"{"hello": "World"}"#),
            Err(DigestError::Mismatch("sha-256"))
        );
        assert_eq!(
            verify_content_digest("md5=:AAAA:", BODY),
            Err(DigestError::NoKnownAlgorithm)
        );
        assert!(matches!(
            verify_content_digest("sha-256=X48E9q", BODY),
            Err(DigestError::Malformed(_))
        ));
        // One good value does not excuse a bad one.
        let bad512 = "sha-512=:AAAA:";
        assert!(verify_content_digest(&format!("{SHA256}, {bad512}"), BODY).is_err());
    }
}
