//! Node ↔ node federation: what both ends compute the same way, without I/O — the body's
//! digest (RFC 9530 `Content-Digest`), the HTTP message signature over method, path,
//! authority, digest, created time and nonce (RFC 9421, Ed25519), the signed inbox request
//! and its receipt (`request`), envelopes sealed for one peer (`envelope`), a node's public
//! identity (`identity`), what envelopes carry (`payload`), consented access across hospitals
//! (`access`) and moving a patient's record to another hospital (`transfer`).

pub mod access;
pub mod digest;
pub mod envelope;
pub mod identity;
pub mod payload;
pub mod request;
pub mod signature;
pub mod transfer;
