//! The commands as the web UI reaches them, made from the registry (`registry.rs`): one entry
//! point per command, which Tauri deserialises the arguments for and which calls the command's
//! implementation (so the compiler holds the registry to the implementations' types), and the
//! invoke handler. A test writes the UI's typed wrappers from the same list.

use carebridge_core::Status;
use carebridge_core::access::RemoteRecordView;
use carebridge_core::protocol::appointment::{
    Appointment, AppointmentAction, BookAppointment, Reschedule,
};
use carebridge_core::protocol::federation::access::{
    AccessDecision, AccessRead, IncomingAccess, NewRemoteAccess, RemoteAccess,
};
use carebridge_core::protocol::federation::payload::{
    AdminUpdate, Consent, NewAdminUpdate, PeerSummary, ReceivedReports, Transmission,
};
use carebridge_core::protocol::federation::transfer::{NewTransfer, PatientTransfer};
use carebridge_core::protocol::imaging::{
    ImagingOrder, ImagingStudy, ImagingStudyId, NewImagingOrder, PatientImaging,
};
use carebridge_core::protocol::kiosk::{KioskDevice, KioskRegistration};
use carebridge_core::protocol::patient::{KioskPatient, NewPatient, Patient};
use carebridge_core::protocol::practitioner::{NewPractitioner, Practitioner, PractitionerUpdate};
use carebridge_core::protocol::report::{Report, ReportAction, ReportContent, ReportRevision};
use carebridge_core::protocol::schedule::Slot;
use carebridge_core::protocol::{
    AppointmentId, KioskDeviceId, PatientId, PractitionerId, ReportId,
};
use carebridge_core::records::ImportSummary;
use carebridge_core::store::{AppointmentRow, ReportRow, SearchHit};
use chrono::{DateTime, NaiveDate, Utc};
use tauri::State;

use super::admin::{AuditFilter, AuditRow, SavedExport};
use super::staff::{PatientPage, SignInDefaults};
use super::workstation::{FolderImportView, Printout};
use super::{CommandError, RefusedWrite, SignedInView};
use crate::AppState;
use carebridge_core::protocol::document::{DocumentId, NewDocument, PatientDocument};
use carebridge_workstation::{ImportAssignment, WorkstationSettings};

/// The registry read for the app: the entry points and the handler (and, in tests, the UI's
/// wrappers).
macro_rules! entry_points {
    ($( $module:ident :: $name:ident [$($window:ident),+] $(with $app:ident)? ( $($arg:ident : $ty:ty),* ) -> $ret:ty ; )*) => {
        $(
            #[doc = concat!("Calls [`super::", stringify!($module), "::", stringify!($name), "`].")]
            #[tauri::command]
            pub async fn $name(
                $($app: tauri::AppHandle,)?
                state: State<'_, AppState>,
                $($arg: $ty),*
            ) -> Result<$ret, CommandError> {
                super::$module::$name($($app,)? state, $($arg),*).await
            }
        )*

        /// Tauri's invoke handler: every command of the registry.
        pub fn handler() -> impl Fn(tauri::ipc::Invoke) -> bool + Send + Sync + 'static {
            tauri::generate_handler![$($name),*]
        }

        /// Every command as the UI calls it.
        #[cfg(test)]
        fn wrappers(types: &mut wrappers::Types) -> Vec<wrappers::Wrapper> {
            vec![$(
                wrappers::Wrapper {
                    command: stringify!($name),
                    args: vec![$( (stringify!($arg), types.of::<$ty>()) ),*],
                    answer: if stringify!($ret) == "()" { "void".to_owned() } else { types.of::<$ret>() },
                },
            )*]
        }
    };
}

with_commands!(entry_points);

#[cfg(test)]
mod wrappers {
    use std::collections::BTreeSet;
    use std::fmt::Write as _;

    use ts_rs::{Config, Dependency, TS, TypeVisitor};

    /// One command as the UI calls it.
    pub(super) struct Wrapper {
        pub command: &'static str,
        /// Each argument's Rust name and TypeScript type.
        pub args: Vec<(&'static str, String)>,
        pub answer: String,
    }

    /// TypeScript names of Rust types, and the declarations they need imported.
    pub(super) struct Types {
        config: Config,
        imports: BTreeSet<(String, String)>,
    }

