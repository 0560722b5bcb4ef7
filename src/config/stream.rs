//! `[[stream]]`: a stream listed by id, with its access rules, settings,
//! non-SRT inputs and outputs.

use super::claims::Claims;
use super::error::ErrorKind;
use super::input::{InputConfig, InputRole};
use super::output::{OutputConfig, OutputKind};
use super::reader::{Field, Report, Section, with_article};
use super::settings::{ReadSettings, SETTINGS_KEYS, StreamSettings};
use super::stream_id::{MAX_STREAM_ID_BYTES, Passphrase, StreamId};

/// A stream listed in the configuration.
///
/// **Main and backup.** A stream has at most one main and one backup input.
/// Its main is its `role = "main"` input if it has one, otherwise the first
/// SRT publisher of its id; a second SRT publisher is handled by
/// `second_publisher`. So a stream may list only a backup input (SRT main,
/// UDP backup) or no inputs at all, as long as an SRT caller may publish
/// to it: with `users = []` and no main input it could never receive its
/// main, and that is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// `id`: the SRT streamid resource (`r=`) or plain streamid.
    pub id: StreamId,
    /// `passphrase`: SRT callers of this stream must encrypt with it (any
    /// AES key length). `None`: unencrypted.
    pub passphrase: Option<Passphrase>,
    /// `users`: SRT `u=` values allowed to publish or pull. `None` (key
    /// absent): anyone. `Some([])`: no SRT caller; only listed inputs feed it.
    pub users: Option<Vec<String>>,
    /// `[defaults]` with this stream's overrides applied.
    pub settings: StreamSettings,
    pub inputs: Vec<InputConfig>,
    pub outputs: Vec<OutputConfig>,
}

impl StreamConfig {
    pub fn input(&self, role: InputRole) -> Option<&InputConfig> {
        self.inputs.iter().find(|i| i.role == role)
    }

    /// Whether an SRT caller with user name `user` (`u=`, if it sent one)
    /// may publish to or pull from this stream.
    pub fn admits(&self, user: Option<&str>) -> bool {
        match (&self.users, user) {
            (None, _) => true,
            (Some(users), Some(user)) => users.iter().any(|u| u == user),
            (Some(_), None) => false,
        }
    }
}

pub(super) const STREAM_KEYS: &[&str] = &["id", "passphrase", "users", "input", "output"];

impl StreamConfig {
    /// Reads one `[[stream]]`. `None` when its id is missing or invalid.
    pub(super) fn read(
        section: &Section<'_>,
        defaults: &ReadSettings,
        profiles: &[&str],
        claims: &mut Claims,
        report: &mut Report<'_>,
    ) -> Option<StreamConfig> {
        let known: Vec<&str> = STREAM_KEYS.iter().chain(SETTINGS_KEYS).copied().collect();
        section.check_keys(&known, report);
        let id = section
            .require(
                "id",
                "the stream id SRT callers use, such as \"live/cam1\"",
                report,
            )
            .and_then(|f| {
                let text = f.str(report)?;
                match StreamId::new(text) {
                    Ok(id) => {
                        claims.stream_id(&id, &f, report);
                        Some(id)
                    }
                    Err(e) => {
                        f.invalid(report, format!("the stream id {e}"));
                        None
                    }
                }
            });
        let passphrase = section.get("passphrase").and_then(|f| {
            let text = f.str(report)?;
            Passphrase::new(text)
                .map_err(|e| f.invalid(report, e.to_string()))
                .ok()
        });
        let users_field = section.get("users");
        let users = users_field.as_ref().and_then(|f| read_users(f, report));
        let settings = StreamSettings::read(section, defaults, profiles, report).settings;

        let mut inputs = Vec::new();
        let mut main: Option<Section<'_>> = None;
        let mut backup: Option<Section<'_>> = None;
        for input_section in section.tables("input", "[[stream.input]]", report) {
            let Some(input) = InputConfig::read(&input_section, report) else {
                continue;
            };
            let slot = match input.role {
                InputRole::Main => &mut main,
                InputRole::Backup => &mut backup,
            };
            if let Some(first) = slot {
                let role = match input.role {
                    InputRole::Main => "main",
                    InputRole::Backup => "backup",
                };
                let at = input_section.get("role");
                report.push(
                    &format!("{}.role", input_section.path),
                    at.as_ref().and_then(|f| f.span.as_ref()).or(input_section.span.as_ref()),
                    ErrorKind::Conflict,
                    format!(
                        "a stream has at most one {role} input, and {} (line {}) is already its {role}{}",
                        first.path,
                        report.line_of(first.span.as_ref()),
                        if input.role == InputRole::Main { "; set role = \"backup\"" } else { "" },
                    ),
                );
                continue;
            }
            *slot = Some(input_section.clone());
            if let Some(f) = input_section.get("listen") {
                claims.udp_bind(input.listen, &f, report);
            }
            inputs.push(input);
        }
        if main.is_none()
            && let (Some(users), Some(f)) = (&users, &users_field)
            && users.is_empty()
        {
            f.error(
                report,
                ErrorKind::Conflict,
                "`users = []` admits no SRT caller, so this stream can have no SRT publisher as its main input, and it has no input with role = \"main\": add one, or list the users who may publish",
            );
        }

        let mut outputs = Vec::new();
        for output_section in section.tables("output", "[[stream.output]]", report) {
            let Some(output) = OutputConfig::read(&output_section, report) else {
                continue;
            };
            let key = match output.kind {
                OutputKind::Srt(_) => "url",
                OutputKind::Udp { .. } => "address",
                OutputKind::File { .. } => "path",
            };
            if let Some(f) = output_section.get(key) {
                claims.output(&output.kind, &f, report);
            }
            outputs.push(output);
        }

        Some(StreamConfig {
            id: id?,
            passphrase,
            users,
            settings,
            inputs,
            outputs,
        })
    }
}

