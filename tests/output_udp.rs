//! The UDP output (`output::udp`): 7 TS packets per datagram with the
//! batch's remainder in a shorter one, every byte delivered on loopback
//! unicast, send errors counted without ending the task, and multicast on
//! loopback where the kernel allows it.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use common::{capture_packets, free_udp_port, offer};
use socket2::{Domain, Protocol, Socket, Type};
use switchyard::config::{Backoff, StreamId};
use switchyard::output::{self, OutputState, OutputStats, UdpTarget};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};
use tokio_util::sync::CancellationToken;

struct Running {
    tx: output::FeedSender,
    shutdown: CancellationToken,
    stats: Arc<OutputStats>,
    task: JoinHandle<()>,
}

fn start(target: UdpTarget) -> Running {
    let (tx, feed) = output::feed();
    let shutdown = CancellationToken::new();
    let stats = Arc::new(OutputStats::default());
    let task = tokio::spawn(output::udp::run(
        StreamId::new("out/udp").expect("id"),
        target,
        Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        feed,
        shutdown.clone(),
        stats.clone(),
    ));
    Running {
        tx,
        shutdown,
        stats,
        task,
    }
}

async fn stop(r: Running) -> Arc<OutputStats> {
    r.shutdown.cancel();
    timeout(Duration::from_secs(3), r.task)
        .await
        .expect("stops within 3 s")
        .expect("task");
    assert_eq!(r.stats.state(), OutputState::Stopped);
    r.stats
}

/// Datagram sizes and bytes received until `want` bytes or 3 s.
fn receive(socket: &UdpSocket, want: usize) -> (Vec<usize>, Vec<u8>) {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut sizes = Vec::new();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while bytes.len() < want && std::time::Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            sizes.push(n);
            bytes.extend_from_slice(&buf[..n]);
        }
    }
    (sizes, bytes)
}

