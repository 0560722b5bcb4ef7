//! Receivers: one UDP socket per stream, where the relay sends the
//! stream's output. Each stamp's latency (receive time − send time −
//! the phase's offset) goes into the phase's histogram when its send time
//! is inside the window; sequence gaps are counted as they appear.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::measure::Phase;
use crate::stamp;

/// Asked of the kernel: bursts after a scheduling hiccup must not be lost
/// here (that would be charged to the relay).
const RECV_BUFFER: usize = 4 << 20;

/// A bound receiver socket (bound before the relay starts, so its port is
/// known and nothing it sends is lost).
pub fn bind() -> anyhow::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(RECV_BUFFER)?;
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
    let mut next_seq: Option<u64> = None;
    loop {
        let len = tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            received = socket.recv(&mut buf) => match received {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e).context(format!("receiver {index}")),
            },
        };
        let received_ns = phase.clock.now_ns();
        let datagram = buf.get(..len).unwrap_or_default();
        counters.received_bytes.fetch_add(len as u64, Relaxed);
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
            phase.record(&counters, s.sent_ns, received_ns);
        }
    }
}
