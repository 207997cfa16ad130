//! Integration tests for the diagnosis engine (one binary, STYLE.md).
