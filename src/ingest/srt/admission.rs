//! Who may connect, and as what: the listener's access-control decision for
//! one caller whose conclusion passed the gate.
//!
//! [`admit`] is a pure function of the caller's stream id and key material,
//! the configuration, and the stream's current SRT publishers. It has no
//! side effects: the endpoint counts a publisher only once its connection
//! is established (the prototype leaked a publisher slot when it counted at
//! admission and the caller then failed its crypto, turning a later caller
//! into a 409).
//!
//! Reject codes are the access-control spec's (Haivision srt
//! `docs/features/access-control.md`: 400 bad request, 401 unauthorized,
//! 403 forbidden, 404 not found, 405 bad mode, 409 conflict) and libsrt's
//! core codes for crypto (`SRT_REJ_UNSECURE`); see [`RejectCode`].
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;

use crate::config::{Config, InputRole, Passphrase, SecondPublisher, StreamId, StreamSettings};

use super::gate::{CIPHER_AES_CTR, KeyMaterial};
use super::streamid::{DeclaredRole, Mode, StreamIdError, StreamRequest};

/// An SRT connection rejection reason, as the caller sees it.
///
/// On the wire (handshake type field of the rejection) an access-control
/// code `N` is sent as `2000 + N` (`SRT_REJC_PREDEFINED`, so libsrt's
/// `srt_getrejectreason()` gives `1000 + N`: `SRT_REJX_*`), and a core code
/// `SRT_REJ_X` as `1000 + X`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// 400: the stream id is malformed.
    BadRequest,
    /// 401: the stream needs a user (`u=`) that is listed for it.
    Unauthorized,
    /// 403: the caller may not use this stream this way.
    Forbidden,
    /// 404: no such stream.
    NotFound,
    /// 405: a mode (`m=`) switchyard does not serve.
    BadMode,
    /// 406: parameters switchyard does not accept (latency, `t=`).
    Unacceptable,
    /// 409: the publisher slot asked for is taken.
    Conflict,
    /// Core 1005 (`SRT_REJ_BACKLOG`): connection caps reached.
    Backlog,
    /// Core 1010 (`SRT_REJ_BADSECRET`): wrong passphrase.
    BadSecret,
    /// Core 1011 (`SRT_REJ_UNSECURE`): encrypted caller for an open stream
    /// or the other way round.
    Unsecure,
    /// Core 1013 (`SRT_REJ_CONGESTION`): a congestion controller but `live`.
    Congestion,
    /// Core 1014 (`SRT_REJ_FILTER`): packet filters (FEC).
    Filter,
    /// Core 1015 (`SRT_REJ_GROUP`): bonding.
    Group,
    /// Core 1017 (`SRT_REJ_CRYPTO`): a cipher but AES-CTR (AES-GCM).
    Crypto,
    /// Any other rejection srt-protocol itself produced, by its wire value.
    Protocol(i32),
}

impl RejectCode {
    /// The code as the access-control spec or libsrt's core list numbers it:
    /// 400–409 for access control, 1000 + `SRT_REJ_*` for core reasons.
    pub fn code(self) -> u16 {
        match self {
            RejectCode::BadRequest => 400,
            RejectCode::Unauthorized => 401,
            RejectCode::Forbidden => 403,
            RejectCode::NotFound => 404,
            RejectCode::BadMode => 405,
            RejectCode::Unacceptable => 406,
            RejectCode::Conflict => 409,
            RejectCode::Backlog => 1005,
            RejectCode::BadSecret => 1010,
            RejectCode::Unsecure => 1011,
            RejectCode::Congestion => 1013,
            RejectCode::Filter => 1014,
            RejectCode::Group => 1015,
            RejectCode::Crypto => 1017,
            RejectCode::Protocol(wire) if wire >= 2000 => {
                u16::try_from(wire - 2000).unwrap_or(u16::MAX)
            }
            RejectCode::Protocol(wire) => u16::try_from(wire).unwrap_or(u16::MAX),
        }
    }

