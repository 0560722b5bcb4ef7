//! Checks across the whole file: things that must be unique.
//!
//! - stream ids;
//! - UDP ports we receive on (the SRT listener and every input): two
//!   sockets whose addresses overlap would split or steal each other's
//!   datagrams ([`binds_overlap`]);
//! - UDP output destinations: two streams sent to one address interleave
//!   into a corrupt multiplex;
//! - file output paths: two writers would corrupt one recording;
//! - SRT output destinations (host, port and streamid): the receiver
//!   would see two publishers for one stream.
//!
//! Each claim is checked as it is made, so the error lands on the second
//! occurrence and names the first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use super::error::ErrorKind;
use super::output::OutputKind;
use super::reader::{Field, Report, binds_overlap};
use super::stream_id::StreamId;

/// Where something was first claimed.
#[derive(Debug, Clone)]
struct Claim {
    path: String,
    span: Option<Range<usize>>,
}

impl Claim {
    fn of(field: &Field<'_>) -> Claim {
        Claim {
            path: field.path.clone(),
            span: field.span.clone(),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Claims {
    stream_ids: HashMap<StreamId, Claim>,
    udp_binds: Vec<(SocketAddr, Claim)>,
    udp_destinations: HashMap<SocketAddr, Claim>,
    files: HashMap<PathBuf, Claim>,
    srt_destinations: HashMap<(String, u16, Option<String>), Claim>,
}

fn conflict(field: &Field<'_>, first: &Claim, report: &mut Report<'_>, what: String) {
    let place = match &first.span {
        Some(span) => format!("line {}", report.line_of(Some(span))),
        None => "its default".to_string(),
    };
    field.error(
        report,
        ErrorKind::Conflict,
        format!("{what} {} ({place}) already", first.path),
    );
}

impl Claims {
    pub(super) fn stream_id(&mut self, id: &StreamId, field: &Field<'_>, report: &mut Report<'_>) {
        match self.stream_ids.get(id) {
            Some(first) => conflict(
                field,
                first,
                report,
                format!("stream ids must be unique, and `{id}` is used by"),
            ),
            None => {
                self.stream_ids.insert(id.clone(), Claim::of(field));
            }
        }
    }

    /// A local UDP address taken by a default value, not written in the file.
    pub(super) fn default_udp_bind(&mut self, addr: SocketAddr, path: &str) {
        self.udp_binds.push((
            addr,
            Claim {
                path: path.to_string(),
                span: None,
            },
        ));
    }

    /// A local UDP address switchyard receives on.
    pub(super) fn udp_bind(
        &mut self,
        addr: SocketAddr,
        field: &Field<'_>,
        report: &mut Report<'_>,
    ) {
        if let Some((other, first)) = self
            .udp_binds
            .iter()
            .find(|(other, _)| binds_overlap(addr, *other))
        {
            let first = first.clone();
            conflict(
                field,
                &first,
                report,
                format!(
                    "two sockets cannot receive on one UDP port: {addr} overlaps {other}, which is bound by"
                ),
            );
            return;
        }
        self.udp_binds.push((addr, Claim::of(field)));
    }

    pub(super) fn output(&mut self, kind: &OutputKind, field: &Field<'_>, report: &mut Report<'_>) {
        let (first, what) = match kind {
            OutputKind::Udp { address, .. } => (
                self.udp_destinations.get(address),
                format!(
                    "two outputs sending to {address} would interleave into one corrupt stream; it is the destination of"
                ),
            ),
            OutputKind::File { path } => (
                self.files.get(path),
                format!(
                    "two outputs writing {} would corrupt the recording; it is written by",
                    path.display()
                ),
            ),
            OutputKind::Srt(url) => (
                self.srt_destinations
                    .get(&(url.host.clone(), url.port, url.stream_id.clone())),
                format!(
                    "two outputs publishing the same stream id to {}:{} would conflict at the receiver; it is pushed by",
                    url.host, url.port
                ),
            ),
        };
        if let Some(first) = first {
            let first = first.clone();
            conflict(field, &first, report, what);
            return;
        }
        let claim = Claim::of(field);
        match kind {
            OutputKind::Udp { address, .. } => {
                self.udp_destinations.insert(*address, claim);
            }
            OutputKind::File { path } => {
                self.files.insert(path.clone(), claim);
            }
            OutputKind::Srt(url) => {
                self.srt_destinations
                    .insert((url.host.clone(), url.port, url.stream_id.clone()), claim);
            }
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::super::testing::{assert_one_error, config};
    use super::*;

    #[test]
    fn duplicate_stream_ids() {
        assert_one_error(
            "[[stream]]\nid = \"a\"\n[[stream]]\nid = \"b\"\n[[stream]]\nid = \"a\"\n",
            "stream[2].id",
            (6, 6),
            ErrorKind::Conflict,
            "stream ids must be unique, and `a` is used by stream[0].id (line 2) already",
        );
    }

    fn udp_input(stream: &str, listen: &str) -> String {
        format!(
            "[[stream]]\nid = \"{stream}\"\n[[stream.input]]\nkind = \"udp\"\nlisten = \"{listen}\"\n"
        )
    }

    #[test]
    fn inputs_must_not_share_a_port() {
        let text = format!(
            "{}{}",
            udp_input("a", "0.0.0.0:5000"),
            udp_input("b", "10.0.0.1:5000")
        );
        assert_one_error(
            &text,
            "stream[1].input[0].listen",
            (10, 10),
            ErrorKind::Conflict,
            "two sockets cannot receive on one UDP port: 10.0.0.1:5000 overlaps 0.0.0.0:5000, which is bound by stream[0].input[0].listen (line 5) already",
        );
        // Different ports, or different specific addresses, are fine.
        config(&format!(
            "{}{}",
            udp_input("a", "0.0.0.0:5000"),
            udp_input("b", "0.0.0.0:5001")
        ));
        config(&format!(
            "{}{}",
            udp_input("a", "10.0.0.1:5000"),
            udp_input("b", "10.0.0.2:5000")
        ));
    }

    #[test]
    fn inputs_must_not_take_the_srt_port() {
        assert_one_error(
            &udp_input("a", "[::]:9000"),
            "stream[0].input[0].listen",
            (5, 10),
            ErrorKind::Conflict,
            "overlaps 0.0.0.0:9000, which is bound by srt.listen (its default) already",
        );
        config(&format!(
            "[srt]\nlisten = \"0.0.0.0:9001\"\n{}",
            udp_input("a", "0.0.0.0:9000")
        ));
        assert_one_error(
            &format!(
                "[srt]\nlisten = \"0.0.0.0:5000\"\n{}",
                udp_input("a", "127.0.0.1:5000")
            ),
            "stream[0].input[0].listen",
            (7, 10),
            ErrorKind::Conflict,
            "bound by srt.listen (line 2) already",
        );
    }

    fn output(stream: &str, body: &str) -> String {
        format!("[[stream]]\nid = \"{stream}\"\n[[stream.output]]\n{body}\n")
    }

    #[test]
    fn outputs_must_not_share_a_destination() {
        let udp = "kind = \"udp\"\naddress = \"239.1.1.2:1234\"";
        assert_one_error(
            &format!("{}{}", output("a", udp), output("b", udp)),
            "stream[1].output[0].address",
            (10, 11),
            ErrorKind::Conflict,
            "two outputs sending to 239.1.1.2:1234 would interleave into one corrupt stream; it is the destination of stream[0].output[0].address (line 5) already",
        );
        let file = "kind = \"file\"\npath = \"rec/a.ts\"";
        assert_one_error(
            &format!("{}{}", output("a", file), output("b", file)),
            "stream[1].output[0].path",
            (10, 8),
            ErrorKind::Conflict,
            "two outputs writing rec/a.ts would corrupt the recording",
        );
        let srt = "kind = \"srt\"\nurl = \"srt://h:9001?streamid=x\"";
        assert_one_error(
            &format!("{}{}", output("a", srt), output("b", srt)),
            "stream[1].output[0].url",
            (10, 7),
            ErrorKind::Conflict,
            "two outputs publishing the same stream id to h:9001",
        );
        // The same receiver with different stream ids is fine.
        config(&format!(
            "{}{}",
            output("a", srt),
            output("b", "kind = \"srt\"\nurl = \"srt://h:9001?streamid=y\"")
        ));
    }
}
