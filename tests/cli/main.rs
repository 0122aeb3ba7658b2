//! recon's integration tests, one program: the real `recon` binary on real files in temporary
//! directories with real SQLite databases, and the library's readers on the fixtures. One module
//! per area; the helpers every area shares are in `env.rs`.

mod env;

mod api;
mod browser;
mod camt;
mod crash;
mod csv;
mod determinism;
mod events;
mod hostile;
mod properties;
mod run;
mod samples;
