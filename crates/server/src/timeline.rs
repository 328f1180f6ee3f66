//! The timeline: marks that a booking's way through the processes leaves (the node's commit and
//! stream, the client's store, outbox and apply, the app's `changed`), so that the live-loop
//! benchmark can time each hop on the machine's one clock. A mark is a `trace` event with a
//! timeline target (the node's is [`crate::TIMELINE`]) and a `mark` field; nothing records
//! them unless [`layer`] was installed, so they cost nothing otherwise.

use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// With `CAREBRIDGE_TIMELINE=FILE` in the environment: a layer appending the events of
/// `targets` (and no others) to FILE, one JSON object per line with its time to the
/// microsecond, whatever the log's own filter says. Several processes may share the file:
/// each line is one append. `None` without the variable, or if FILE cannot be opened (said on
/// stderr: the process runs on without its marks).
pub fn layer<S>(targets: &[&'static str]) -> Option<impl Layer<S>>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let path = std::env::var_os("CAREBRIDGE_TIMELINE")?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .inspect_err(|e| eprintln!("CAREBRIDGE_TIMELINE: {}: {e}", path.to_string_lossy()))
        .ok()?;
    let only = targets.iter().fold(Targets::new(), |t, target| {
        t.with_target(*target, tracing::Level::TRACE)
    });
    Some(
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(only),
    )
}
