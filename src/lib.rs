//! portcullis: a self-hosted authentication service.
//!
//! The crate is a library with a thin binary (`main.rs`), so the integration tests
//! start the very same application on port 0.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod counters;
pub mod db;
pub mod domain;
pub mod files;
pub mod mail;
pub mod master_key;
pub mod startup;
pub mod telemetry;
pub mod web;
