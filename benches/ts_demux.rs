//! Demux throughput on committed captures, against `mpeg2ts-reader` doing
//! the same work in the same run.
//!
//! Each case takes a capture from `testdata/` and feeds it in 1316-byte
//! chunks (7 packets, one SRT/UDP datagram, the size ingest sees) to a
//! fresh demuxer; building the demuxer is outside the timing.
//!
//! - `switchyard`: [`StreamDemux`] — resync, packet parse, continuity, PSI,
//!   PES headers, NAL splice-point scan — with a handler that counts PES
//!   starts, access units and IDRs and sums PTS values.
//! - `mpeg2ts-reader`: its `Demultiplex` with the stock PAT/PMT filters and a
//!   `PesPacketFilter` per elementary stream whose consumer reads PTS/DTS and
//!   runs our [`NalScanner`] over each PES payload up to the first VCL NAL,
//!   exactly as much as our demux scans, so the two differ only in the demux.
//! - `packets_only`: resync, packet parse and continuity check, the floor
//!   under both.
//!
//! Before timing, each case runs once and the tallies are checked: non-zero,
//! and the peer finding the same PES packets, access units, IDRs and PTS sum.
//!
//! Run with `cargo bench --bench ts_demux`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mpeg2ts_reader::demultiplex::{self, DemuxContext, FilterChangeset, FilterRequest};
use mpeg2ts_reader::{StreamType, packet_filter_switch, pes, psi};
use switchyard::ts::PACKET_SIZE;
use switchyard::ts::TsPacket;
use switchyard::ts::continuity::CcTracker;
use switchyard::ts::demux::{AccessUnit, DemuxHandler, PesStart, StreamDemux};
use switchyard::ts::nal::{AccessUnitInfo, NalScanner, PictureKind, VideoCodec};
use switchyard::ts::resync::Resync;

/// One SRT/UDP datagram's worth of packets.
const CHUNK: usize = 7 * PACKET_SIZE;

const CAPTURES: &[&str] = &["h264_aac_closed_gop.ts", "hevc_aac_closed_gop.ts"];

/// What a demuxer found; compared between the two implementations.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    pes: u64,
    access_units: u64,
    idrs: u64,
    /// Wrapping sum of every PES start's PTS ticks.
    pts_sum: u64,
}

impl Tally {
    fn pts(&mut self, ticks: u64) {
        self.pts_sum = self.pts_sum.wrapping_add(ticks);
    }

    fn access_unit(&mut self, info: &AccessUnitInfo) {
        self.access_units += 1;
        if info.picture == PictureKind::Idr {
            self.idrs += 1;
        }
    }
}

impl DemuxHandler for Tally {
    fn on_pes(&mut self, pes: &PesStart) {
        self.pes += 1;
        if let Some(pts) = pes.header.pts {
            self.pts(pts.ticks());
        }
    }

    fn on_access_unit(&mut self, au: &AccessUnit) {
        self.access_unit(&au.info);
    }
}

fn switchyard_demux(data: &[u8], demux: &mut StreamDemux) -> Tally {
    let mut tally = Tally::default();
    for chunk in data.chunks(CHUNK) {
        demux.push(black_box(chunk), &mut tally);
    }
    demux.finish(&mut tally);
    tally
}

// --- mpeg2ts-reader peer -------------------------------------------------

packet_filter_switch! {
    PeerFilter<PeerCtx> {
        Pat: demultiplex::PatPacketFilter<PeerCtx>,
        Pmt: demultiplex::PmtPacketFilter<PeerCtx>,
        Null: demultiplex::NullPacketFilter<PeerCtx>,
        Es: pes::PesPacketFilter<PeerCtx, PeerEs>,
    }
}

/// Like `demux_context!`, plus the tally the consumers write to. (`pub`
/// because the `packet_filter_switch!` enum is.)
pub struct PeerCtx {
    changeset: FilterChangeset<PeerFilter>,
    tally: Tally,
}

impl PeerCtx {
    fn new() -> PeerCtx {
        PeerCtx {
            changeset: FilterChangeset::default(),
            tally: Tally::default(),
        }
    }
}

impl std::fmt::Debug for PeerCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCtx")
            .field("tally", &self.tally)
            .finish()
    }
}

impl DemuxContext for PeerCtx {
    type F = PeerFilter;

    fn filter_changeset(&mut self) -> &mut FilterChangeset<PeerFilter> {
        &mut self.changeset
    }

    fn construct(&mut self, req: FilterRequest<'_, '_>) -> PeerFilter {
        match req {
            FilterRequest::ByPid(psi::pat::PAT_PID) => {
                PeerFilter::Pat(demultiplex::PatPacketFilter::default())
            }
            FilterRequest::ByPid(_) | FilterRequest::Nit { .. } => {
                PeerFilter::Null(demultiplex::NullPacketFilter::default())
            }
            FilterRequest::Pmt {
                pid,
                program_number,
            } => PeerFilter::Pmt(demultiplex::PmtPacketFilter::new(pid, program_number)),
            FilterRequest::ByStream { stream_type, .. } => {
                // Our demux tracks every PMT stream and scans H.264/HEVC.
                let codec = match stream_type {
                    StreamType::H264 => Some(VideoCodec::H264),
                    StreamType::H265 => Some(VideoCodec::Hevc),
                    _ => None,
                };
                PeerFilter::Es(pes::PesPacketFilter::new(PeerEs {
                    scanner: codec.map(NalScanner::new),
                    scanning: false,
                }))
            }
        }
    }
}

