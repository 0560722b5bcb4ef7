//! `[[stream.input]]`: UDP and RTP ingests bound to a stream. SRT
//! publishers need no entry: they arrive on the SRT listener by streamid.

use std::net::{IpAddr, SocketAddr};

use super::error::ErrorKind;
use super::reader::{Field, Report, Section, one_of};

/// Which of a stream's two inputs this is (issue 3, point 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InputRole {
    #[default]
    Main,
    Backup,
}

/// How datagrams on the socket carry MPEG-TS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// 1 to 7 TS packets per datagram.
    Udp,
    /// MPEG-TS over RTP (RFC 2250 §2, RFC 3551 payload type 33).
    Rtp {
        /// `payload_type`: expected RTP payload type, 0 to 127 (RFC 3550
        /// §5.1: 7 bits). Default 33 (MP2T, RFC 3551 §6).
        payload_type: u8,
        /// `reorder_window`: packets held to put out-of-order packets back
        /// in sequence, 1 to 1024. Default 32.
        reorder_window: u16,
    },
}

/// A multicast group to join (IGMP/MLD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Multicast {
    /// `multicast_group`: a multicast address of the listen address's family.
    pub group: IpAddr,
    /// `multicast_interface`: the local IPv4 address of the interface to
    /// join on; `None` lets the kernel choose (the default route's).
    /// IPv6 groups are joined on the default interface.
    pub interface: Option<IpAddr>,
}

/// One UDP or RTP ingest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InputConfig {
    pub kind: InputKind,
    /// `listen`: the local address the socket binds. With a multicast group,
    /// the wildcard (`0.0.0.0:PORT`) or the group address itself.
    pub listen: SocketAddr,
    pub multicast: Option<Multicast>,
    /// `role`: `"main"` (default) or `"backup"`.
    pub role: InputRole,
}

pub(super) const INPUT_KEYS: &[&str] = &[
    "kind",
    "listen",
    "multicast_group",
    "multicast_interface",
    "role",
    "payload_type",
    "reorder_window",
];
const RTP_ONLY: &[&str] = &["payload_type", "reorder_window"];
const KINDS: &[&str] = &["udp", "rtp"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Udp,
    Rtp,
}

impl InputConfig {
    /// Reads one input. `None` when a required key is missing or invalid
    /// (the error is in `report`).
    pub(super) fn read(section: &Section<'_>, report: &mut Report<'_>) -> Option<InputConfig> {
        section.check_keys(INPUT_KEYS, report);
        let kind = section
            .require(
                "kind",
                &format!("the ingest protocol, {}", one_of(KINDS)),
                report,
            )
            .and_then(|f| f.choice(&[("udp", Kind::Udp), ("rtp", Kind::Rtp)], report));
        if kind == Some(Kind::Udp) {
            for key in RTP_ONLY {
                if let Some(f) = section.get(key) {
                    f.not_applicable(report, format!("`{key}` only applies to kind = \"rtp\""));
                }
            }
        }
        let payload_type = section
            .get("payload_type")
            .and_then(|f| f.integer(0..=127, "", "RFC 3550 §5.1: 7 bits; MPEG-TS is 33", report))
            .unwrap_or(33);
        let reorder_window = section
            .get("reorder_window")
            .and_then(|f| f.integer(1..=1024, "packets", "", report))
            .unwrap_or(32);
        let role = section
            .get("role")
            .and_then(|f| {
                f.choice(
                    &[("main", InputRole::Main), ("backup", InputRole::Backup)],
                    report,
                )
            })
            .unwrap_or_default();
        let listen = section
            .require(
                "listen",
                "the local address and port to receive on, such as \"0.0.0.0:5000\"",
                report,
            )
            .and_then(|f| f.bind_addr(report).map(|addr| (addr, f)));
        let multicast = read_multicast(section, listen.as_ref(), report);

        let (listen, _) = listen?;
        let kind = match kind? {
            Kind::Udp => InputKind::Udp,
            Kind::Rtp => InputKind::Rtp {
                payload_type,
                reorder_window,
            },
        };
        Some(InputConfig {
            kind,
            listen,
            multicast: multicast.ok()?,
            role,
        })
    }
}

