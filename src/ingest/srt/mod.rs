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
//! What the tokio shell around [`Endpoint`] has to do (not written yet;
//! `tests/srt_callers.rs` has a blocking std-socket driver that runs real
//! libsrt callers against the endpoint):
//!
//! - Bind with socket2, ask `SO_RCVBUF` for `[srt] recv_buffer` (4 MiB),
//!   try `SO_RCVBUFFORCE` when the kernel grants less, and log asked,
//!   granted and `rmem_max` (docs/srt-ingest-notes.md §4e).
//! - Draw the 16-byte key from the OS; receive in batches into `BytesMut`
//!   frozen to `Bytes`; send with non-blocking `try_send_to`, dropping on a
//!   full socket (SRT retransmits); sleep until [`Endpoint::poll_timeout`].
//! - Turn [`Event`]s into `tracing` events and `/metrics` counters
//!   (accepted, rejected by code, closed by reason, discards by label,
//!   panics), and [`ConnStats`] into the API (bitrate = delta of
//!   `rx_bytes`).
//! - Route `Event::Data` of publishers to their stream's pipeline without
//!   awaiting, creating per-stream resources on first data, not on accept
//!   (handshake floods); feed players from the GOP ring through bounded
//!   per-consumer queues and [`Endpoint::send`].
//! - Install a panic hook that logs one line without a backtrace,
//!   rate-limited: a peer that could trigger panics must not be able to
//!   make each one expensive. Never build with `panic = "abort"`.
//! - Later, for more than one core: `SO_REUSEPORT` shards with one endpoint
//!   each and a shared key.
//!
//! References: SRT RFC draft (draft-sharabayko-srt-01) §3 (packets), §4.3
//! (handshake); Haivision srt `docs/features/access-control.md` (streamid
//! syntax and reject codes).

pub mod admission;
pub mod cookie;
pub mod craft;
pub mod endpoint;
pub mod gate;
pub mod listener;
pub mod streamid;

pub use admission::{Accepted, Admission, Caller, Publishers, RejectCode, Rejection, Role, admit};
pub use endpoint::{CloseReason, ConnId, ConnStats, Counters, Endpoint, EndpointSettings, Event};
pub use streamid::{DeclaredRole, Mode, StreamRequest};