    /// The value of the rejection's handshake type field (see the type doc).
    pub fn wire(self) -> i32 {
        if let RejectCode::Protocol(wire) = self {
            return wire;
        }
        let code = i32::from(self.code());
        if code < 1000 { 2000 + code } else { code }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            RejectCode::BadRequest => "bad request",
            RejectCode::Unauthorized => "unauthorized",
            RejectCode::Forbidden => "forbidden",
            RejectCode::NotFound => "not found",
            RejectCode::BadMode => "bad mode",
            RejectCode::Unacceptable => "unacceptable",
            RejectCode::Conflict => "conflict",
            RejectCode::Backlog => "backlog exceeded",
            RejectCode::BadSecret => "bad secret",
            RejectCode::Unsecure => "unsecure",
            RejectCode::Congestion => "congestion controller not supported",
            RejectCode::Filter => "packet filter not supported",
            RejectCode::Group => "bonding not supported",
            RejectCode::Crypto => "cipher not supported",
            RejectCode::Protocol(_) => "rejected by the SRT handshake",
        };
        write!(f, "{} {name}", self.code())
    }
}

/// A refused caller: the code sent back, and a sentence for the log that
/// says what the caller or the operator can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectCode,
    pub detail: String,
}

impl Rejection {
    pub fn new(code: RejectCode, detail: impl Into<String>) -> Rejection {
        Rejection {
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

/// The SRT publishers a stream has right now (connections established on
/// the SRT port, not counting configured UDP/RTP inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Publishers {
    pub main: bool,
    pub backup: bool,
}

/// What the caller sent that admission decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    /// The stream id as sent (word packing undone, not percent-decoded).
    pub stream_id: Option<&'a str>,
    /// The caller's KMREQ, if it encrypts.
    pub key_material: Option<KeyMaterial>,
}

/// The role an accepted caller takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The stream's main input.
    Main,
    /// The stream's backup input.
    Backup,
    /// The stream's main input, replacing the current main publisher, which
    /// the endpoint disconnects.
    Takeover,
    /// A player pulling the stream's output (`m=request`).
    Player,
}

/// The encryption an accepted caller uses: the stream's passphrase with the
/// caller's own key length (the listener never imposes one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    pub passphrase: Passphrase,
    /// 16, 24 or 32 bytes.
    pub key_len: u8,
}

/// An accepted caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub stream: StreamId,
    pub role: Role,
    pub user: Option<String>,
    pub encryption: Option<Encryption>,
}

/// The access-control decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Accept(Accepted),
    Reject(Rejection),
}

/// Decides whether `caller` may connect, and as what. `publishers` gives a
/// stream's current SRT publishers; it is asked at most once, for the
/// stream the caller named.
///
/// Rules, in order:
/// 1. A stream id is required and must parse ([`StreamRequest::parse`]):
///    400, or 405/406 for a mode or type switchyard does not serve.
/// 2. A stream listed in `[[stream]]` uses its settings. An unlisted one is
///    404 unless `[srt] accept_any_stream`; then a publisher gets
///    `[defaults]` and a player only a stream that is being published.
/// 3. `users`: an empty list takes no SRT caller (403); otherwise the
///    caller's `u=` must be listed (401).
/// 4. A player needs `allow_pull` (403).
/// 5. A publisher takes a free input slot ([`publisher_role`]); a configured
///    UDP/RTP input holds its slot for good. Slots taken: 409, or a takeover
///    of the main when `second_publisher = "takeover"`.
/// 6. Crypto: a stream with a passphrase needs an encrypted caller and an
///    open stream an unencrypted one (1011, as libsrt's enforced
///    encryption); only AES-CTR is served (1017). The caller's key length
///    is used; a wrong passphrase is found later by the key unwrap (1010).
pub fn admit(
    config: &Config,
    caller: Caller<'_>,
    publishers: impl FnOnce(&StreamId) -> Publishers,
) -> Admission {
    match decide(config, caller, publishers) {
        Ok(accepted) => Admission::Accept(accepted),
        Err(rejection) => Admission::Reject(rejection),
    }
}

/// The parts of a stream admission looks at: a listed stream's, or the
/// defaults for an unlisted one.
struct Target<'a> {
    listed: bool,
    passphrase: Option<&'a Passphrase>,
    users: Option<&'a [String]>,
    settings: &'a StreamSettings,
    main_input: bool,
    backup_input: bool,
}