    impl Types {
        pub(super) fn new(config: Config) -> Self {
            Self {
                config,
                imports: BTreeSet::new(),
            }
        }

        /// `T`'s TypeScript name, noting what it needs imported.
        pub(super) fn of<T: TS + 'static>(&mut self) -> String {
            struct Imports<'a>(&'a Config, &'a mut BTreeSet<(String, String)>);
            impl TypeVisitor for Imports<'_> {
                fn visit<U: TS + 'static + ?Sized>(&mut self) {
                    if let Some(d) = Dependency::from_ty::<U>(self.0) {
                        let path = d.output_path.with_extension("");
                        self.1
                            .insert((d.ts_name, path.to_string_lossy().into_owned()));
                    }
                }
            }
            let mut visit = Imports(&self.config, &mut self.imports);
            visit.visit::<T>();
            T::visit_generics(&mut visit);
            T::name(&self.config)
        }

        pub(super) fn imports(&self) -> &BTreeSet<(String, String)> {
            &self.imports
        }
    }

    pub(super) fn camel(snake: &str) -> String {
        let mut out = String::with_capacity(snake.len());
        let mut upper = false;
        for c in snake.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.extend(c.to_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The TypeScript module: the imports, then one function per command. Arguments are sent
    /// by name in camelCase (Tauri's default); trailing optional ones may be left out.
    pub(super) fn module(wrappers: &[Wrapper], types: &Types) -> String {
        let mut ts = String::from(
            "// Generated from src-tauri/commands/registry.rs by `cargo test` (commands::ipc): do not edit.\n\
             import { invoke } from \"@tauri-apps/api/core\";\n",
        );
        for (name, path) in types.imports() {
            let _ = writeln!(ts, "import type {{ {name} }} from \"./{path}\";");
        }
        for w in wrappers {
            let args: Vec<(String, &str)> = w
                .args
                .iter()
                .map(|(name, ty)| (camel(name), ty.as_str()))
                .collect();
            // Optional arguments at the end default to null.
            let optional_tail = args
                .iter()
                .rev()
                .take_while(|(_, ty)| ty.ends_with(" | null"))
                .count();
            let params: Vec<String> = args
                .iter()
                .enumerate()
                .map(|(i, (name, ty))| {
                    if i >= args.len() - optional_tail {
                        format!("{name}: {ty} = null")
                    } else {
                        format!("{name}: {ty}")
                    }
                })
                .collect();
            let names: Vec<&str> = args.iter().map(|(n, _)| n.as_str()).collect();
            let body = if names.is_empty() {
                format!("invoke(\"{}\")", w.command)
            } else {
                format!("invoke(\"{}\", {{ {} }})", w.command, names.join(", "))
            };
            let _ = writeln!(
                ts,
                "export const {} = ({}): Promise<{}> =>\n  {body};",
                camel(w.command),
                params.join(", "),
                w.answer,
            );
        }
        ts
    }
}

#[cfg(test)]
mod tests {
    use super::wrappers::{Types, camel, module};

    /// The UI's typed wrappers are written from the registry (`make test` then fails if what
    /// was written is not what is committed).
    #[test]
    fn the_uis_command_wrappers_are_written_from_the_registry() {
        let config = ts_rs::Config::from_env().with_large_int("number");
        let out = config.out_dir().join("commands.ts");
        let mut types = Types::new(config);
        let wrappers = super::wrappers(&mut types);
        let ts = module(&wrappers, &types);
        assert!(ts.contains(
            "export const signIn = (nodeUrl: string, username: string, password: string): Promise<SignedInView> =>\n  invoke(\"sign_in\", { nodeUrl, username, password });"
        ), "{ts}");
        assert!(
            ts.contains("reason: string | null = null): Promise<Appointment>"),
            "{ts}"
        );
        assert!(
            ts.contains("import type { SignedInView } from \"./SignedInView\";"),
            "{ts}"
        );
        if std::fs::read_to_string(&out).ok().as_deref() != Some(ts.as_str()) {
            std::fs::write(&out, ts).unwrap();
        }
    }

    #[test]
    fn argument_names_go_to_the_ui_in_camel_case() {
        assert_eq!(camel("practitioner_id"), "practitionerId");
        assert_eq!(camel("seq"), "seq");
        assert_eq!(camel("kiosk_check_in"), "kioskCheckIn");
    }
}
