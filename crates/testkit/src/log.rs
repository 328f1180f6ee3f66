//! What a test's tracing subscriber wrote, kept to be read back: for the tests that check what
//! is logged (and what never is, such as a patient's name).

use std::sync::{Arc, Mutex, PoisonError};

/// A writer that keeps everything written to it; its clones share what they keep, so a
/// subscriber can be given `move || log.clone()` and the test reads the original.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
