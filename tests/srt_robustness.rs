//! The SRT port under abuse (issue 3, point 2 "Robustness", and point 7):
//! each case runs against a running router while a good publisher (ffmpeg,
//! plain SRT) streams `live/good` to a file output. After each case:
//!
//! - the good stream's recording is whole and clean (every frame and IDR
//!   sent, 0 CC errors, monotonic PTS; the SRT tail tolerance at close);
//! - no srt-protocol panic was caught (`srt_panics() == 0`: the gate keeps
//!   every case here away from srt-protocol's panics);
//! - a fresh publisher (`live/after`) connects and is relayed whole.
//!
//! Cases: callers with the wrong crypto (rejected with the access-control
//! codes) and with every key length (accepted); 20,000 forged handshakes,
//! with the router's memory measured before and after; seeded random UDP
//! garbage; a publisher that stops sending without closing; players that
//! never read.

mod common;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Proc, SRT_TAIL_LOSS, TempDir, TestRouter, assert_relayed_reference, assert_relayed_within,
    ffmpeg_send, ffmpeg_send_file, ffmpeg_send_looped, looped_capture, probe_file, require,
    wait_until,
};
use switchyard::ingest::srt::{Role, craft};
use switchyard::probe::Report;

const SECRET: &str = "correct-horse-battery";

/// The router's peer idle timeout (`EndpointSettings::from_config`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// `[srt] handshake_timeout_ms` below.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

fn config(dir: &TempDir) -> String {
    let file = |name: &str| dir.path(name).display().to_string();
    let mut toml = format!(
        r#"
[srt]
accept_any_stream = false
latency_ms = 80
handshake_timeout_ms = {handshake}

[defaults]
profile = "passthrough"   # relayed as sent: compared with what was sent
# Small rings, so that the memory measurement sees the router, not the
# streams' history.
buffer = "1 MiB"
buffer_hard_cap = "2 MiB"

[[stream]]
id = "live/good"
  [[stream.output]]
  kind = "file"
  path = "{good}"

[[stream]]
id = "live/after"
  [[stream.output]]
  kind = "file"
  path = "{after}"

[[stream]]
id = "live/open"

[[stream]]
id = "live/stall"

[[stream]]
id = "live/secret"
passphrase = "{SECRET}"
"#,
        handshake = HANDSHAKE_TIMEOUT.as_millis(),
        good = file("good.ts"),
        after = file("after.ts"),
    );
    for keys in ["16", "24", "32", "none"] {
        toml.push_str(&format!(
            r#"
[[stream]]
id = "live/key{keys}"
passphrase = "{SECRET}"
  [[stream.output]]
  kind = "file"
  path = "{path}"
"#,
            path = file(&format!("key{keys}.ts")),
        ));
    }
    toml
}

fn srt_url(router: &TestRouter, query: &str) -> String {
    format!("srt://{}?{query}", router.srt)
}

/// A router with the good publisher streaming `live/good`.
struct Scene {
    case: &'static str,
    dir: TempDir,
    router: TestRouter,
    good: Proc,
    /// The probe of what the good publisher sends.
    sent: Report,
    started: Instant,
}

impl Scene {
    /// `plays`: how many times the good publisher plays the 4 s capture,
    /// long enough to outlast the case and the `live/after` publisher that
    /// follows it.
    fn start(case: &'static str, plays: u32) -> Scene {
        let dir = TempDir::new(case);
        let (source, sent) = looped_capture(&dir, plays);
        let router = TestRouter::start(&config(&dir));
        let url = srt_url(&router, "streamid=live/good&pkt_size=1316");
        let good = Proc::spawn(
            "good publisher",
            &mut ffmpeg_send_file("mpegts", &url, &source),
        );
        let started = Instant::now();
        assert!(
            router.wait_for_data("live/good", Duration::from_secs(10)),
            "{case}: the good publisher is not relayed"
        );
        Scene {
            case,
            dir,
            router,
            good,
            sent,
            started,
        }
    }

