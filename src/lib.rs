//! `recon` settles customer top-ups against the money that actually arrived at the bank.
//!
//! Data flows one way: statement files are read into [`statement::Transaction`]s, the
//! [`reference`] module finds settlement references in their remittance text, the pure
//! [`matching`] core decides one [`matching::Outcome`] per transaction, and at the edges the
//! [`store`] settles top-ups in SQLite while [`report`] writes the files for the finance team.
//! [`app`] wires one command to these pieces; [`cli`] is what the user typed.

#![deny(clippy::float_arithmetic)]

pub mod api;
pub mod app;
pub mod benchdata;
pub mod cli;
pub mod config;
pub mod controls;
pub mod error;
pub mod ids;
pub mod import;
pub mod matching;
pub mod money;
pub mod ops;
pub mod reference;
pub mod report;
pub mod returns;
pub mod row;
pub mod statement;
pub mod store;
pub mod suggest;
pub mod text;
pub mod topup;
pub mod webhooks;

pub use error::{Error, exit};