/// Reads PES headers and scans video PES payloads like our `EsState`.
#[derive(Debug)]
pub struct PeerEs {
    scanner: Option<NalScanner>,
    /// The current PES packet's access unit is not decided yet.
    scanning: bool,
}

impl pes::ElementaryStreamConsumer<PeerCtx> for PeerEs {
    fn start_stream(&mut self, _ctx: &mut PeerCtx) {}

    fn begin_packet(&mut self, ctx: &mut PeerCtx, header: pes::PesHeader<'_>) {
        self.scanning = false;
        let pes::PesContents::Parsed(Some(parsed)) = header.contents() else {
            return;
        };
        ctx.tally.pes += 1;
        if let Ok(pes::PtsDts::PtsOnly(Ok(pts)) | pes::PtsDts::Both { pts: Ok(pts), .. }) =
            parsed.pts_dts()
        {
            ctx.tally.pts(pts.value());
        }
        if let Some(scanner) = &mut self.scanner {
            scanner.start();
            self.scanning = true;
            if let Some(info) = scanner.push(parsed.payload()) {
                self.scanning = false;
                ctx.tally.access_unit(&info);
            }
        }
    }

    fn continue_packet(&mut self, ctx: &mut PeerCtx, data: &[u8]) {
        if !self.scanning {
            return;
        }
        if let Some(info) = self.scanner.as_mut().and_then(|s| s.push(data)) {
            self.scanning = false;
            ctx.tally.access_unit(&info);
        }
    }

    fn end_packet(&mut self, ctx: &mut PeerCtx) {
        if !std::mem::take(&mut self.scanning) {
            return;
        }
        if let Some(info) = self.scanner.as_mut().and_then(NalScanner::finish) {
            ctx.tally.access_unit(&info);
        }
    }

    fn continuity_error(&mut self, _ctx: &mut PeerCtx) {}
}

/// A fresh peer demuxer: `Demultiplex::new` registers the PAT filter
/// through the context.
fn peer_new() -> (PeerCtx, demultiplex::Demultiplex<PeerCtx>) {
    let mut ctx = PeerCtx::new();
    let demux = demultiplex::Demultiplex::new(&mut ctx);
    (ctx, demux)
}

fn peer_demux(
    data: &[u8],
    (ctx, demux): &mut (PeerCtx, demultiplex::Demultiplex<PeerCtx>),
) -> Tally {
    for chunk in data.chunks(CHUNK) {
        demux.push(ctx, black_box(chunk));
    }
    std::mem::take(&mut ctx.tally)
}

// --- floor: packets only -------------------------------------------------

/// Resync, packet parse and continuity check; returns a checksum.
fn packets_only(data: &[u8], (resync, cc): &mut (Resync, CcTracker)) -> u64 {
    let mut sum = 0u64;
    for chunk in data.chunks(CHUNK) {
        resync.push(black_box(chunk), |bytes, _| {
            if let Ok(packet) = TsPacket::from_array(bytes) {
                let continuity = cc.check(&packet);
                sum = sum
                    .wrapping_add(u64::from(packet.pid().value()))
                    .wrapping_add(packet.payload().len() as u64)
                    .wrapping_add(u64::from(continuity.is_error()));
            }
        });
    }
    resync.finish(|_, _| {});
    sum
}

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn ts_demux(c: &mut Criterion) {
    let mut group = c.benchmark_group("ts_demux");
    for &name in CAPTURES {
        let data = load(name);
        let ours = switchyard_demux(&data, &mut StreamDemux::new());
        let peer = peer_demux(&data, &mut peer_new());
        assert!(
            ours.pes > 0 && ours.access_units > 0 && ours.idrs > 0 && ours.pts_sum > 0,
            "{name}: switchyard found {ours:?}"
        );
        assert_eq!(ours, peer, "{name}: switchyard vs mpeg2ts-reader");
        eprintln!("{name}: {} bytes, {ours:?}", data.len());

        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(format!("switchyard/{name}"), |b| {
            b.iter_batched_ref(
                StreamDemux::new,
                |demux| black_box(switchyard_demux(&data, demux)),
                BatchSize::SmallInput,
            );
        });
        group.bench_function(format!("mpeg2ts-reader/{name}"), |b| {
            b.iter_batched_ref(
                peer_new,
                |peer| black_box(peer_demux(&data, peer)),
                BatchSize::SmallInput,
            );
        });
        group.bench_function(format!("packets_only/{name}"), |b| {
            b.iter_batched_ref(
                || (Resync::new(), CcTracker::new()),
                |state| black_box(packets_only(&data, state)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, ts_demux);
criterion_main!(benches);
