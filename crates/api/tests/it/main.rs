//! The HTTP API driven through the router (`oneshot`), against a real SQLite store in a
//! temporary directory.

mod support;

mod auth;
mod authz;
mod bad_input;
mod diagnose;
mod export;
mod findability;
mod hostile;
mod idempotency;
mod ingest;
mod pos_sync;
mod query;
mod recon;
mod users;
