//! What the commands and the API do, never printing: each command in `app` and each handler in
//! `api` is a thin wrapper around a function here, so both go through one code path.

pub mod inbox;
pub mod interrupt;
pub mod report;
pub mod run;
pub mod topups;
