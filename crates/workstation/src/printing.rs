//! Printing through the workstation's CUPS: a document or a report goes to `lp` on its standard
//! input, so that no copy is written anywhere but the print spool. Where no printer is chosen,
//! the file opens in the system's viewer instead ([`crate::viewer`]).

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Where CUPS is: the workstation's own (the default), or another server (`host:port`, as
/// `lp -h` takes it; a private one in the tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cups {
    /// `host:port` of the CUPS server; `None` for the workstation's.
    pub server: Option<String>,
}

/// A print job CUPS accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintJob {
    /// CUPS's id of it (`ward-printer-12`).
    pub id: String,
}

/// Why nothing was printed.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    /// CUPS's commands are not installed on this workstation.
    #[error("printing needs CUPS (`lp`), which is not installed on this workstation")]
    NoCups,
    /// CUPS refused the job (no such printer, a printer that is stopped, …).
    #[error("the printer refused the job: {0}")]
    Refused(String),
    /// Talking to `lp` failed.
    #[error("printing failed: {0}")]
    Io(#[from] std::io::Error),
}

impl Cups {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        if let Some(server) = &self.server {
            cmd.arg("-h").arg(server);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// The printers (CUPS queues) this workstation can print to.
    pub async fn printers(&self) -> Result<Vec<String>, PrintError> {
        let out = self
            .command("lpstat")
            .arg("-e")
            .output()
            .await
            .map_err(not_installed)?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            // No queue at all is an answer, not a failure.
            if why.contains("No destinations") {
                return Ok(Vec::new());
            }
            return Err(PrintError::Refused(why.trim().to_owned()));
        }
        let mut list: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        list.sort();
        Ok(list)
    }

    /// Prints `bytes` (a PDF or an image) on `printer` as `title`, the bytes going to `lp` on
    /// its standard input.
    pub async fn print(
        &self,
        printer: &str,
        title: &str,
        bytes: &[u8],
    ) -> Result<PrintJob, PrintError> {
        // A queue name is CUPS's: printable characters without space, slash or '#'.
        if printer.is_empty()
            || printer
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '#'))
        {
            return Err(PrintError::Refused(format!(
                "{printer:?} is not a printer's name"
            )));
        }
        let mut cmd = self.command("lp");
        cmd.arg("-d")
            .arg(printer)
            .arg("-t")
            .arg(title)
            .arg("--")
            .arg("-")
            .stdin(Stdio::piped());
        let mut child = cmd.spawn().map_err(not_installed)?;
        // An `lp` that refuses the job ends before it read everything: the write then fails
        // with a broken pipe, and `lp`'s own words below say why.
        let written = match child.stdin.take() {
            Some(mut stdin) => match stdin.write_all(bytes).await {
                Ok(()) => stdin.shutdown().await,
                Err(e) => Err(e),
            },
            None => Ok(()),
        };
        let out = child.wait_with_output().await?;
        if out.status.success() {
            written?;
        }
        let said = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            return Err(PrintError::Refused(
                why.trim().trim_start_matches("lp: ").to_owned(),
            ));
        }
        // "request id is ward-printer-12 (0 file(s))"
        let id = said
            .split_whitespace()
            .skip_while(|w| *w != "is")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        Ok(PrintJob { id })
    }
}

fn not_installed(e: std::io::Error) -> PrintError {
    if e.kind() == std::io::ErrorKind::NotFound {
        PrintError::NoCups
    } else {
        PrintError::Io(e)
    }
}
