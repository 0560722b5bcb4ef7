//! Stateless SYN cookies for the induction phase (SRT RFC draft §4.3.1.1,
//! after UDT draft-gg-udt-03 §5.2).
//!
//! The listener keeps no state for an induction: its answer carries a
//! cookie that the caller must echo in its conclusion, and the cookie is a
//! keyed hash of what the conclusion will carry again: the caller's address
//! and socket id, and a coarse time bucket. So a flood of forged inductions
//! costs one reply each and no memory, and a conclusion is only taken from
//! a peer that received our induction answer at the address it claims.
//!
//! srt-protocol 0.4.4's own cookie (`DefaultHasher::new()`, fixed keys, and
//! seconds × 60 as "minutes") is predictable and changes every second. This
//! one is SipHash-1-3 under a 128-bit key chosen by the shell (random per
//! process, or shared by the `SO_REUSEPORT` shards of one port), over an
//! 8-second bucket; the previous bucket is still accepted, so a cookie lives
//! 8 to 16 seconds.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hash::Hasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use siphasher::sip::SipHasher13;

/// How long one cookie bucket lasts.
pub const BUCKET: Duration = Duration::from_secs(8);

/// Issues and verifies induction cookies.
#[derive(Debug, Clone)]
pub struct CookieJar {
    key: [u8; 16],
    epoch: Instant,
}

impl CookieJar {
    /// `key` must be secret and unpredictable in production (the shell draws
    /// it from the OS); tests pass a fixed one.
    pub fn new(key: [u8; 16], epoch: Instant) -> CookieJar {
        CookieJar { key, epoch }
    }

    fn bucket(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / BUCKET.as_secs()
    }

    fn cookie(&self, bucket: u64, peer: SocketAddr, caller_socket_id: u32) -> i32 {
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write_u64(bucket);
        match peer {
            SocketAddr::V4(a) => h.write(&a.ip().octets()),
            SocketAddr::V6(a) => h.write(&a.ip().octets()),
        }
        h.write_u16(peer.port());
        h.write_u32(caller_socket_id);
        // The cookie field is a signed 32-bit word on the wire.
        h.finish() as u32 as i32
    }

    /// The cookie for an induction from `peer` (caller socket id
    /// `caller_socket_id`) at `now`.
    pub fn issue(&self, now: Instant, peer: SocketAddr, caller_socket_id: u32) -> i32 {
        self.cookie(self.bucket(now), peer, caller_socket_id)
    }

    /// Whether `cookie` was issued to this peer and socket id in the current
    /// or the previous bucket.
    pub fn verify(
        &self,
        now: Instant,
        peer: SocketAddr,
        caller_socket_id: u32,
        cookie: i32,
    ) -> bool {
        let bucket = self.bucket(now);
        cookie == self.cookie(bucket, peer, caller_socket_id)
            || bucket
                .checked_sub(1)
                .is_some_and(|previous| cookie == self.cookie(previous, peer, caller_socket_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn cookies_live_one_to_two_buckets() {
        let t0 = Instant::now();
        let jar = CookieJar::new([7; 16], t0);
        let c = jar.issue(t0 + Duration::from_secs(3), peer(5000), 42);
        assert!(jar.verify(t0 + Duration::from_secs(3), peer(5000), 42, c));
        assert!(jar.verify(t0 + Duration::from_secs(15), peer(5000), 42, c));
        assert!(!jar.verify(t0 + Duration::from_secs(16), peer(5000), 42, c));
    }

    #[test]
    fn cookies_bind_peer_socket_and_key() {
        let t0 = Instant::now();
        let jar = CookieJar::new([7; 16], t0);
        let c = jar.issue(t0, peer(5000), 42);
        assert!(!jar.verify(t0, peer(5001), 42, c));
        assert!(!jar.verify(t0, peer(5000), 43, c));
        assert!(!jar.verify(t0, SocketAddr::from(([192, 0, 2, 2], 5000)), 42, c));
        let other = CookieJar::new([8; 16], t0);
        assert!(!other.verify(t0, peer(5000), 42, c));
        // Same key, same inputs: the same cookie (SO_REUSEPORT shards agree).
        assert_eq!(CookieJar::new([7; 16], t0).issue(t0, peer(5000), 42), c);
    }
}
