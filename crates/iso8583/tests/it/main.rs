//! Integration tests of the iso8583 crate: the shared vectors, malformed frames, framing,
//! typed views, replies, MAC, properties and pyiso8583 interop.

mod framing;
mod interop;
mod mac;
mod malformed;
mod props;
mod support;
mod vectors;
mod views;