/// Reads `multicast_group` and `multicast_interface` and checks them
/// against `listen`. `Err` when something was reported.
fn read_multicast(
    section: &Section<'_>,
    listen: Option<&(SocketAddr, Field<'_>)>,
    report: &mut Report<'_>,
) -> Result<Option<Multicast>, ()> {
    let group_field = section.get("multicast_group");
    let interface_field = section.get("multicast_interface");
    let Some(group_field) = group_field else {
        if let Some(f) = interface_field {
            f.not_applicable(
                report,
                "`multicast_interface` only applies with `multicast_group`",
            );
            return Err(());
        }
        if let Some((addr, f)) = listen
            && addr.ip().is_multicast()
        {
            f.invalid(
                report,
                format!(
                    "is the multicast address {}; to receive multicast, set `multicast_group = \"{}\"` so the group is joined",
                    addr.ip(),
                    addr.ip()
                ),
            );
            return Err(());
        }
        return Ok(None);
    };
    let group = group_field.ip(report).ok_or(())?;
    if !group.is_multicast() {
        group_field.invalid(
            report,
            format!("must be a multicast address (224.0.0.0/4 or ff00::/8), got {group}"),
        );
        return Err(());
    }
    let mut ok = true;
    if let Some((addr, f)) = listen {
        if addr.is_ipv4() != group.is_ipv4() {
            f.error(
                report,
                ErrorKind::Conflict,
                format!("must be of the same IP version as `multicast_group` ({group})"),
            );
            ok = false;
        } else if !addr.ip().is_unspecified() && addr.ip() != group {
            // Linux delivers multicast to a socket only when it is bound to
            // the wildcard or to the group address itself.
            f.error(
                report,
                ErrorKind::Conflict,
                format!(
                    "must be the wildcard or the group address to receive the group, such as \"{}\"; got {addr}",
                    SocketAddr::new(group, addr.port())
                ),
            );
            ok = false;
        }
    }
    let interface = match interface_field {
        None => None,
        Some(f) => {
            if !group.is_ipv4() {
                f.not_applicable(
                    report,
                    "`multicast_interface` only applies to IPv4 groups; IPv6 groups are joined on the default interface",
                );
                return Err(());
            }
            Some(f.interface_ipv4(report).ok_or(())?)
        }
    };
    if ok {
        Ok(Some(Multicast { group, interface }))
    } else {
        Err(())
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

    fn stream(body: &str) -> String {
        format!("[[stream]]\nid = \"s\"\n[[stream.input]]\n{body}")
    }

    fn input(body: &str) -> InputConfig {
        let c = config(&stream(body));
        c.streams
            .first()
            .and_then(|s| s.inputs.first())
            .cloned()
            .expect("one input")
    }

    #[test]
    fn udp_unicast() {
        let i = input("kind = \"udp\"\nlisten = \"0.0.0.0:5000\"\n");
        assert_eq!(
            i,
            InputConfig {
                kind: InputKind::Udp,
                listen: "0.0.0.0:5000".parse().expect("addr"),
                multicast: None,
                role: InputRole::Main,
            }
        );
    }

    #[test]
    fn rtp_defaults_and_values() {
        let i = input("kind = \"rtp\"\nlisten = \"[::]:5004\"\nrole = \"backup\"\n");
        assert_eq!(
            i.kind,
            InputKind::Rtp {
                payload_type: 33,
                reorder_window: 32
            }
        );
        assert_eq!(i.role, InputRole::Backup);
        let i = input(
            "kind = \"rtp\"\nlisten = \"0.0.0.0:5004\"\npayload_type = 96\nreorder_window = 1024\n",
        );
        assert_eq!(
            i.kind,
            InputKind::Rtp {
                payload_type: 96,
                reorder_window: 1024
            }
        );
    }

    #[test]
    fn multicast_with_and_without_interface() {
        let i = input(
            "kind = \"udp\"\nlisten = \"0.0.0.0:5000\"\nmulticast_group = \"239.1.1.1\"\nmulticast_interface = \"10.0.0.2\"\n",
        );
        assert_eq!(
            i.multicast,
            Some(Multicast {
                group: "239.1.1.1".parse().expect("ip"),
                interface: Some("10.0.0.2".parse().expect("ip")),
            })
        );
        let i =
            input("kind = \"udp\"\nlisten = \"239.1.1.1:5000\"\nmulticast_group = \"239.1.1.1\"\n");
        assert_eq!(i.multicast.map(|m| m.interface), Some(None));
        let i = input("kind = \"udp\"\nlisten = \"[::]:5000\"\nmulticast_group = \"ff3e::1\"\n");
        assert!(i.multicast.is_some());
    }

    #[test]
    fn kind_is_required_and_checked() {
        assert_one_error(
            &stream("listen = \"0.0.0.0:5000\"\n"),
            "stream[0].input[0].kind",
            (3, 1),
            ErrorKind::Missing,
            "[[stream.input]] needs `kind`: the ingest protocol, \"udp\" or \"rtp\"",
        );
        assert_one_error(
            &stream("kind = \"srt\"\nlisten = \"0.0.0.0:5000\"\n"),
            "stream[0].input[0].kind",
            (4, 8),
            ErrorKind::Invalid,
            "must be \"udp\" or \"rtp\", got \"srt\"",
        );
    }

    #[test]
    fn listen_is_required_and_must_be_a_bindable_address() {
        assert_one_error(
            &stream("kind = \"udp\"\n"),
            "stream[0].input[0].listen",
            (3, 1),
            ErrorKind::Missing,
            "needs `listen`",
        );
        assert_one_error(
            &stream("kind = \"udp\"\nlisten = \"localhost:5000\"\n"),
            "stream[0].input[0].listen",
            (5, 10),
            ErrorKind::Invalid,
            "host names are not resolved",
        );
        assert_one_error(
            &stream("kind = \"udp\"\nlisten = \"0.0.0.0\"\n"),
            "stream[0].input[0].listen",
            (5, 10),
            ErrorKind::Invalid,
            "must be an IP address and port",
        );
        assert_one_error(
            &stream("kind = \"udp\"\nlisten = \"0.0.0.0:0\"\n"),
            "stream[0].input[0].listen",
            (5, 10),
            ErrorKind::Invalid,
            "port 0",
        );
        assert_one_error(
            &stream("kind = \"udp\"\nlisten = 5000\n"),
            "stream[0].input[0].listen",
            (5, 10),
            ErrorKind::WrongType,
            "must be a string, got an integer (5000)",
        );
    }

    #[test]
    fn rtp_fields_do_not_apply_to_udp() {
        assert_one_error(
            &stream("kind = \"udp\"\nlisten = \"0.0.0.0:5000\"\npayload_type = 33\n"),
            "stream[0].input[0].payload_type",
            (6, 1),
            ErrorKind::NotApplicable,
            "`payload_type` only applies to kind = \"rtp\"",
        );
        assert_one_error(
            &stream("kind = \"udp\"\nlisten = \"0.0.0.0:5000\"\nreorder_window = 8\n"),
            "stream[0].input[0].reorder_window",
            (6, 1),
            ErrorKind::NotApplicable,
            "`reorder_window` only applies to kind = \"rtp\"",
        );
    }

    #[test]
    fn rtp_ranges() {
        assert_one_error(
            &stream("kind = \"rtp\"\nlisten = \"0.0.0.0:5000\"\npayload_type = 128\n"),
            "stream[0].input[0].payload_type",
            (6, 16),
            ErrorKind::Invalid,
            "must be between 0 and 127 (RFC 3550 §5.1: 7 bits; MPEG-TS is 33), got 128",
        );
        assert_one_error(
            &stream("kind = \"rtp\"\nlisten = \"0.0.0.0:5000\"\nreorder_window = 0\n"),
            "stream[0].input[0].reorder_window",
            (6, 18),
            ErrorKind::Invalid,
            "must be between 1 and 1024 packets, got 0",
        );
        assert_one_error(
            &stream("kind = \"rtp\"\nlisten = \"0.0.0.0:5000\"\nreorder_window = 1025\n"),
            "stream[0].input[0].reorder_window",
            (6, 18),
            ErrorKind::Invalid,
            "got 1025",
        );
    }

    #[test]
    fn role_words() {
        assert_one_error(
            &stream("kind = \"udp\"\nlisten = \"0.0.0.0:5000\"\nrole = \"primary\"\n"),
            "stream[0].input[0].role",
            (6, 8),
            ErrorKind::Invalid,
            "must be \"main\" or \"backup\", got \"primary\"",
        );
    }

    #[test]
    fn multicast_rules() {
        let base = "kind = \"udp\"\nlisten = \"0.0.0.0:5000\"\n";
        assert_one_error(
            &stream(&format!("{base}multicast_group = \"10.1.1.1\"\n")),
            "stream[0].input[0].multicast_group",
            (6, 19),
            ErrorKind::Invalid,
            "must be a multicast address (224.0.0.0/4 or ff00::/8), got 10.1.1.1",
        );
        assert_one_error(
            &stream(&format!("{base}multicast_group = \"239.1.1.1:5000\"\n")),
            "stream[0].input[0].multicast_group",
            (6, 19),
            ErrorKind::Invalid,
            "must be an IP address such as",
        );
        assert_one_error(
            &stream(&format!("{base}multicast_interface = \"10.0.0.1\"\n")),
            "stream[0].input[0].multicast_interface",
            (6, 1),
            ErrorKind::NotApplicable,
            "only applies with `multicast_group`",
        );
        assert_one_error(
            &stream(&format!(
                "{base}multicast_group = \"239.1.1.1\"\nmulticast_interface = \"239.1.1.2\"\n"
            )),
            "stream[0].input[0].multicast_interface",
            (7, 23),
            ErrorKind::Invalid,
            "IPv4 address of a local interface",
        );
        assert_one_error(
            &stream(&format!(
                "{base}multicast_group = \"239.1.1.1\"\nmulticast_interface = \"::1\"\n"
            )),
            "stream[0].input[0].multicast_interface",
            (7, 23),
            ErrorKind::Invalid,
            "IPv4 address of a local interface",
        );
        assert_one_error(
            &stream(
                "kind = \"udp\"\nlisten = \"[::]:5000\"\nmulticast_group = \"ff3e::1\"\nmulticast_interface = \"10.0.0.1\"\n",
            ),
            "stream[0].input[0].multicast_interface",
            (7, 1),
            ErrorKind::NotApplicable,
            "only applies to IPv4 groups",
        );
        assert_one_error(
            &stream("kind = \"udp\"\nlisten = \"[::]:5000\"\nmulticast_group = \"239.1.1.1\"\n"),
            "stream[0].input[0].listen",
            (5, 10),
            ErrorKind::Conflict,
            "same IP version",
        );
        assert_one_error(
            &stream(
                "kind = \"udp\"\nlisten = \"10.0.0.1:5000\"\nmulticast_group = \"239.1.1.1\"\n",
            ),
            "stream[0].input[0].listen",
            (5, 10),
            ErrorKind::Conflict,
            "such as \"239.1.1.1:5000\"",
        );
        assert_one_error(
            &stream("kind = \"udp\"\nlisten = \"239.1.1.1:5000\"\n"),
            "stream[0].input[0].listen",
            (5, 10),
            ErrorKind::Invalid,
            "set `multicast_group = \"239.1.1.1\"`",
        );
    }
}