    /// The good publisher's SRT connection.
    fn good_conn(&self) -> Option<switchyard::ingest::srt::ConnId> {
        self.router
            .srt_connections()
            .iter()
            .find(|(_, s)| s.stream.as_str() == "live/good" && s.role == Role::Main)
            .map(|(conn, _)| *conn)
    }

    /// After the abuse: a fresh publisher to `live/after`, the good one to
    /// its end, then every check of the module docs. Returns the directory
    /// of the recordings (closed: the router is stopped).
    fn finish(mut self) -> TempDir {
        let case = self.case;
        let url = srt_url(&self.router, "streamid=live/after&pkt_size=1316");
        let mut after = Proc::spawn("after publisher", &mut ffmpeg_send("mpegts", &url));
        let status = after.wait_timeout(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "{case}: the fresh publisher failed: {status:?}"
        );
        if matches!(self.good.child.try_wait(), Ok(None)) {
            assert!(
                self.good_conn().is_some(),
                "{case}: the good publisher's connection is gone"
            );
        }
        let status = self.good.wait_timeout(Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| s.success()),
            "{case}: the good publisher failed: {status:?}"
        );
        eprintln!(
            "{case}: good publisher ran {:.1} s",
            self.started.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(1500));
        let panics = self.router.srt_panics();
        let counters = self.router.srt_counters();
        eprintln!("{case}: srt counters {counters:?}");
        assert_eq!(panics, 0, "{case}: srt-protocol panics");
        assert!(self.router.stop(), "{case}: shutdown within 5 s");
        assert_relayed_reference(
            &format!("{case}: good stream"),
            &probe_file(&self.dir.path("good.ts")),
            &self.sent,
            SRT_TAIL_LOSS,
        );
        assert_relayed_within(
            &format!("{case}: fresh publisher"),
            &probe_file(&self.dir.path("after.ts")),
            true,
            SRT_TAIL_LOSS,
        );
        self.dir
    }
}

/// Runs ffmpeg publishing the capture to `url` to its end, and returns its
/// exit success and what it printed on stderr.
fn publish_to_end(url: &str) -> (bool, String) {
    let mut command = ffmpeg_send("mpegts", url);
    command.stderr(Stdio::piped());
    let mut proc = Proc::spawn("ffmpeg", &mut command);
    let status = proc.wait_timeout(Duration::from_secs(20));
    let mut stderr = String::new();
    if let Some(mut pipe) = proc.child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status.is_some_and(|s| s.success()), stderr)
}

