//! Receivers: one UDP socket per stream, where the relay sends the
//! stream's output. Each stamp's latency (arrival − send time − the phase's
//! offset) goes into the phase's histogram when its send time is inside
//! the window; sequence gaps are counted as they appear.
//!
//! The arrival is the kernel's receive timestamp of the datagram
//! (`SO_TIMESTAMPNS`, socket(7)), taken when it reached this socket, not
//! the moment this task got to read it: on a shared 2-core machine with
//! the relay busy, the task's wake-up and scheduling delay is loadgen's,
//! not the relay's. The task's own reading after `recvmsg` is recorded too
//! and reported beside it.

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::Context;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::measure::{Arrival, Phase, timespec_ns};
use crate::stamp;

/// Asked of the kernel: bursts after a scheduling hiccup must not be lost
/// here (that would be charged to the relay).
const RECV_BUFFER: usize = 4 << 20;
/// Datagrams read per wake-up at most before the task checks for stop and
/// gives the runtime a chance to run the others.
const MAX_BATCH: usize = 64;

/// A bound receiver socket (bound before the relay starts, so its port is
/// known and nothing it sends is lost), with kernel receive timestamps on.
pub fn bind() -> anyhow::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(RECV_BUFFER)?;
    setsockopt(&socket, sockopt::ReceiveTimestampns, &true)
        .context("turning on kernel receive timestamps (SO_TIMESTAMPNS)")?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    UdpSocket::from_std(socket.into()).context("registering a receiver socket with tokio")
}

/// Receives stream `index` until stopped.
pub async fn run(
    phase: Arc<Phase>,
    index: usize,
    socket: UdpSocket,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let counters = phase.streams[index].clone();
    let mut buf = vec![0u8; 65_536];
    let mut control = nix::cmsg_space!(TimeSpec);
    let fd = socket.as_raw_fd();
    let mut next_seq: Option<u64> = None;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            ready = socket.readable() => ready.with_context(|| format!("receiver {index}"))?,
        }
        for _ in 0..MAX_BATCH {
            let received = socket.try_io(Interest::READABLE, || {
                recv_timestamped(fd, &mut buf, &mut control)
            });
            let task_ns = phase.clock.now_ns();
            let received = match received {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e).context(format!("receiver {index}")),
            };
            if received.kernel_ns.is_none() {
                counters.untimestamped.fetch_add(1, Relaxed);
            }
            let arrival = Arrival {
                kernel_ns: received.kernel_ns,
                task_ns,
            };
            let datagram = buf.get(..received.len).unwrap_or_default();
            counters
                .received_bytes
                .fetch_add(received.len as u64, Relaxed);
            for s in stamp::read_all(datagram) {
                if s.stream as usize != index {
                    counters.foreign.fetch_add(1, Relaxed);
                    continue;
                }
                match next_seq {
                    Some(next) if s.seq < next => {
                        counters.out_of_order.fetch_add(1, Relaxed);
                        continue;
                    }
                    Some(next) => {
                        counters.gaps.fetch_add(s.seq - next, Relaxed);
                    }
                    None => {}
                }
                next_seq = Some(s.seq + 1);
                counters.received.fetch_add(1, Relaxed);
                phase.record(&counters, s.sent_ns, arrival);
            }
        }
    }
}

/// One datagram read by [`recv_timestamped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Received {
    len: usize,
    /// `SCM_TIMESTAMPNS` on `CLOCK_REALTIME`, if the kernel attached it.
    kernel_ns: Option<u64>,
}

/// Reads one datagram from the non-blocking socket `fd` into `buf`, with
/// its receive timestamp; `WouldBlock` when there is none.
fn recv_timestamped(fd: RawFd, buf: &mut [u8], control: &mut Vec<u8>) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::empty())?;
    // A truncated control buffer (ENOBUFS) leaves the datagram without a
    // timestamp; it is counted, not fatal.
    let kernel_ns = msg
        .cmsgs()
        .ok()
        .into_iter()
        .flatten()
        .find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(ts) => Some(timespec_ns(&ts)),
            _ => None,
        });
    Ok(Received {
        len: msg.bytes,
        kernel_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Clock;
    use std::time::Duration;

    #[tokio::test]
    async fn the_kernel_stamps_each_datagram_on_the_stamp_clock() {
        let receiver = bind().expect("binding on loopback");
        let to = receiver.local_addr().expect("bound");
        let sender = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
        let mut buf = vec![0u8; 2048];
        let mut control = nix::cmsg_space!(TimeSpec);
        for payload in [&b"first"[..], &b"second datagram"[..]] {
            let before = Clock.now_ns();
            sender.send_to(payload, to).expect("sending on loopback");
            let received = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    receiver.readable().await.expect("readable");
                    match receiver.try_io(Interest::READABLE, || {
                        recv_timestamped(receiver.as_raw_fd(), &mut buf, &mut control)
                    }) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        other => break other.expect("receiving on loopback"),
                    }
                }
            })
            .await
            .expect("the datagram arrives within 5 s");
            let after = Clock.now_ns();
            assert_eq!(received.len, payload.len());
            assert_eq!(buf.get(..received.len), Some(payload));
            let kernel = received
                .kernel_ns
                .expect("SO_TIMESTAMPNS is on: the kernel attaches a timestamp");
            assert!(
                before <= kernel && kernel <= after,
                "kernel timestamp {kernel} not within [{before}, {after}]"
            );
        }
    }

    #[test]
    fn a_socket_without_timestamps_on_gets_none() {
        let receiver = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("setting a timeout");
        let sender = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
        sender
            .send_to(b"x", receiver.local_addr().expect("bound"))
            .expect("sending on loopback");
        let mut buf = vec![0u8; 16];
        let mut control = nix::cmsg_space!(TimeSpec);
        // Blocking socket: recvmsg waits for the datagram (5 s at most).
        let received =
            recv_timestamped(receiver.as_raw_fd(), &mut buf, &mut control).expect("receiving");
        assert_eq!(
            received,
            Received {
                len: 1,
                kernel_ns: None
            }
        );
    }
}
