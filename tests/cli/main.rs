//! recon's integration tests, one program: the real `recon` binary on real files in temporary
//! directories with real SQLite databases, and the library's readers on the fixtures. One module
//! per area; what they share (the `Env` builder, fixtures, assertions) is in `env.rs`.

mod env;
mod xsd;

// The nightly job and its inputs.
mod camt;
mod controls;
mod cross_format;
mod csv;
mod hostile;
mod inbox;
mod mt940;
mod run;
mod samples;
mod statements;
mod suggest;

// What an operator and cron rely on when things go wrong.
mod trust;

// What it leaves: the report, the database, and the same output however it ran.
mod crash;
mod database;
mod determinism;
mod nights;
mod open_topups;
mod page_browser;
mod release;
mod report;

// The files recon writes for the bank.
mod pain001;

// Top-ups, settings, events and the HTTP API.
mod api;
mod api_load;
mod config;
mod events;
mod exceptions;
mod topups;
mod webhooks_delivery;

// The browser, properties, generated nights.
mod bench;
mod browser;
mod properties;