/// `users`: SRT `u=` values. Each must be sendable in the access-control
/// streamid (`#!::u=alice,r=live/cam1`): no `,` (it separates keys), no
/// whitespace or control characters, at most the streamid limit.
fn read_users(field: &Field<'_>, report: &mut Report<'_>) -> Option<Vec<String>> {
    let Some(array) = field.item.as_array() else {
        field.invalid(
            report,
            "must be an array of SRT user names, such as [\"alice\", \"bob\"]",
        );
        return None;
    };
    let mut users: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, value) in array.iter().enumerate() {
        let path = format!("{}[{i}]", field.path);
        let span = value.span();
        let Some(user) = value.as_str() else {
            report.push(
                &path,
                span.as_ref(),
                ErrorKind::WrongType,
                format!(
                    "must be a string (an SRT user name), got {}",
                    with_article(value.type_name())
                ),
            );
            ok = false;
            continue;
        };
        let problem = if user.is_empty() {
            Some("must not be empty".to_string())
        } else if user.len() > MAX_STREAM_ID_BYTES {
            Some(format!(
                "must be at most {MAX_STREAM_ID_BYTES} bytes (SRT streamid limit), got {}",
                user.len()
            ))
        } else if let Some(c) = user
            .chars()
            .find(|&c| c == ',' || c.is_whitespace() || c.is_control())
        {
            Some(format!(
                "must not contain {c:?}: an SRT user name goes in the streamid as `u=NAME`, where `,` separates keys"
            ))
        } else if users.iter().any(|u| u == user) {
            Some(format!("lists {user:?} twice"))
        } else {
            None
        };
        match problem {
            Some(message) => {
                report.push(&path, span.as_ref(), ErrorKind::Invalid, message);
                ok = false;
            }
            None => users.push(user.to_string()),
        }
    }
    ok.then_some(users)
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::super::testing::{assert_has_error, assert_one_error, config, errors};
    use super::*;

    #[test]
    fn minimal_stream() {
        let c = config("[[stream]]\nid = \"live/cam1\"\n");
        let s = c.streams.first().expect("one stream");
        assert_eq!(s.id.as_str(), "live/cam1");
        assert_eq!(s.passphrase, None);
        assert_eq!(s.users, None);
        assert!(s.inputs.is_empty() && s.outputs.is_empty());
        assert!(s.admits(None) && s.admits(Some("anyone")));
    }

    #[test]
    fn passphrase_and_users() {
        let c = config(
            "[[stream]]\nid = \"a\"\npassphrase = \"0123456789\"\nusers = [\"alice\", \"bob\"]\n",
        );
        let s = c.streams.first().expect("one stream");
        assert_eq!(
            s.passphrase.as_ref().map(Passphrase::expose),
            Some("0123456789")
        );
        assert_eq!(s.users, Some(vec!["alice".to_string(), "bob".to_string()]));
        assert!(s.admits(Some("bob")));
        assert!(!s.admits(Some("eve")));
        assert!(!s.admits(None));
    }

    #[test]
    fn id_rules() {
        assert_one_error(
            "[[stream]]\npassphrase = \"0123456789\"\n",
            "stream[0].id",
            (1, 1),
            ErrorKind::Missing,
            "[[stream]] needs `id`",
        );
        assert_one_error(
            "[[stream]]\nid = \"live cam\"\n",
            "stream[0].id",
            (2, 6),
            ErrorKind::Invalid,
            "the stream id must not contain whitespace",
        );
        assert_one_error(
            "[[stream]]\nid = \"\"\n",
            "stream[0].id",
            (2, 6),
            ErrorKind::Invalid,
            "the stream id must not be empty",
        );
        assert_one_error(
            &format!("[[stream]]\nid = \"{}\"\n", "x".repeat(513)),
            "stream[0].id",
            (2, 6),
            ErrorKind::Invalid,
            "at most 512 bytes (SRT streamid limit), got 513",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\\u0001\"\n",
            "stream[0].id",
            (2, 6),
            ErrorKind::Invalid,
            "printable",
        );
        assert_one_error(
            "[[stream]]\nid = \"#!::r=a\"\n",
            "stream[0].id",
            (2, 6),
            ErrorKind::Invalid,
            "access-control",
        );
        assert_one_error(
            "[[stream]]\nid = 7\n",
            "stream[0].id",
            (2, 6),
            ErrorKind::WrongType,
            "must be a string, got an integer (7)",
        );
    }

    #[test]
    fn passphrase_rule() {
        assert_one_error(
            "[[stream]]\nid = \"a\"\npassphrase = \"short\"\n",
            "stream[0].passphrase",
            (3, 14),
            ErrorKind::Invalid,
            "must be between 10 and 79 characters (SRT passphrase rule), got 5",
        );
        assert_one_error(
            &format!(
                "[[stream]]\nid = \"a\"\npassphrase = \"{}\"\n",
                "p".repeat(80)
            ),
            "stream[0].passphrase",
            (3, 14),
            ErrorKind::Invalid,
            "got 80",
        );
    }

    #[test]
    fn user_rules() {
        assert_one_error(
            "[[stream]]\nid = \"a\"\nusers = \"alice\"\n",
            "stream[0].users",
            (3, 9),
            ErrorKind::Invalid,
            "must be an array of SRT user names",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\"\nusers = [\"alice\", 3]\n",
            "stream[0].users[1]",
            (3, 19),
            ErrorKind::WrongType,
            "got an integer",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\"\nusers = [\"a,b\"]\n",
            "stream[0].users[0]",
            (3, 10),
            ErrorKind::Invalid,
            "must not contain ','",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\"\nusers = [\"a b\"]\n",
            "stream[0].users[0]",
            (3, 10),
            ErrorKind::Invalid,
            "must not contain ' '",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\"\nusers = [\"\"]\n",
            "stream[0].users[0]",
            (3, 10),
            ErrorKind::Invalid,
            "must not be empty",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\"\nusers = [\"al\", \"al\"]\n",
            "stream[0].users[1]",
            (3, 16),
            ErrorKind::Invalid,
            "lists \"al\" twice",
        );
    }

    const UDP_MAIN: &str = "[[stream.input]]\nkind = \"udp\"\nlisten = \"0.0.0.0:5000\"\n";
    const UDP_BACKUP: &str =
        "[[stream.input]]\nkind = \"udp\"\nlisten = \"0.0.0.0:5001\"\nrole = \"backup\"\n";

    #[test]
    fn main_and_backup_inputs() {
        let c = config(&format!("[[stream]]\nid = \"a\"\n{UDP_MAIN}{UDP_BACKUP}"));
        let s = c.streams.first().expect("one stream");
        assert_eq!(
            s.input(InputRole::Main).map(|i| i.listen.port()),
            Some(5000)
        );
        assert_eq!(
            s.input(InputRole::Backup).map(|i| i.listen.port()),
            Some(5001)
        );
        // A backup alone is fine: the SRT publisher is the main.
        let c = config(&format!("[[stream]]\nid = \"a\"\n{UDP_BACKUP}"));
        assert_eq!(
            c.streams.first().and_then(|s| s.input(InputRole::Main)),
            None
        );
        // So is a main alone with no SRT users.
        config(&format!("[[stream]]\nid = \"a\"\nusers = []\n{UDP_MAIN}"));
    }

    #[test]
    fn at_most_one_main_and_one_backup() {
        let second_main = "[[stream.input]]\nkind = \"rtp\"\nlisten = \"0.0.0.0:5002\"\n";
        assert_one_error(
            &format!("[[stream]]\nid = \"a\"\n{UDP_MAIN}{second_main}"),
            "stream[0].input[1].role",
            (6, 1),
            ErrorKind::Conflict,
            "at most one main input, and stream[0].input[0] (line 3) is already its main; set role = \"backup\"",
        );
        let second_backup =
            "[[stream.input]]\nkind = \"rtp\"\nlisten = \"0.0.0.0:5002\"\nrole = \"backup\"\n";
        assert_one_error(
            &format!("[[stream]]\nid = \"a\"\n{UDP_BACKUP}{second_backup}"),
            "stream[0].input[1].role",
            (10, 8),
            ErrorKind::Conflict,
            "at most one backup input, and stream[0].input[0] (line 3) is already its backup",
        );
    }

    #[test]
    fn a_stream_needs_a_possible_main() {
        assert_one_error(
            &format!("[[stream]]\nid = \"a\"\nusers = []\n{UDP_BACKUP}"),
            "stream[0].users",
            (3, 9),
            ErrorKind::Conflict,
            "`users = []` admits no SRT caller",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\"\nusers = []\n",
            "stream[0].users",
            (3, 9),
            ErrorKind::Conflict,
            "no input with role = \"main\"",
        );
    }

    #[test]
    fn unknown_keys_in_a_stream() {
        assert_one_error(
            "[[stream]]\nid = \"a\"\npasphrase = \"0123456789\"\n",
            "stream[0].pasphrase",
            (3, 1),
            ErrorKind::UnknownKey,
            "unknown key `pasphrase` in [[stream]]; did you mean `passphrase`?",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\"\nlatency_ms = 200\n",
            "stream[0].latency_ms",
            (3, 1),
            ErrorKind::UnknownKey,
            "it belongs in [srt]",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\"\n[[stream.inputs]]\nkind = \"udp\"\n",
            "stream[0].inputs",
            (3, 10),
            ErrorKind::UnknownKey,
            "did you mean `input`?",
        );
    }

    #[test]
    fn inline_forms_are_accepted() {
        let c = config(
            "stream = [{ id = \"a\", input = [{ kind = \"udp\", listen = \"0.0.0.0:5000\" }], output = [{ kind = \"file\", path = \"a.ts\" }] }]\n",
        );
        let s = c.streams.first().expect("one stream");
        assert_eq!(s.inputs.len(), 1);
        assert_eq!(s.outputs.len(), 1);
        let e = errors("stream = [{ id = \"a\", input = [{ kind = \"udp\" }, 5] }]\n");
        assert_has_error(
            &e,
            "stream[0].input[0].listen",
            (1, 32),
            ErrorKind::Missing,
            "needs `listen`",
        );
        assert_has_error(
            &e,
            "stream[0].input[1]",
            (1, 50),
            ErrorKind::WrongType,
            "must be a table (`[[stream.input]]`), got an integer (5)",
        );
        assert_eq!(e.len(), 2, "{e:#?}");
    }

    #[test]
    fn single_bracket_tables_are_explained() {
        assert_one_error(
            "[stream]\nid = \"a\"\n",
            "stream",
            (1, 1),
            ErrorKind::WrongType,
            "must be an array of tables: write `[[stream]]` with double brackets, once per entry, got a table",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\"\n[stream.input]\nkind = \"udp\"\n",
            "stream[0].input",
            (3, 1),
            ErrorKind::WrongType,
            "write `[[stream.input]]`",
        );
    }
}