fn big_receiver(addr: SocketAddr) -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into()).expect("bind receiver");
    s.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_output_sends_seven_packets_per_datagram() {
    let receiver = big_receiver(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let address = receiver.local_addr().expect("addr");
    let r = start(UdpTarget {
        address,
        ttl: Some(8),
        multicast_interface: None,
    });
    let packets = capture_packets();
    offer(&r.tx, packets[..23].to_vec()).await;
    let (sizes, bytes) = tokio::task::spawn_blocking({
        let receiver = receiver.try_clone().expect("clone");
        move || receive(&receiver, 23 * 188)
    })
    .await
    .expect("receiver");
    assert_eq!(
        sizes,
        [1316, 1316, 1316, 376],
        "7, 7, 7, then the batch's 2"
    );
    assert!(bytes == packets[..23].concat());

    // The whole capture, in batches of 50, arrives byte for byte.
    let rest = packets[23..].to_vec();
    let want = rest.len() * 188;
    let rx = tokio::task::spawn_blocking(move || receive(&receiver, want));
    for batch in rest.chunks(50) {
        offer(&r.tx, batch.to_vec()).await;
        sleep(Duration::from_millis(1)).await;
    }
    let (sizes, bytes) = rx.await.expect("receiver");
    assert!(
        bytes == rest.concat(),
        "got {} of {want} bytes",
        bytes.len()
    );
    assert!(sizes.iter().all(|&s| s % 188 == 0 && s <= 1316));
    let stats = stop(r).await;
    let s = stats.snapshot();
    assert_eq!(s.packets_sent as usize, packets.len());
    assert_eq!((s.packets_dropped, s.send_errors, s.sessions), (0, 0, 1));
}

#[tokio::test]
async fn udp_output_counts_send_errors_and_keeps_going() {
    // A loopback port nobody listens on: the kernel answers with ICMP port
    // unreachable, reported as ECONNREFUSED on the next send.
    let port = free_udp_port();
    let r = start(UdpTarget {
        address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        ttl: None,
        multicast_interface: None,
    });
    let packets = capture_packets();
    for batch in packets.chunks(14) {
        offer(&r.tx, batch.to_vec()).await;
        sleep(Duration::from_millis(1)).await;
    }
    sleep(Duration::from_millis(50)).await;
    assert_eq!(r.stats.state(), OutputState::Connected);
    let stats = stop(r).await;
    let s = stats.snapshot();
    assert!(s.send_errors > 0, "{s:?}");
    assert_eq!(
        (s.packets_sent + s.packets_dropped) as usize,
        packets.len(),
        "{s:?}"
    );
    assert_eq!(s.failures, 0, "alternating errors never end the session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_output_multicast_on_loopback() {
    let group = Ipv4Addr::new(239, 255, 42, 99);
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    socket.set_reuse_address(true).expect("reuse");
    if let Err(e) = socket.bind(&SocketAddr::from((group, 0)).into()) {
        eprintln!("skipped: cannot bind a multicast receiver: {e}");
        return;
    }
    let port = socket
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet")
        .port();
    if let Err(e) = socket.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST) {
        eprintln!("skipped: the kernel refuses to join {group} on 127.0.0.1: {e}");
        return;
    }
    let receiver: UdpSocket = socket.into();
    let r = start(UdpTarget {
        address: SocketAddr::from((group, port)),
        ttl: Some(1),
        multicast_interface: Some(Ipv4Addr::LOCALHOST.into()),
    });
    let packets = capture_packets();
    let rx = tokio::task::spawn_blocking(move || receive(&receiver, 70 * 188));
    // Give the output a moment to set up, then send.
    sleep(Duration::from_millis(50)).await;
    if r.stats.state() != OutputState::Connected {
        let s = r.stats.snapshot();
        stop(r).await;
        eprintln!(
            "skipped: the kernel refuses multicast on 127.0.0.1: {:?}",
            s.last_error
        );
        return;
    }
    offer(&r.tx, packets[..70].to_vec()).await;
    let (sizes, bytes) = rx.await.expect("receiver");
    let stats = stop(r).await;
    if bytes.is_empty() {
        eprintln!(
            "skipped: nothing looped back on 127.0.0.1 (stats {:?})",
            stats.snapshot()
        );
        return;
    }
    assert_eq!(sizes, vec![1316; 10]);
    assert!(bytes == packets[..70].concat());
}

fn direct(target: UdpTarget) -> (output::udp::DirectUdp, Arc<OutputStats>) {
    let stats = Arc::new(OutputStats::default());
    let out = output::udp::DirectUdp::new(
        StreamId::new("out/direct").expect("id"),
        target,
        Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        stats.clone(),
    );
    (out, stats)
}

#[tokio::test]
async fn direct_udp_output_sends_seven_packets_per_datagram_from_the_callers_task() {
    use output::udp::Delivery;
    let receiver = big_receiver(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let (mut out, stats) = direct(UdpTarget {
        address: receiver.local_addr().expect("addr"),
        ttl: None,
        multicast_interface: None,
    });
    assert_eq!(stats.state(), OutputState::Connecting);
    let packets = capture_packets();
    // Before the socket is open, packets are dropped and counted, and the
    // first session then asks to start at a splice point.
    assert_eq!(out.send(packets[..3].to_vec()), Delivery::Done);
    out.poll(tokio::time::Instant::now());
    assert_eq!(stats.state(), OutputState::Connected);
    assert!(out.take_rejoin(), "packets were dropped before the session");
    assert!(!out.take_rejoin(), "asked once");

    assert_eq!(out.send(packets[..23].to_vec()), Delivery::Done);
    let (sizes, bytes) = receive(&receiver, 23 * 188);
    assert_eq!(sizes, [1316, 1316, 1316, 376]);
    assert!(bytes == packets[..23].concat());
    for batch in packets[23..].chunks(64) {
        assert_eq!(out.send(batch.to_vec()), Delivery::Done);
    }
    let (_, bytes) = receive(&receiver, (packets.len() - 23) * 188);
    assert!(bytes == packets[23..].concat(), "every byte, in order");
    drop(out);
    let s = stats.snapshot();
    assert_eq!(s.state, OutputState::Stopped);
    assert_eq!(s.packets_sent as usize, packets.len());
    assert_eq!((s.packets_dropped, s.send_errors, s.sessions), (3, 0, 1));
}

#[tokio::test]
async fn direct_udp_output_that_cannot_open_retries_with_backoff_and_drops_meanwhile() {
    use output::udp::Delivery;
    // IP_MULTICAST_IF to an address this host does not have (TEST-NET-1)
    // fails: the output is down.
    let (mut out, stats) = direct(UdpTarget {
        address: SocketAddr::from((Ipv4Addr::new(239, 255, 77, 1), 5000)),
        ttl: None,
        multicast_interface: Some(Ipv4Addr::new(192, 0, 2, 1).into()),
    });
    let t0 = tokio::time::Instant::now();
    out.poll(t0);
    let s = stats.snapshot();
    assert_eq!((s.state, s.failures), (OutputState::Retrying, 1), "{s:?}");
    assert!(s.last_error.is_some_and(|e| e.contains("IP_MULTICAST_IF")));
    let packets = capture_packets();
    assert_eq!(out.send(packets[..10].to_vec()), Delivery::Done);
    assert_eq!(stats.snapshot().packets_dropped, 10);
    out.poll(t0 + Duration::from_millis(10));
    assert_eq!(
        stats.snapshot().failures,
        1,
        "no attempt before the backoff"
    );
    out.poll(t0 + Duration::from_secs(1));
    assert_eq!(stats.snapshot().failures, 2, "a new attempt after it");
}
