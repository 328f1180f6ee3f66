//! How the program was started: staff or kiosk mode, and whether it hosts the demo node.
//! Staff and kiosk are one program in two processes, each with its own profile (DESIGN).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Which window the process opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The staff window (`main`), for a signed-in staff user.
    Staff,
    /// The kiosk window (`kiosk`), signed in as a registered kiosk device.
    Kiosk {
        /// A normal window instead of fullscreen (the demo shows both side by side).
        windowed: bool,
    },
}

impl Mode {
    /// The label of the window the mode opens; capabilities are granted by it.
    pub fn window(self) -> &'static str {
        match self {
            Self::Staff => "main",
            Self::Kiosk { .. } => "kiosk",
        }
    }
}

/// Which half of the screen a window takes (a demo with two staff windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// The left half.
    Left,
    /// The right half.
    Right,
}

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Staff or kiosk.
    pub mode: Mode,
    /// Host a fresh demo node in this (empty or absent) directory, in this process.
    pub demo_dir: Option<PathBuf>,
    /// Where the hosted demo node listens.
    pub listen: SocketAddr,
    /// A kiosk signs in with the device in this demo credentials file
    /// (`demo-credentials.json`), once it exists.
    pub kiosk_credentials: Option<PathBuf>,
    /// The staff app signs in with the `url`, `username` and `password` in this file (a
    /// demo's), instead of waiting at its sign-in form.
    pub staff_credentials: Option<PathBuf>,
    /// Open the window on this half of the screen.
    pub half: Option<Half>,
}

/// What `--help` prints.
pub const USAGE: &str = "usage: carebridge-app [--kiosk [--windowed] [--kiosk-credentials FILE]] \
[--demo DIR [--listen ADDR]] [--staff-credentials FILE] [--half left|right]

  (no option)               the staff app
  --kiosk                   the patient kiosk (fullscreen, kiosk commands only)
  --windowed                the kiosk in a normal window
  --kiosk-credentials FILE  sign the kiosk in with the device in a demo's credentials file
  --demo DIR                host a fresh demo node (data in DIR) inside the staff app
  --listen ADDR             where that node listens (default 127.0.0.1:8080)
  --staff-credentials FILE  sign the staff app in with the url, username and password in FILE
  --half left|right         open the window on that half of the screen";

impl Launch {
    /// Parses the arguments after the program's name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut launch = Self {
            mode: Mode::Staff,
            demo_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            kiosk_credentials: None,
            staff_credentials: None,
            half: None,
        };
        let mut kiosk = false;
        let mut windowed = false;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
            };
            match arg.as_str() {
                "--kiosk" => kiosk = true,
                "--windowed" => windowed = true,
                "--kiosk-credentials" => {
                    launch.kiosk_credentials = Some(value("--kiosk-credentials")?.into())
                }
                "--staff-credentials" => {
                    launch.staff_credentials = Some(value("--staff-credentials")?.into())
                }
                "--half" => {
                    launch.half = Some(match value("--half")?.as_str() {
                        "left" => Half::Left,
                        "right" => Half::Right,
                        other => return Err(format!("--half: {other:?} is not left or right")),
                    })
                }
                "--demo" => launch.demo_dir = Some(value("--demo")?.into()),
                "--listen" => {
                    let v = value("--listen")?;
                    launch.listen = v.parse().map_err(|_| {
                        format!("--listen: {v:?} is not an address like 127.0.0.1:8080")
                    })?;
                }
                "--help" | "-h" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
            }
        }
        if kiosk {
            if launch.demo_dir.is_some() {
                return Err("a kiosk does not host the node: start --demo in the staff app".into());
            }
            if launch.staff_credentials.is_some() {
                return Err("--staff-credentials is for the staff app, not --kiosk".into());
            }
            launch.mode = Mode::Kiosk { windowed };
        } else if windowed || launch.kiosk_credentials.is_some() {
            return Err("--windowed and --kiosk-credentials are for --kiosk".into());
        }
        Ok(launch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Launch, String> {
        Launch::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn no_arguments_is_the_staff_app() {
        let l = parse(&[]).unwrap();
        assert_eq!(l.mode, Mode::Staff);
        assert_eq!(l.mode.window(), "main");
        assert_eq!(l.demo_dir, None);
    }

    #[test]
    fn the_kiosk_opens_the_kiosk_window() {
        let l = parse(&["--kiosk", "--windowed", "--kiosk-credentials", "/x.json"]).unwrap();
        assert_eq!(l.mode, Mode::Kiosk { windowed: true });
        assert_eq!(l.mode.window(), "kiosk");
        assert_eq!(l.kiosk_credentials, Some(PathBuf::from("/x.json")));
    }

    #[test]
    fn bad_combinations_are_refused_with_a_reason() {
        assert!(
            parse(&["--kiosk", "--demo", "/tmp/d"])
                .unwrap_err()
                .contains("does not host")
        );
        assert!(parse(&["--windowed"]).unwrap_err().contains("for --kiosk"));
        assert_eq!(parse(&["--half", "right"]).unwrap().half, Some(Half::Right));
        assert!(
            parse(&["--half", "top"])
                .unwrap_err()
                .contains("left or right")
        );
        let staff = parse(&["--staff-credentials", "/s.json"]).unwrap();
        assert_eq!(staff.staff_credentials, Some(PathBuf::from("/s.json")));
        assert!(
            parse(&["--kiosk", "--staff-credentials", "/s.json"])
                .unwrap_err()
                .contains("for the staff app")
        );
        assert!(
            parse(&["--listen", "nowhere"])
                .unwrap_err()
                .contains("not an address")
        );
        assert!(parse(&["--demo"]).unwrap_err().contains("needs a value"));
        assert!(
            parse(&["--frobnicate"])
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}
