//! `/api/v1`: one module per resource, handlers named `<verb>_<resource>`.

pub mod access;
pub mod appointments;
pub mod audit;
pub mod documents;
pub mod events;
pub mod exchange;
pub mod imaging;
pub mod kiosks;
pub mod patients;
pub mod practitioners;
pub mod reports;
pub mod schedules;
pub mod sessions;
pub mod snapshot;
pub mod transfers;
