//! The SRT listener core: one UDP port, many publishers and players, routed
//! by streamid (issue 3, point 2).
//!
//! It is built on the published `srt-protocol` 0.4.4 sans-IO state machines
//! (pinned), with our own front in place of its listener: srt-tokio 0.4.4
//! has network-reachable panics in its handshake code, head-of-line
//! blocking between connections, and an unbounded half-open handshake table
//! (DESIGN.md, "Facts"). The investigation, the panic table (rows P1–P18)
//! and the measurements with real callers are in `docs/srt-ingest-notes.md`.
//!
//! Layers, from the wire inwards:
//!
//! - [`gate`]: raw checks of handshakes and control packets before any byte
//!   reaches srt-protocol's parser; conclusions are rebuilt canonically.
//! - [`cookie`]: stateless SYN cookies, so inductions keep no state.
//! - [`streamid`]: the caller's stream id, plain or access-control form.
//! - [`admission`]: the pure access-control decision (role, key, or a
//!   reject code).
//! - [`endpoint`]: the connection table; every srt-protocol call runs under
//!   `catch_unwind`, and a connection that panicked is discarded alone.
//!
//! [`craft`] builds raw SRT datagrams for tests, fuzz seeds and the fuzz
//! harness.
//!
//! References: SRT RFC draft (draft-sharabayko-srt-01) §3 (packets), §4.3
//! (handshake); Haivision srt `docs/features/access-control.md` (streamid
//! syntax and reject codes).

pub mod admission;
pub mod cookie;
pub mod craft;
pub mod endpoint;
pub mod gate;
pub mod streamid;

pub use admission::{Accepted, Admission, Caller, Publishers, RejectCode, Rejection, Role, admit};
pub use endpoint::{CloseReason, ConnId, ConnStats, Counters, Endpoint, EndpointSettings, Event};
pub use streamid::{DeclaredRole, Mode, StreamRequest};