fn decide(
    config: &Config,
    caller: Caller<'_>,
    publishers: impl FnOnce(&StreamId) -> Publishers,
) -> Result<Accepted, Rejection> {
    let raw = caller.stream_id.ok_or_else(|| {
        Rejection::new(
            RejectCode::BadRequest,
            "no stream id: set one (e.g. `streamid=live/cam1`) so the router knows which stream this is",
        )
    })?;
    let request = StreamRequest::parse(raw).map_err(|e| {
        let code = match e {
            StreamIdError::UnsupportedMode(_) => RejectCode::BadMode,
            StreamIdError::UnsupportedType(_) => RejectCode::Unacceptable,
            _ => RejectCode::BadRequest,
        };
        Rejection::new(code, format!("stream id {raw:?}: {e}"))
    })?;
    let stream = &request.resource;
    let target = match config.stream(stream.as_str()) {
        Some(s) => Target {
            listed: true,
            passphrase: s.passphrase.as_ref(),
            users: s.users.as_deref(),
            settings: &s.settings,
            main_input: s.input(InputRole::Main).is_some(),
            backup_input: s.input(InputRole::Backup).is_some(),
        },
        None if config.srt.accept_any_stream => Target {
            listed: false,
            passphrase: None,
            users: None,
            settings: &config.defaults,
            main_input: false,
            backup_input: false,
        },
        None => {
            return Err(Rejection::new(
                RejectCode::NotFound,
                format!("stream {stream} is not configured (and [srt] accept_any_stream is off)"),
            ));
        }
    };
    match target.users {
        Some([]) => {
            return Err(Rejection::new(
                RejectCode::Forbidden,
                format!("stream {stream} takes no SRT callers (users = [])"),
            ));
        }
        Some(users) => match request.user.as_deref() {
            Some(user) if users.iter().any(|u| u == user) => {}
            Some(user) => {
                return Err(Rejection::new(
                    RejectCode::Unauthorized,
                    format!("user {user:?} is not listed in the users of stream {stream}"),
                ));
            }
            None => {
                return Err(Rejection::new(
                    RejectCode::Unauthorized,
                    format!("stream {stream} needs a user: add `u=NAME` to the stream id"),
                ));
            }
        },
        None => {}
    }
    let current = publishers(stream);
    let role = match request.mode {
        Mode::Request => {
            if !target.settings.allow_pull {
                return Err(Rejection::new(
                    RejectCode::Forbidden,
                    format!("stream {stream} may not be pulled (allow_pull = false)"),
                ));
            }
            if !target.listed && !current.main && !current.backup {
                return Err(Rejection::new(
                    RejectCode::NotFound,
                    format!("stream {stream} is not being published"),
                ));
            }
            Role::Player
        }
        Mode::Publish => {
            let slots = Publishers {
                main: current.main || target.main_input,
                backup: current.backup || target.backup_input,
            };
            // A configured input can never be taken over.
            let can_take_over = !target.main_input;
            let alone = !current.main && !current.backup;
            let policy = target.settings.second_publisher;
            publisher_role(request.role, slots, alone, policy, can_take_over).ok_or_else(|| {
                Rejection::new(
                    RejectCode::Conflict,
                    format!(
                        "stream {stream} already has its {} (second_publisher = {:?})",
                        match (slots.main, slots.backup) {
                            (true, true) => "main and backup publishers",
                            (true, false) => "main publisher",
                            _ => "backup publisher",
                        },
                        target.settings.second_publisher
                    ),
                )
            })?
        }
    };
    let encryption = encryption(stream, target.passphrase, caller.key_material)?;
    Ok(Accepted {
        stream: request.resource,
        role,
        user: request.user,
        encryption,
    })
}

