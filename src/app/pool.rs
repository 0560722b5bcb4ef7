//! The router's encoder pool (issue 4, point 2): the process cap, the
//! spares waiting on stdin, and placement of new streams by measured host
//! CPU.
//!
//! The decision itself is the pure [`crate::placement::place`] over the
//! pool's state and the host's load from `/proc/stat`; this file only
//! gathers that state and keeps the spares topped up.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::encoder::process::{Encoder, EncoderOptions, EncoderSpec, SpawnError};
use crate::placement::{
    self, CpuTimes, EncoderId, EncoderSlot, HostLoad, Placement, PlacementSettings, RefusalReason,
    SlotState,
};

/// Host CPU is sampled at most this often for placement.
const HOST_SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// See the module docs.
#[derive(Debug)]
pub struct EncoderPool {
    settings: PlacementSettings,
    /// Spares run this (the default profile's command); a stream with
    /// another profile spawns its own.
    spare_spec: Option<EncoderSpec>,
    options: EncoderOptions,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Encoders working for a stream, with their estimated CPU cost.
    busy: Vec<f64>,
    spares: Vec<Encoder>,
    /// Spares being spawned.
    spawning: usize,
    host: Option<(Instant, CpuTimes)>,
    busy_fraction: Option<f64>,
}

/// What [`EncoderPool::take`] gives.
#[derive(Debug)]
pub enum Taken {
    /// A running encoder, counted busy until [`EncoderPool::release`].
    Encoder(Box<Encoder>),
    Refused(RefusalReason),
    Failed(SpawnError),
}

impl EncoderPool {
    pub fn new(
        settings: PlacementSettings,
        spare_spec: Option<EncoderSpec>,
        options: EncoderOptions,
    ) -> EncoderPool {
        EncoderPool {
            settings,
            spare_spec,
            options,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Encoders working for streams.
    pub fn busy(&self) -> usize {
        self.lock().busy.len()
    }

    pub fn spares(&self) -> usize {
        self.lock().spares.len()
    }

    fn host(&self, inner: &mut Inner) -> HostLoad {
        let now = Instant::now();
        let stale = inner
            .host
            .as_ref()
            .is_none_or(|(at, _)| now.duration_since(*at) >= HOST_SAMPLE_EVERY);
        if stale
            && let Some(times) = std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|text| placement::parse_host_stat(&text).ok())
        {
            if let Some((_, before)) = &inner.host {
                inner.busy_fraction = placement::busy_fraction(before, &times);
            }
            inner.host = Some((now, times));
        }
        let cores = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        HostLoad {
            cores,
            // `cpu_headroom = 0` turns the CPU rule off: only the process
            // cap applies.
            busy_fraction: if self.settings.headroom > 0.0 {
                inner.busy_fraction
            } else {
                None
            },
        }
    }

    fn slots(inner: &Inner) -> Vec<EncoderSlot> {
        let busy = inner.busy.iter().enumerate().map(|(n, cost)| EncoderSlot {
            id: EncoderId(n as u64),
            state: SlotState::Healthy,
            cpu_share: *cost,
        });
        let spares = (0..inner.spares.len()).map(|n| EncoderSlot {
            id: EncoderId(1_000_000 + n as u64),
            state: SlotState::Spare,
            cpu_share: 0.0,
        });
        busy.chain(spares).collect()
    }

    /// Whether a new stream costing `cost` cores may be encoded.
    pub fn admit(&self, cost: f64) -> Result<(), RefusalReason> {
        let mut inner = self.lock();
        let host = self.host(&mut inner);
        let mut settings = self.settings;
        if settings.headroom <= 0.0 {
            settings.headroom = 0.0;
        }
        match placement::place(&Self::slots(&inner), &host, &settings, cost) {
            Placement::Refuse { reason, .. } => Err(reason),
            _ => Ok(()),
        }
    }

    /// An encoder for a stream: a spare when `spec` is the spares' command
    /// (no spawn on the failover path), else a new process, within the
    /// process cap. The CPU rule is for new streams ([`EncoderPool::admit`]);
    /// a replacement takes the place of the encoder it replaces.
    pub fn take(self: &Arc<Self>, spec: &EncoderSpec, options: EncoderOptions, cost: f64) -> Taken {
        let mut inner = self.lock();
        if inner.busy.len() >= self.settings.max_encoders {
            return Taken::Refused(RefusalReason::ProcessCap {
                busy: inner.busy.len(),
                spares: self.settings.spares,
                max: self.settings.max_encoders,
            });
        }
        let spare = (self.spare_spec.as_ref() == Some(spec))
            .then(|| inner.spares.pop())
            .flatten();
        inner.busy.push(cost);
        drop(inner);
        let taken = match spare {
            Some(encoder) => {
                tracing::debug!(label = %options.label, "spare encoder taken");
                Taken::Encoder(Box::new(encoder))
            }
            None => match Encoder::spawn(spec, options) {
                Ok(encoder) => Taken::Encoder(Box::new(encoder)),
                Err(e) => {
                    self.release();
                    Taken::Failed(e)
                }
            },
        };
        self.refill();
        taken
    }

    /// An encoder of a stream ended.
    pub fn release(&self) {
        let mut inner = self.lock();
        inner.busy.pop();
        drop(inner);
        self.refill();
    }

    /// Spawns spares up to `spares`, within the process cap. Spawning is
    /// ~70 ms of a fork and exec (DESIGN.md), done here on the caller's
    /// thread once per spare taken.
    pub fn refill(&self) {
        let Some(spec) = self.spare_spec.as_ref() else {
            return;
        };
        loop {
            let mut inner = self.lock();
            let total = inner.busy.len() + inner.spares.len() + inner.spawning;
            if inner.spares.len() + inner.spawning >= self.settings.spares
                || total >= self.settings.max_encoders
            {
                return;
            }
            inner.spawning += 1;
            drop(inner);
            let mut options = self.options.clone();
            options.label = "spare".to_string();
            let spawned = Encoder::spawn(spec, options);
            let mut inner = self.lock();
            inner.spawning -= 1;
            match spawned {
                Ok(encoder) => inner.spares.push(encoder),
                Err(e) => {
                    tracing::warn!("cannot start a spare encoder: {e}");
                    return;
                }
            }
        }
    }

    /// Spares that died while waiting are dropped (and replaced).
    pub fn check_spares(&self) {
        let mut inner = self.lock();
        let before = inner.spares.len();
        inner
            .spares
            .retain(|e| e.health() != crate::health::HealthState::Failed);
        let lost = before - inner.spares.len();
        drop(inner);
        if lost > 0 {
            tracing::warn!(lost, "spare encoders died while waiting; replacing them");
            self.refill();
        }
    }

    /// Shutdown: the spares are stopped (dropping an encoder kills it).
    pub fn clear(&self) -> Vec<Encoder> {
        std::mem::take(&mut self.lock().spares)
    }
}
