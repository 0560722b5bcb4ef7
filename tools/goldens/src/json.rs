//! A tiny ordered JSON tree and a renderer that keeps goldens short and diff-friendly: keys in
//! the order they are built, arrays of numbers and small flat objects on one line, long number
//! arrays wrapped at [`WIDTH`] columns.

use std::fmt::Write as _;

const WIDTH: usize = 100;
const INDENT: &str = "  ";

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Int(i64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(0, &mut out);
        out.push('\n');
        out
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Json::Null | Json::Int(_) | Json::Str(_))
    }

    /// Single-line form, if the value is a scalar, an array of scalars or an object whose
    /// values are all scalars.
    fn inline(&self) -> Option<String> {
        match self {
            Json::Null => Some("null".into()),
            Json::Int(n) => Some(n.to_string()),
            Json::Str(s) => Some(serde_json::to_string(s).expect("a String always serializes")),
            Json::Arr(items) if items.iter().all(Json::is_scalar) => {
                let parts: Vec<String> = items.iter().filter_map(Json::inline).collect();
                Some(format!("[{}]", parts.join(", ")))
            }
            Json::Obj(fields) if fields.iter().all(|(_, v)| v.is_scalar()) => {
                let parts: Vec<String> = fields
                    .iter()
                    .filter_map(|(k, v)| Some(format!("\"{k}\": {}", v.inline()?)))
                    .collect();
                Some(format!("{{{}}}", parts.join(", ")))
            }
            Json::Arr(_) | Json::Obj(_) => None,
        }
    }

    /// Renders at the current cursor, which sits after `indent` levels plus whatever prefix
    /// (a key) the caller already wrote on this line.
    fn render_into(&self, indent: usize, out: &mut String) {
        let line_start = out.rfind('\n').map_or(0, |i| i + 1);
        let column = out.len() - line_start;
        if let Some(inline) = self.inline()
            && column + inline.len() <= WIDTH
        {
            out.push_str(&inline);
            return;
        }
        let pad = INDENT.repeat(indent);
        let inner = INDENT.repeat(indent + 1);
        match self {
            Json::Arr(items) if items.iter().all(Json::is_scalar) => {
                // Long scalar array: wrap, several values per line.
                out.push_str("[\n");
                let mut line = String::new();
                for (i, item) in items.iter().enumerate() {
                    let mut text = item.inline().expect("scalars always inline");
                    if i + 1 < items.len() {
                        text.push(',');
                    }
                    if !line.is_empty() && inner.len() + line.len() + 1 + text.len() > WIDTH {
                        let _ = writeln!(out, "{inner}{line}");
                        line.clear();
                    }
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(&text);
                }
                if !line.is_empty() {
                    let _ = writeln!(out, "{inner}{line}");
                }
                let _ = write!(out, "{pad}]");
            }
            Json::Arr(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    out.push_str(&inner);
                    item.render_into(indent + 1, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                let _ = write!(out, "{pad}]");
            }
            Json::Obj(fields) => {
                out.push_str("{\n");
                for (i, (key, value)) in fields.iter().enumerate() {
                    let _ = write!(out, "{inner}\"{key}\": ");
                    value.render_into(indent + 1, out);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                let _ = write!(out, "{pad}}}");
            }
            Json::Null | Json::Int(_) | Json::Str(_) => {
                out.push_str(&self.inline().expect("scalars always inline"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_text_is_valid_json_with_the_same_content() {
        let long: Vec<Json> = (0..60).map(|i| Json::Int(100_000 + i * 3600)).collect();
        let doc = Json::Obj(vec![
            ("file", Json::Str("a \"b\".ts".into())),
            ("pts", Json::Arr(long)),
            ("empty", Json::Arr(vec![])),
            ("nothing", Json::Null),
            (
                "streams",
                Json::Arr(vec![Json::Obj(vec![
                    ("pid", Json::Int(256)),
                    ("codec", Json::Str("h264".into())),
                ])]),
            ),
        ]);
        let text = doc.render();
        assert!(text.lines().all(|l| l.len() <= WIDTH), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["pts"].as_array().unwrap().len(), 60);
        assert_eq!(value["file"], "a \"b\".ts");
        assert!(text.contains("{\"pid\": 256, \"codec\": \"h264\"}"));
        assert!(text.contains("\"empty\": []"));
    }
}