/// The role of a new publisher; `None` is a 409. `taken` are the slots held
/// by SRT publishers or configured inputs, `alone` says that the stream has
/// no SRT publisher yet, and `can_take_over` that its main is not a
/// configured input.
///
/// - The first SRT publisher: the free slot it declares (main by default),
///   or the free one.
/// - `reject`: nothing for a second SRT publisher.
/// - `backup`: the newcomer takes the free slot it declares, else the free
///   one (main first).
/// - `takeover`: as `backup` for a declared backup; anything else takes
///   over the main.
pub fn publisher_role(
    declared: Option<DeclaredRole>,
    taken: Publishers,
    alone: bool,
    policy: SecondPublisher,
    can_take_over: bool,
) -> Option<Role> {
    let first = alone || policy != SecondPublisher::Reject;
    match (declared, policy) {
        (Some(DeclaredRole::Backup), _) if !taken.backup && first => Some(Role::Backup),
        (Some(DeclaredRole::Backup), _) => None,
        (_, SecondPublisher::Takeover) if taken.main && can_take_over => Some(Role::Takeover),
        (_, _) if !taken.main && first => Some(Role::Main),
        (None, _) if !taken.backup && first => Some(Role::Backup),
        _ => None,
    }
}

fn encryption(
    stream: &StreamId,
    passphrase: Option<&Passphrase>,
    key_material: Option<KeyMaterial>,
) -> Result<Option<Encryption>, Rejection> {
    match (passphrase, key_material) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Rejection::new(
            RejectCode::Unsecure,
            format!("stream {stream} is not encrypted: connect without a passphrase"),
        )),
        (Some(_), None) => Err(Rejection::new(
            RejectCode::Unsecure,
            format!("stream {stream} is encrypted: connect with its passphrase"),
        )),
        (Some(_), Some(km)) if km.cipher != CIPHER_AES_CTR => Err(Rejection::new(
            RejectCode::Crypto,
            format!(
                "cipher {} is not served, only AES-CTR: leave the caller's cryptomode at its default (AES-CTR)",
                km.cipher
            ),
        )),
        (Some(passphrase), Some(km)) => Ok(Some(Encryption {
            passphrase: passphrase.clone(),
            key_len: km.key_len,
        })),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[srt]
accept_any_stream = false

[[stream]]
id = "live/open"

[[stream]]
id = "live/secret"
passphrase = "0123456789abcdef"

[[stream]]
id = "live/team"
users = ["alice", "bob"]

[[stream]]
id = "live/closed"
users = []
input = [{ kind = "udp", listen = "127.0.0.1:5000" }]

[[stream]]
id = "live/takeover"
second_publisher = "takeover"

[[stream]]
id = "live/single"
second_publisher = "reject"

[[stream]]
id = "live/nopull"
allow_pull = false

[[stream]]
id = "live/udpmain"
input = [{ kind = "udp", listen = "127.0.0.1:5001" }]

[[stream]]
id = "live/udpbackup"
input = [{ kind = "udp", listen = "127.0.0.1:5002", role = "backup" }]

[[stream]]
id = "live/udpbackup-single"
second_publisher = "reject"
input = [{ kind = "udp", listen = "127.0.0.1:5003", role = "backup" }]

