//! The placement decision.

use std::fmt;

/// An encoder process, as the pool names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EncoderId(pub u64);

impl fmt::Display for EncoderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "encoder {}", self.0)
    }
}

/// What an encoder process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Encoding a stream, keeping up.
    Healthy,
    /// Encoding a stream, struggling: takes no new work.
    Degraded,
    /// Dead or being stopped: counts for nothing.
    Failed,
    /// Pre-spawned, waiting on stdin for a stream.
    Spare,
}

/// One encoder process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSlot {
    pub id: EncoderId,
    pub state: SlotState,
    /// Share of one core it used recently ([`crate::health::HealthScorer::cpu_share`]).
    pub cpu_share: f64,
}

/// The host the encoders run on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostLoad {
    pub cores: u32,
    /// Busy fraction of all cores between the last two `/proc/stat`
    /// samples ([`super::busy_fraction`]); `None` before the second.
    pub busy_fraction: Option<f64>,
}

/// What a stream refused an encoder does, per config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalPolicy {
    /// It is forwarded unencoded, and its status says why.
    Passthrough,
    /// It is rejected (the publisher is turned away).
    Reject,
}

/// Placement settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacementSettings {
    /// Most encoder processes, spares included. Default 8.
    pub max_encoders: usize,
    /// Spares the pool keeps waiting on stdin. Default 1.
    pub spares: usize,
    /// Fraction of the host's CPU kept free. Default 0.2.
    pub headroom: f64,
    /// What a refused stream does. Default passthrough.
    pub refusal: RefusalPolicy,
}

impl Default for PlacementSettings {
    fn default() -> PlacementSettings {
        PlacementSettings {
            max_encoders: 8,
            spares: 1,
            headroom: 0.2,
            refusal: RefusalPolicy::Passthrough,
        }
    }
}

/// Why a stream got no encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RefusalReason {
    /// The process cap, with the spares kept, is reached.
    ProcessCap {
        busy: usize,
        spares: usize,
        max: usize,
    },
    /// The CPU the stream would cost does not fit under the headroom.
    Cpu {
        /// Cores in use now.
        used: f64,
        /// Cores the stream would add.
        cost: f64,
        /// Cores usable (`cores × (1 − headroom)`).
        limit: f64,
    },
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::ProcessCap { busy, spares, max } => write!(
                f,
                "all encoders are in use: {busy} busy and {spares} kept spare of max_encoders = {max}; raise max_encoders or lower spares"
            ),
            RefusalReason::Cpu { used, cost, limit } => write!(
                f,
                "not enough CPU: {used:.2} cores in use, the stream needs {cost:.2} more, the limit with the configured headroom is {limit:.2}"
            ),
        }
    }
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// Feed this spare.
    UseSpare(EncoderId),
    /// Start a new encoder process.
    Spawn,
    /// No encoder: the stream goes `then` way.
    Refuse {
        reason: RefusalReason,
        then: RefusalPolicy,
    },
}