/// Encrypted caller to an open stream (1011), wrong passphrase (1010), and
/// every key length with the right passphrase, pbkeylen unset included
/// (accepted, relayed whole), all at once.
#[test]
fn crypto_mismatches_are_rejected_and_key_lengths_accepted() {
    if !require("ffmpeg") {
        return;
    }
    let scene = Scene::start("crypto", 3);
    let router = &scene.router;
    let mut callers = Vec::new();
    let cases = [
        (
            "encrypted caller to an open stream",
            format!("streamid=live/open&passphrase={SECRET}"),
        ),
        (
            "wrong passphrase",
            "streamid=live/secret&passphrase=not-the-secret".to_string(),
        ),
        (
            "pbkeylen 16",
            format!("streamid=live/key16&passphrase={SECRET}&pbkeylen=16"),
        ),
        (
            "pbkeylen 24",
            format!("streamid=live/key24&passphrase={SECRET}&pbkeylen=24"),
        ),
        (
            "pbkeylen 32",
            format!("streamid=live/key32&passphrase={SECRET}&pbkeylen=32"),
        ),
        (
            "no pbkeylen",
            format!("streamid=live/keynone&passphrase={SECRET}"),
        ),
    ];
    for (name, query) in cases {
        let url = srt_url(router, &format!("{query}&pkt_size=1316"));
        callers.push((name, std::thread::spawn(move || publish_to_end(&url))));
    }
    let mut outcomes = Vec::new();
    for (name, caller) in callers {
        let (ok, stderr) = caller.join().expect("caller thread");
        eprintln!(
            "crypto: {name}: success {ok}; ffmpeg said: {}",
            stderr.trim()
        );
        outcomes.push((name, ok));
    }
    let rejections = router.srt_rejections();
    eprintln!("crypto: the router's rejections by code: {rejections:?}");
    for (name, ok) in &outcomes {
        let should_connect = name.starts_with("pbkeylen") || *name == "no pbkeylen";
        assert_eq!(*ok, should_connect, "crypto: {name}");
    }
    assert_eq!(
        rejections.get(&1011),
        Some(&1),
        "crypto: 1011 unsecure: {rejections:?}"
    );
    assert_eq!(
        rejections.get(&1010),
        Some(&1),
        "crypto: 1010 bad secret: {rejections:?}"
    );
    assert_eq!(
        rejections.values().sum::<u64>(),
        2,
        "crypto: {rejections:?}"
    );
    let dir = scene.finish();
    for keys in ["16", "24", "32", "none"] {
        assert_relayed_within(
            &format!("crypto: key{keys}"),
            &probe_file(&dir.path(&format!("key{keys}.ts"))),
            true,
            SRT_TAIL_LOSS,
        );
    }
}

/// Reads the process's resident set size (the router runs in this process).
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// A seeded xorshift64*: random test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn flood_sockets(n: usize) -> Vec<UdpSocket> {
    (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect()
}

