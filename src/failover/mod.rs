//! Failover decisions (sans-IO): which input or encoder a stream's output
//! carries, decided from what arrives and when, with `now` passed in.
//!
//! - [`input`]: main/backup input selection over the output splicer
//!   ([`crate::splice`]), issue 3 point 5.
//! - [`encoder`]: which encoder carries a stream and when to move it,
//!   issue 4 point 5.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod encoder;
pub mod input;

pub use encoder::{
    Action, EncoderId, EncoderSupervisor, FailoverEvent, GiveUp, MoveReason, SupervisorSettings,
};
pub use input::{InputEvent, InputSettings, InputStats, InputSwitch, LossReason, SwitchReason};