/// Places a new stream costing `cost` cores (see [`super::estimated_cost`]).
/// See the module docs for the rules.
pub fn place(
    slots: &[EncoderSlot],
    host: &HostLoad,
    settings: &PlacementSettings,
    cost: f64,
) -> Placement {
    let refuse = |reason| Placement::Refuse {
        reason,
        then: settings.refusal,
    };
    let cost = if cost.is_finite() { cost.max(0.0) } else { 0.0 };
    let cores = f64::from(host.cores.max(1));
    let encoders: f64 = slots
        .iter()
        .filter(|s| s.state != SlotState::Failed)
        .map(|s| {
            if s.cpu_share.is_finite() {
                s.cpu_share.max(0.0)
            } else {
                0.0
            }
        })
        .sum();
    let measured = host
        .busy_fraction
        .map_or(0.0, |b| b.clamp(0.0, 1.0) * cores);
    let used = measured.max(encoders);
    let limit = cores * (1.0 - settings.headroom.clamp(0.0, 1.0));
    if used + cost > limit {
        return refuse(RefusalReason::Cpu { used, cost, limit });
    }
    let busy = slots
        .iter()
        .filter(|s| matches!(s.state, SlotState::Healthy | SlotState::Degraded))
        .count();
    if busy + 1 + settings.spares > settings.max_encoders {
        return refuse(RefusalReason::ProcessCap {
            busy,
            spares: settings.spares,
            max: settings.max_encoders,
        });
    }
    match slots
        .iter()
        .filter(|s| s.state == SlotState::Spare)
        .map(|s| s.id)
        .min()
    {
        Some(id) => Placement::UseSpare(id),
        None => Placement::Spawn,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn slot(id: u64, state: SlotState, cpu: f64) -> EncoderSlot {
        EncoderSlot {
            id: EncoderId(id),
            state,
            cpu_share: cpu,
        }
    }

    const IDLE: HostLoad = HostLoad {
        cores: 2,
        busy_fraction: Some(0.1),
    };

    fn settings() -> PlacementSettings {
        PlacementSettings {
            max_encoders: 4,
            spares: 1,
            headroom: 0.2,
            refusal: RefusalPolicy::Passthrough,
        }
    }

    #[test]
    fn a_spare_is_used_first_lowest_id() {
        let slots = [
            slot(1, SlotState::Healthy, 0.2),
            slot(7, SlotState::Spare, 0.0),
            slot(3, SlotState::Spare, 0.0),
        ];
        assert_eq!(
            place(&slots, &IDLE, &settings(), 0.19),
            Placement::UseSpare(EncoderId(3))
        );
    }

    #[test]
    fn without_a_spare_spawn() {
        let slots = [slot(1, SlotState::Healthy, 0.2)];
        assert_eq!(place(&slots, &IDLE, &settings(), 0.19), Placement::Spawn);
        assert_eq!(place(&[], &IDLE, &settings(), 0.19), Placement::Spawn);
    }

    #[test]
    fn degraded_and_failed_encoders_take_no_work() {
        let slots = [
            slot(1, SlotState::Degraded, 0.2),
            slot(2, SlotState::Failed, 0.0),
        ];
        assert_eq!(place(&slots, &IDLE, &settings(), 0.19), Placement::Spawn);
    }

    #[test]
    fn process_cap_keeps_room_for_the_spares() {
        // 2 busy + new + 1 spare = 4: fits.
        let slots = [
            slot(1, SlotState::Healthy, 0.1),
            slot(2, SlotState::Degraded, 0.1),
        ];
        assert_eq!(place(&slots, &IDLE, &settings(), 0.1), Placement::Spawn);
        // 3 busy + new + 1 spare = 5 > 4, even with the spare there.
        let slots = [
            slot(1, SlotState::Healthy, 0.1),
            slot(2, SlotState::Healthy, 0.1),
            slot(3, SlotState::Degraded, 0.1),
            slot(4, SlotState::Spare, 0.0),
        ];
        let p = place(&slots, &IDLE, &settings(), 0.1);
        assert_eq!(
            p,
            Placement::Refuse {
                reason: RefusalReason::ProcessCap {
                    busy: 3,
                    spares: 1,
                    max: 4
                },
                then: RefusalPolicy::Passthrough
            }
        );
        // Failed encoders do not count.
        let slots = [
            slot(1, SlotState::Healthy, 0.1),
            slot(2, SlotState::Failed, 0.0),
            slot(3, SlotState::Failed, 0.0),
        ];
        assert_eq!(place(&slots, &IDLE, &settings(), 0.1), Placement::Spawn);
    }

    #[test]
    fn cpu_headroom_from_the_measured_host() {
        // 2 cores, 20 % headroom: 1.6 cores usable; 70 % busy = 1.4 used.
        let busy = HostLoad {
            cores: 2,
            busy_fraction: Some(0.7),
        };
        assert_eq!(place(&[], &busy, &settings(), 0.19), Placement::Spawn);
        let p = place(&[], &busy, &settings(), 0.25);
        let Placement::Refuse {
            reason: RefusalReason::Cpu { used, cost, limit },
            ..
        } = p
        else {
            panic!("{p:?}")
        };
        assert!((used - 1.4).abs() < 1e-9 && cost == 0.25 && (limit - 1.6).abs() < 1e-9);
    }

    #[test]
    fn before_a_host_sample_the_encoders_own_shares_count() {
        let unknown = HostLoad {
            cores: 2,
            busy_fraction: None,
        };
        let slots = [
            slot(1, SlotState::Healthy, 0.9),
            slot(2, SlotState::Healthy, 0.6),
        ];
        assert!(matches!(
            place(&slots, &unknown, &settings(), 0.19),
            Placement::Refuse {
                reason: RefusalReason::Cpu { .. },
                ..
            }
        ));
        // And the larger of the two when both are known.
        let low = HostLoad {
            cores: 2,
            busy_fraction: Some(0.05),
        };
        assert!(matches!(
            place(&slots, &low, &settings(), 0.19),
            Placement::Refuse { .. }
        ));
    }

    #[test]
    fn refusal_policy_comes_from_config() {
        let mut s = settings();
        s.refusal = RefusalPolicy::Reject;
        s.max_encoders = 1;
        let p = place(&[], &IDLE, &s, 0.1);
        assert!(
            matches!(
                p,
                Placement::Refuse {
                    then: RefusalPolicy::Reject,
                    ..
                }
            ),
            "{p:?}"
        );
        let Placement::Refuse { reason, .. } = p else {
            return;
        };
        assert_eq!(
            reason.to_string(),
            "all encoders are in use: 0 busy and 1 kept spare of max_encoders = 1; raise max_encoders or lower spares"
        );
    }

    #[test]
    fn passthrough_cost_always_fits_cpu() {
        let full = HostLoad {
            cores: 2,
            busy_fraction: Some(0.8),
        };
        assert_eq!(place(&[], &full, &settings(), 0.0), Placement::Spawn);
        assert_eq!(place(&[], &full, &settings(), f64::NAN), Placement::Spawn);
    }
}