/// Sends without overrunning the router's socket buffer on this 2-core
/// machine: a short pause every `burst` datagrams.
fn send_all(sockets: &[UdpSocket], to: SocketAddr, datagrams: impl Iterator<Item = Vec<u8>>) {
    for (at, datagram) in datagrams.enumerate() {
        let socket = &sockets[at % sockets.len()];
        let _ = socket.send_to(&datagram, to);
        if at % 500 == 499 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// 20,000 forged handshakes (10,000 inductions, 10,000 conclusions with
/// bogus cookies) from 16 source ports: no state is kept, so the router's
/// memory stays within 10 MB of its baseline, measured at once and again
/// several seconds later.
#[test]
fn forged_handshake_flood() {
    if !require("ffmpeg") {
        return;
    }
    let scene = Scene::start("flood", 3);
    let router = &scene.router;
    std::thread::sleep(Duration::from_secs(1));
    let baseline = rss_kb();
    let before = router.srt_counters();
    let sockets = flood_sockets(16);
    let mut rng = Rng(0x5EED_F100D);
    let forged = (0..20_000u32).map(|n| {
        let socket_id = (rng.next() as u32) & 0x3FFF_FFFF;
        if n % 2 == 0 {
            craft::induction(socket_id)
        } else {
            craft::Conclusion::new(socket_id, rng.next() as i32)
                .stream_id("live/good")
                .build()
        }
    });
    let flood_start = Instant::now();
    send_all(&sockets, router.srt, forged);
    let sent_in = flood_start.elapsed();
    // Every forged datagram is counted (the counters are published each
    // second), unless the kernel dropped some.
    let handled = wait_until(Duration::from_secs(5), || {
        router.srt_counters().datagrams >= before.datagrams + 20_000
    });
    let after = router.srt_counters();
    let flooded = rss_kb();
    eprintln!(
        "flood: sent in {sent_in:?}; router handled {} datagrams ({} inductions, {} bad cookies) \
         {}; RSS baseline {baseline} kB, after the flood {flooded} kB (+{} kB)",
        after.datagrams - before.datagrams,
        after.inductions - before.inductions,
        after.discarded("bad_cookie") - before.discarded("bad_cookie"),
        if handled {
            "(all)"
        } else {
            "(the kernel dropped some)"
        },
        flooded.saturating_sub(baseline),
    );
    assert_eq!(
        after.inductions - before.inductions,
        10_000,
        "flood: every induction answered"
    );
    assert_eq!(
        after.accepted, before.accepted,
        "flood: no forged conclusion accepted"
    );
    assert!(
        flooded <= baseline + 10 * 1024,
        "flood: RSS {flooded} kB after the flood, baseline {baseline} kB"
    );
    // The good stream keeps its connection, and the table holds no
    // half-open handshake.
    assert_eq!(
        router.srt_connections().len(),
        1,
        "flood: {:?}",
        router.srt_connections()
    );
    std::thread::sleep(Duration::from_secs(4));
    let later = rss_kb();
    eprintln!(
        "flood: RSS 4 s later {later} kB (+{} kB)",
        later.saturating_sub(baseline)
    );
    assert!(
        later <= baseline + 10 * 1024,
        "flood: RSS {later} kB 4 s after the flood, baseline {baseline} kB"
    );
    scene.finish();
}

/// 5,000 seeded random datagrams of 0–1500 bytes: a third pure noise, a
/// third shaped as SRT control packets (handshakes among them), a third as
/// SRT data and control packets addressed to the good publisher's real
/// connection from a wrong peer.
#[test]
fn random_udp_garbage() {
    if !require("ffmpeg") {
        return;
    }
    let scene = Scene::start("garbage", 2);
    let router = &scene.router;
    let good = wait_until(Duration::from_secs(3), || scene.good_conn().is_some());
    assert!(good, "garbage: the good publisher's connection is listed");
    let conn = scene.good_conn().expect("listed").0;
    let before = router.srt_counters();
    let mut rng = Rng(0x6A5B_A6E5);
    let garbage: Vec<Vec<u8>> = (0..5_000u32)
        .map(|n| {
            let len = rng.below(1501) as usize;
            let mut datagram: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match (n % 3, datagram.len()) {
                (1, 16..) => {
                    // A control packet; every fourth a handshake.
                    datagram[0] |= 0x80;
                    if n % 4 == 0 {
                        datagram[..4].copy_from_slice(&0x8000_0000u32.to_be_bytes());
                        datagram[12..16].copy_from_slice(&0u32.to_be_bytes());
                    }
                }
                (2, 16..) => {
                    datagram[12..16].copy_from_slice(&conn.to_be_bytes());
                }
                _ => {}
            }
            datagram
        })
        .collect();
    send_all(&flood_sockets(4), router.srt, garbage.into_iter());
    let handled = wait_until(Duration::from_secs(5), || {
        router.srt_counters().datagrams >= before.datagrams + 5_000
    });
    let after = router.srt_counters();
    eprintln!(
        "garbage: router handled {} datagrams{}; discards {:?}",
        after.datagrams - before.datagrams,
        if handled {
            ""
        } else {
            " (the kernel dropped some)"
        },
        after.discards
    );
    assert_eq!(after.accepted, before.accepted, "garbage: nothing accepted");
    scene.finish();
}

/// A publisher (ffmpeg, `live/stall`) SIGSTOPped mid-stream: the router
/// closes it by the peer idle timeout while the good stream flows.
#[test]
fn publisher_that_stops_sending() {
    if !require("ffmpeg") {
        return;
    }
    let scene = Scene::start("stall", 4);
    let router = &scene.router;
    let url = srt_url(router, "streamid=live/stall&pkt_size=1316");
    let staller = Proc::spawn(
        "stalling publisher",
        &mut ffmpeg_send_looped("mpegts", &url, 3),
    );
    assert!(router.wait_for_data("live/stall", Duration::from_secs(10)));
    let listed = |router: &TestRouter| {
        router
            .srt_connections()
            .iter()
            .any(|(_, s)| s.stream.as_str() == "live/stall")
    };
    assert!(wait_until(Duration::from_secs(3), || listed(router)));
    staller.signal("STOP");
    let stopped = Instant::now();
    let closed = wait_until(IDLE_TIMEOUT + Duration::from_secs(3), || !listed(router));
    let took = stopped.elapsed();
    eprintln!("stall: the stopped publisher was closed after {took:?}");
    assert!(
        closed,
        "stall: the stopped publisher is still connected after {took:?}"
    );
    assert!(
        took >= IDLE_TIMEOUT - Duration::from_millis(500),
        "stall: closed too early: {took:?}"
    );
    drop(staller);
    scene.finish();
}

/// Completes an SRT handshake by hand as a player of `stream`, then never
/// sends or reads anything. Returns the socket (keep it open) and the
/// router's socket id for it.
fn silent_player(router: SocketAddr, stream: &str) -> (UdpSocket, u32) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let word = |d: &[u8], at: usize| u32::from_be_bytes(d[at..at + 4].try_into().expect("4 bytes"));
    let our_id = 0x0123_4567;
    socket
        .send_to(&craft::induction(our_id), router)
        .expect("send the induction");
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).expect("the induction reply");
    assert!(n >= 64, "an induction reply");
    let cookie = word(&buf, 44) as i32;
    let conclusion = craft::Conclusion::new(our_id, cookie)
        .stream_id(&format!("#!::r={stream},m=request"))
        .build();
    socket
        .send_to(&conclusion, router)
        .expect("send the conclusion");
    loop {
        let n = socket.recv(&mut buf).expect("the conclusion reply");
        // Control packet, type 0 (handshake), type field -1 (conclusion).
        if n >= 64 && word(&buf, 0) == 0x8000_0000 {
            let ty = word(&buf, 36) as i32;
            assert_eq!(ty, -1, "silent player: handshake answered with {ty}");
            return (socket, word(&buf, 40));
        }
    }
}

