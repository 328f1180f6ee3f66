//! What CareBridge's tests share, whichever crate they test: a `carebridge-node` run as a real
//! process (so it can be SIGKILLed and restarted on its address and data dir), waiting on a
//! condition with a deadline (never on time alone), free loopback ports, a log to capture, and real
//! servers of a test's own: a PACS ([`pacs`]), an SMTP server ([`smtp`]) and a PostgreSQL
//! database ([`postgres`]).
//!
//! A dev-dependency of `carebridge-core`, `carebridge-server` and the app (`tests/e2e`, the
//! live-loop bench). Helpers that only one crate's tests need (the node's HTTP and SSE client,
//! the core's signed-in engines, the app's WebDriver) stay in that crate's `tests/`.

mod log;
mod node_process;
pub mod pacs;
mod port;
pub mod postgres;
pub mod smtp;
mod wait;

pub use log::CapturedLog;
pub use node_process::{NodeProcess, StoppedNode, node_binary, node_command};
pub use port::free_port;
pub use wait::eventually;
