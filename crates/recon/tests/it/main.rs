//! Integration tests of the reconciliation engine: hand-written rules, generated scenarios
//! compared item by item with their ground truth, and order independence.

mod rules;
mod scenarios;
