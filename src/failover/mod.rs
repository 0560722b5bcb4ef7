//! Placeholder until the input-switch core lands: forwards the main input,
//! or the backup while no main is connected. Replaced by the real core.

use std::time::Instant;

use bytes::Bytes;

use crate::config::{InputRole, StreamSettings};

#[derive(Debug, Default)]
pub struct InputSwitchSettings;

impl InputSwitchSettings {
    pub fn from_stream(_: &StreamSettings) -> InputSwitchSettings {
        InputSwitchSettings
    }
}

#[derive(Debug)]
pub enum InputEvent {
    Switched,
    InputLost,
    Other,
}

impl std::fmt::Display for InputEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug)]
pub struct InputSwitch {
    main_seen: Option<Instant>,
}

impl InputSwitch {
    pub fn new(_: InputSwitchSettings) -> InputSwitch {
        InputSwitch { main_seen: None }
    }
    pub fn push(&mut self, now: Instant, role: InputRole, data: Bytes, out: &mut Vec<Bytes>) {
        if role == InputRole::Main {
            self.main_seen = Some(now);
            out.push(data);
        } else if self.main_seen.is_none() {
            out.push(data);
        }
    }
    pub fn remove_input(&mut self, _: Instant, role: InputRole, _: &mut Vec<Bytes>) {
        if role == InputRole::Main {
            self.main_seen = None;
        }
    }
    pub fn handle_timeout(&mut self, _: Instant, _: &mut Vec<Bytes>) {}
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn poll_event(&mut self) -> Option<InputEvent> {
        None
    }
}
