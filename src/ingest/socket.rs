//! UDP sockets of the ingest shell: binding with a large receive buffer,
//! joining multicast groups, and receiving datagrams in batches into
//! `Bytes` without per-datagram allocations.
//!
//! Every datagram of a batch is a slice of one large receive buffer: the
//! buffer is allocated once per ~1 MiB of traffic, and the TS packets the
//! core cuts out of a datagram are slices of it too (DESIGN.md, "Data
//! flow").

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::config::Multicast;

/// Room kept in the receive buffer before each `recv`: the largest UDP
/// payload, so that no datagram is ever truncated.
const MAX_DATAGRAM: usize = 65_536;

/// The receive buffer is reallocated in chunks of this size.
const CHUNK: usize = 1 << 20;

/// What the kernel granted for `SO_RCVBUF`, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvBuffer {
    pub asked: usize,
    /// As `getsockopt` reports it (Linux reports twice the usable size).
    pub granted: usize,
    /// `SO_RCVBUFFORCE` (needs CAP_NET_ADMIN) was used to go past
    /// `net.core.rmem_max`.
    pub forced: bool,
}

/// Binds a non-blocking UDP socket on `listen` with a receive buffer of
/// `recv_buffer` bytes (or as much as the kernel allows), joining
/// `multicast` if given.
pub fn bind(
    listen: SocketAddr,
    recv_buffer: usize,
    multicast: Option<&Multicast>,
) -> io::Result<(UdpSocket, RecvBuffer)> {
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if listen.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    if multicast.is_some() {
        // Several receivers of one group on one host, as with any
        // multicast receiver.
        socket.set_reuse_address(true)?;
    }
    let granted = grow_recv_buffer(&socket, recv_buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    if let Some(group) = multicast {
        join(&socket, group)?;
    }
    let socket = UdpSocket::from_std(socket.into())?;
    Ok((socket, granted))
}

fn grow_recv_buffer(socket: &Socket, asked: usize) -> RecvBuffer {
    // A failure here is not fatal: the socket works with a smaller buffer,
    // and the start-up log says what it got.
    socket.set_recv_buffer_size(asked).ok();
    let mut granted = socket.recv_buffer_size().unwrap_or(0);
    let mut forced = false;
    // Linux doubles the value asked for; below `asked` means `rmem_max`
    // capped it.
    if granted < asked && force_recv_buffer(socket, asked).is_ok() {
        granted = socket.recv_buffer_size().unwrap_or(granted);
        forced = true;
    }
    RecvBuffer {
        asked,
        granted,
        forced,
    }
}

/// `SO_RCVBUFFORCE` (socket(7)): past `net.core.rmem_max`, for a process
/// with CAP_NET_ADMIN.
fn force_recv_buffer(socket: &Socket, size: usize) -> nix::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::RcvBufForce, &size)
}

fn join(socket: &Socket, multicast: &Multicast) -> io::Result<()> {
    match multicast.group {
        IpAddr::V4(group) => {
            let interface = match multicast.interface {
                Some(IpAddr::V4(interface)) => interface,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            socket.join_multicast_v4(&group, &interface)
        }
        IpAddr::V6(group) => socket.join_multicast_v6(&group, 0),
    }
}

/// The kernel's `net.core.rmem_max`, for the log line that explains a
/// smaller buffer than asked.
pub fn rmem_max() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Receives datagrams into slices of one growing buffer.
#[derive(Debug)]
pub struct BatchReceiver {
    buffer: BytesMut,
    /// At most this many datagrams per [`BatchReceiver::recv`], so that one
    /// busy socket cannot hold its task forever.
    max_batch: usize,
}

impl BatchReceiver {
    pub fn new(max_batch: usize) -> BatchReceiver {
        BatchReceiver {
            buffer: BytesMut::with_capacity(CHUNK),
            max_batch: max_batch.max(1),
        }
    }

    fn reserve(&mut self) {
        if self.buffer.capacity() - self.buffer.len() < MAX_DATAGRAM {
            // Reclaims the old allocation when every slice of it is gone,
            // else starts a new one.
            self.buffer.reserve(CHUNK);
        }
    }

    /// Waits for at least one datagram, then takes every datagram already
    /// queued on the socket, up to the batch limit. Appends to `out`.
    pub async fn recv(
        &mut self,
        socket: &UdpSocket,
        out: &mut Vec<(Bytes, SocketAddr)>,
    ) -> io::Result<()> {
        self.reserve();
        let (n, from) = socket.recv_buf_from(&mut self.buffer).await?;
        out.push((self.buffer.split_to(n).freeze(), from));
        self.try_recv(socket, out)
    }

    /// Takes every datagram queued on the socket now, up to the batch
    /// limit, without waiting (after the socket was reported readable).
    /// Appends to `out`.
    pub fn try_recv(
        &mut self,
        socket: &UdpSocket,
        out: &mut Vec<(Bytes, SocketAddr)>,
    ) -> io::Result<()> {
        while out.len() < self.max_batch {
            self.reserve();
            match socket.try_recv_buf_from(&mut self.buffer) {
                Ok((n, from)) => out.push((self.buffer.split_to(n).freeze(), from)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_are_slices_of_one_buffer_and_never_truncated() {
        let (socket, granted) = bind("127.0.0.1:0".parse().unwrap(), 1 << 20, None).unwrap();
        assert!(granted.granted > 0);
        let to = socket.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let big = vec![0x47u8; 60_000];
        sender.send_to(&[1, 2, 3], to).unwrap();
        sender.send_to(&big, to).unwrap();
        sender.send_to(&[4], to).unwrap();
        let mut receiver = BatchReceiver::new(64);
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while out.len() < 3 {
            tokio::time::timeout_at(deadline, receiver.recv(&socket, &mut out))
                .await
                .expect("datagrams within 5 s")
                .unwrap();
        }
        let lens: Vec<usize> = out.iter().map(|(b, _)| b.len()).collect();
        assert_eq!(lens, [3, 60_000, 1]);
        assert_eq!(&out[0].0[..], &[1, 2, 3]);
        assert_eq!(out[2].0[..], [4]);
    }
}