/// Players (`m=request`) of the good stream that never read: an
/// srt-live-transmit SIGSTOPped after connecting, and a raw caller that
/// completes the handshake and stays silent. The router closes both (idle
/// timeout, handshake timeout) and the good stream is untouched.
#[test]
fn players_that_never_read() {
    if !require("ffmpeg") || !require("srt-live-transmit") {
        return;
    }
    let scene = Scene::start("players", 4);
    let router = &scene.router;
    let player = Proc::spawn(
        "srt-live-transmit player",
        Command::new("srt-live-transmit")
            .arg("-q")
            .arg(srt_url(router, "streamid=#!::r=live/good,m=request"))
            .arg("file://con")
            .stdout(Stdio::null()),
    );
    let players = |router: &TestRouter| -> Vec<u32> {
        router
            .srt_connections()
            .iter()
            .filter(|(_, s)| s.role == Role::Player)
            .map(|(c, _)| c.0)
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(5), || players(router).len() == 1),
        "players: srt-live-transmit connected"
    );
    // Let it receive a little, then freeze it with its socket open.
    std::thread::sleep(Duration::from_millis(500));
    player.signal("STOP");
    let (_socket, silent_id) = silent_player(router.srt, "live/good");
    let stopped = Instant::now();
    assert!(
        wait_until(Duration::from_secs(3), || players(router)
            .contains(&silent_id)),
        "players: the silent player is connected"
    );
    let silent_closed = wait_until(HANDSHAKE_TIMEOUT + Duration::from_secs(3), || {
        !players(router).contains(&silent_id)
    });
    eprintln!(
        "players: the silent raw player was closed after {:?}",
        stopped.elapsed()
    );
    assert!(
        silent_closed,
        "players: the silent player is still connected"
    );
    let all_closed = wait_until(IDLE_TIMEOUT + Duration::from_secs(3), || {
        players(router).is_empty()
    });
    eprintln!(
        "players: the stopped srt-live-transmit was closed after {:?}",
        stopped.elapsed()
    );
    assert!(all_closed, "players: {:?} still connected", players(router));
    drop(player);
    scene.finish();
}