[[stream]]
id = "live/udpmain-takeover"
second_publisher = "takeover"
input = [{ kind = "udp", listen = "127.0.0.1:5004" }]
"#;

    fn config() -> Config {
        crate::config::parse(CONFIG, "test.toml").expect("valid test config")
    }

    fn km(key_len: u8) -> Option<KeyMaterial> {
        Some(KeyMaterial {
            key_len,
            keys: 1,
            cipher: CIPHER_AES_CTR,
        })
    }

    fn run(
        config: &Config,
        sid: Option<&str>,
        key: Option<KeyMaterial>,
        current: Publishers,
    ) -> Admission {
        admit(
            config,
            Caller {
                stream_id: sid,
                key_material: key,
            },
            |_| current,
        )
    }

    fn code(
        config: &Config,
        sid: &str,
        key: Option<KeyMaterial>,
        current: Publishers,
    ) -> Option<u16> {
        match run(config, Some(sid), key, current) {
            Admission::Accept(_) => None,
            Admission::Reject(r) => Some(r.code.code()),
        }
    }

    fn role(config: &Config, sid: &str, current: Publishers) -> Role {
        match run(config, Some(sid), None, current) {
            Admission::Accept(a) => a.role,
            Admission::Reject(r) => panic!("{sid}: {r}"),
        }
    }

    const NONE: Publishers = Publishers {
        main: false,
        backup: false,
    };
    const MAIN: Publishers = Publishers {
        main: true,
        backup: false,
    };
    const BACKUP: Publishers = Publishers {
        main: false,
        backup: true,
    };
    const BOTH: Publishers = Publishers {
        main: true,
        backup: true,
    };

    #[test]
    fn reject_codes_on_the_wire() {
        assert_eq!(RejectCode::NotFound.wire(), 2404);
        assert_eq!(RejectCode::Conflict.wire(), 2409);
        assert_eq!(RejectCode::Unsecure.wire(), 1011);
        assert_eq!(RejectCode::Crypto.wire(), 1017);
        assert_eq!(RejectCode::Forbidden.to_string(), "403 forbidden");
    }

    #[test]
    fn stream_id_required_and_well_formed() {
        let c = config();
        assert!(matches!(
            run(&c, None, None, NONE),
            Admission::Reject(Rejection {
                code: RejectCode::BadRequest,
                ..
            })
        ));
        assert_eq!(code(&c, "#!::m=publish", None, NONE), Some(400));
        assert_eq!(code(&c, "live open", None, NONE), Some(400));
        assert_eq!(code(&c, "%zz", None, NONE), Some(400));
        assert_eq!(
            code(&c, "#!::r=live/open,m=bidirectional", None, NONE),
            Some(405)
        );
        assert_eq!(code(&c, "#!::r=live/open,t=file", None, NONE), Some(406));
    }

    #[test]
    fn listed_unlisted_and_accept_any() {
        let mut c = config();
        assert_eq!(role(&c, "live/open", NONE), Role::Main);
        assert_eq!(code(&c, "live/nope", None, NONE), Some(404));
        assert_eq!(code(&c, "#!::r=live/nope,m=request", None, MAIN), Some(404));
        c.srt.accept_any_stream = true;
        assert_eq!(role(&c, "live/nope", NONE), Role::Main);
        // An unlisted stream can be pulled only while it is published.
        assert_eq!(code(&c, "#!::r=live/nope,m=request", None, NONE), Some(404));
        assert_eq!(role(&c, "#!::r=live/nope,m=request", MAIN), Role::Player);
        assert_eq!(role(&c, "#!::r=live/nope,m=request", BACKUP), Role::Player);
        // A listed one at any time.
        assert_eq!(role(&c, "#!::r=live/open,m=request", NONE), Role::Player);
        // Unlisted streams take [defaults].
        c.defaults.allow_pull = false;
        assert_eq!(code(&c, "#!::r=live/nope,m=request", None, MAIN), Some(403));
    }

    #[test]
    fn users() {
        let c = config();
        assert_eq!(code(&c, "live/team", None, NONE), Some(401));
        assert_eq!(code(&c, "#!::r=live/team,u=mallory", None, NONE), Some(401));
        assert_eq!(role(&c, "#!::r=live/team,u=alice", NONE), Role::Main);
        assert_eq!(
            role(&c, "#!::r=live/team,u=bob,m=request", NONE),
            Role::Player
        );
        assert_eq!(code(&c, "#!::r=live/closed,u=alice", None, NONE), Some(403));
        // Anyone may use a stream without a users list; `u=` is kept.
        match run(&c, Some("#!::r=live/open,u=carol"), None, NONE) {
            Admission::Accept(a) => assert_eq!(a.user.as_deref(), Some("carol")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pull_permission() {
        let c = config();
        assert_eq!(
            code(&c, "#!::r=live/nopull,m=request", None, MAIN),
            Some(403)
        );
        assert_eq!(role(&c, "live/nopull", NONE), Role::Main);
    }

    #[test]
    fn second_publisher_backup_default() {
        let c = config();
        let s = "live/open";
        let backup = "#!::r=live/open,switchyard_role=backup";
        let main = "#!::r=live/open,switchyard_role=main";
        assert_eq!(role(&c, s, NONE), Role::Main);
        assert_eq!(role(&c, s, MAIN), Role::Backup);
        assert_eq!(code(&c, s, None, BOTH), Some(409));
        assert_eq!(role(&c, s, BACKUP), Role::Main);
        assert_eq!(role(&c, backup, NONE), Role::Backup);
        assert_eq!(role(&c, backup, MAIN), Role::Backup);
        assert_eq!(code(&c, backup, None, BACKUP), Some(409));
        assert_eq!(role(&c, main, BACKUP), Role::Main);
        assert_eq!(code(&c, main, None, MAIN), Some(409));
    }

    #[test]
    fn second_publisher_takeover() {
        let c = config();
        let s = "live/takeover";
        let backup = "#!::r=live/takeover,switchyard_role=backup";
        assert_eq!(role(&c, s, NONE), Role::Main);
        assert_eq!(role(&c, s, MAIN), Role::Takeover);
        assert_eq!(role(&c, s, BOTH), Role::Takeover);
        assert_eq!(role(&c, s, BACKUP), Role::Main);
        assert_eq!(role(&c, backup, MAIN), Role::Backup);
        assert_eq!(code(&c, backup, None, BOTH), Some(409));
    }

    #[test]
    fn second_publisher_reject() {
        let c = config();
        let s = "live/single";
        let backup = "#!::r=live/single,switchyard_role=backup";
        assert_eq!(role(&c, s, NONE), Role::Main);
        assert_eq!(code(&c, s, None, MAIN), Some(409));
        assert_eq!(code(&c, s, None, BACKUP), Some(409));
        assert_eq!(code(&c, backup, None, MAIN), Some(409));
        assert_eq!(role(&c, backup, NONE), Role::Backup);
    }

    #[test]
    fn configured_inputs_hold_their_slots() {
        let c = config();
        // A UDP main: the SRT publisher is the backup, and cannot take over.
        assert_eq!(role(&c, "live/udpmain", NONE), Role::Backup);
        assert_eq!(code(&c, "live/udpmain", None, BACKUP), Some(409));
        // A UDP backup: the SRT publisher is the main.
        assert_eq!(role(&c, "live/udpbackup", NONE), Role::Main);
        assert_eq!(code(&c, "live/udpbackup", None, MAIN), Some(409));
        // `reject` is about a second SRT publisher: a UDP backup is not one.
        assert_eq!(role(&c, "live/udpbackup-single", NONE), Role::Main);
        assert_eq!(code(&c, "live/udpbackup-single", None, MAIN), Some(409));
        // `takeover` cannot take a configured main.
        assert_eq!(role(&c, "live/udpmain-takeover", NONE), Role::Backup);
        assert_eq!(code(&c, "live/udpmain-takeover", None, BACKUP), Some(409));
    }

    #[test]
    fn crypto() {
        let c = config();
        assert_eq!(code(&c, "live/open", km(16), NONE), Some(1011));
        assert_eq!(code(&c, "live/secret", None, NONE), Some(1011));
        for key_len in [16, 24, 32] {
            match run(&c, Some("live/secret"), km(key_len), NONE) {
                Admission::Accept(a) => {
                    let e = a.encryption.expect("encrypted");
                    assert_eq!(e.key_len, key_len);
                    assert_eq!(e.passphrase.expose(), "0123456789abcdef");
                }
                other => panic!("{other:?}"),
            }
        }
        let gcm = Some(KeyMaterial {
            key_len: 16,
            keys: 1,
            cipher: 3,
        });
        assert_eq!(code(&c, "live/secret", gcm, NONE), Some(1017));
        // Players get their own key too.
        assert!(matches!(
            run(&c, Some("#!::r=live/secret,m=request"), km(32), NONE),
            Admission::Accept(Accepted {
                role: Role::Player,
                encryption: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn publishers_are_asked_for_the_named_stream_only() {
        let c = config();
        let mut asked = Vec::new();
        let _ = admit(
            &c,
            Caller {
                stream_id: Some("#!::r=live/open"),
                key_material: None,
            },
            |s| {
                asked.push(s.to_string());
                NONE
            },
        );
        assert_eq!(asked, ["live/open"]);
    }
}
