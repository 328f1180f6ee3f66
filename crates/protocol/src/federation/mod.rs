//! Node ↔ node federation: what both ends compute the same way, without I/O. This first part
//! is the request-level integrity and authenticity DESIGN names: the body's digest (RFC 9530
//! `Content-Digest`) and the HTTP message signature over method, path, authority, digest,
//! created time and nonce (RFC 9421, Ed25519). Envelopes are sealed for one peer (`envelope`).

pub mod digest;
pub mod envelope;
pub mod identity;
pub mod signature;
