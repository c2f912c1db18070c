//! Chat templates rendered the way transformers' `apply_chat_template` renders them: Jinja with
//! `trim_blocks` and `lstrip_blocks` on and the template's final newline dropped, Python string
//! methods (`.strip()`, `.startswith()`, ...), `raise_exception`, `strftime_now`, a `tojson` that
//! does not escape HTML, and the special tokens (`bos_token`, `eos_token`, ...) as variables.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use super::{SpecialTokens, TokenizerError};

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (templates may accept others).
    pub role: String,
    /// The turn's text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template together with the variables transformers passes to it.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    special: Vec<(&'static str, String)>,
    date_string: Option<String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("special", &self.special)
            .field("date_string", &self.date_string)
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `special` supplies `bos_token`, `eos_token`, `unk_token` and `pad_token`.
    pub fn new(source: &str, special: &SpecialTokens) -> Result<Self, TokenizerError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(template_error)?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(template_error)?;
        let special = [
            ("bos_token", &special.bos),
            ("eos_token", &special.eos),
            ("unk_token", &special.unk),
            ("pad_token", &special.pad),
        ]
        .into_iter()
        .filter_map(|(name, token)| token.clone().map(|t| (name, t)))
        .collect();
        Ok(Self {
            env,
            source: source.to_owned(),
            special,
            date_string: None,
        })
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Passes `date_string` to the template (Llama 3 templates print it in their system block).
    /// Unset, such templates fall back to `strftime_now` (today, local time) or their own default,
    /// as with transformers; set it to make prompts independent of the day they are rendered on.
    pub fn set_date_string(&mut self, date: Option<String>) {
        self.date_string = date;
    }

    /// Renders `messages`; with `add_generation_prompt` the template appends the header that
    /// opens the assistant's turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from_pairs([("role", m.role.as_str()), ("content", m.content.as_str())])
            })
            .collect();
        let mut vars: Vec<(&str, Value)> = vec![
            ("messages", Value::from(messages)),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
            ("tools", Value::from(())),
            ("documents", Value::from(())),
        ];
        vars.extend(
            self.special
                .iter()
                .map(|(name, token)| (*name, Value::from(token.as_str()))),
        );
        if let Some(date) = &self.date_string {
            vars.push(("date_string", Value::from(date.as_str())));
        }
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(template_error)?;
        template
            .render(Value::from_pairs(vars))
            .map_err(template_error)
    }
}

fn template_error(err: Error) -> TokenizerError {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    TokenizerError::Template(message)
}

/// `raise_exception(message)`: templates call it to reject a conversation.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("the template raised: {message}"),
    ))
}

/// `strftime_now(format)`: the current local time, formatted as Python's `strftime` does.
fn strftime_now(format: String) -> Result<String, Error> {
    jiff::fmt::strtime::format(format.as_bytes(), &jiff::Zoned::now()).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now(`{format}`): {e}"),
        )
    })
}

/// `tojson(indent=None)`: Python's `json.dumps(value, ensure_ascii=False, indent=indent)`, which
/// transformers installs in place of Jinja's HTML-escaping filter.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&mut out, value, indent, 0)?;
    Ok(out)
}

fn write_json(
    out: &mut String,
    value: &Value,
    indent: Option<usize>,
    depth: usize,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&value.to_string()),
        ValueKind::String => out.push_str(&json_string(value.as_str().unwrap_or_default())),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(out, ('[', ']'), &items, indent, depth, |out, item| {
                write_json(out, item, indent, depth + 1)
            })?;
        }
        ValueKind::Map => {
            let keys: Vec<Value> = value.try_iter()?.collect();
            write_container(out, ('{', '}'), &keys, indent, depth, |out, key| {
                let name = key
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| key.to_string());
                out.push_str(&json_string(&name));
                out.push_str(": ");
                write_json(out, &value.get_item(key)?, indent, depth + 1)
            })?;
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson cannot serialise a value of kind {other}"),
            ));
        }
    }
    Ok(())
}

/// Writes `open item, item close`, laid out as `json.dumps` does: `, ` between items on one line,
/// or one item per line indented by `indent` spaces per level.
fn write_container(
    out: &mut String,
    (open, close): (char, char),
    items: &[Value],
    indent: Option<usize>,
    depth: usize,
    mut write_item: impl FnMut(&mut String, &Value) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * level));
        }
    };
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(if indent.is_some() { "," } else { ", " });
        }
        newline(out, depth + 1);
        write_item(out, item)?;
    }
    newline(out, depth);
    out.push(close);
    Ok(())
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str) -> String {
        let special = SpecialTokens {
            bos: Some("<s>".into()),
            eos: Some("</s>".into()),
            ..Default::default()
        };
        let messages = [ChatMessage::new("user", "a \"quoted\" <tag> & é\n")];
        ChatTemplate::new(source, &special)
            .unwrap()
            .render(&messages, false)
            .unwrap()
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        // json.dumps({"a": [1, "x"], "b": {}, "c": None, "d": True}, ensure_ascii=False)
        assert_eq!(
            render("{{ {'a': [1, 'x'], 'b': {}, 'c': none, 'd': true} | tojson }}"),
            r#"{"a": [1, "x"], "b": {}, "c": null, "d": true}"#
        );
        // json.dumps([{"role": "user", "content": ...}], ensure_ascii=False, indent=2)
        assert_eq!(
            render("{{ messages | tojson(indent=2) }}"),
            "[\n  {\n    \"role\": \"user\",\n    \"content\": \"a \\\"quoted\\\" <tag> & é\\n\"\n  }\n]"
        );
    }

    #[test]
    fn raise_exception_and_bad_arguments_are_template_errors() {
        let special = SpecialTokens::default();
        let t =
            ChatTemplate::new("{{ raise_exception('roles must alternate') }}", &special).unwrap();
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("roles must alternate"), "{err}");
        let t = ChatTemplate::new("{{ messages | tojson(width=3) }}", &special).unwrap();
        assert!(t.render(&[], false).is_err());
        let err = ChatTemplate::new("{% if %}", &special)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("chat template: "), "{err}");
    }

    #[test]
    fn strftime_now_formats_today() {
        let out = render("{{ strftime_now('%Y-%m-%d') }}");
        let today = jiff::Zoned::now().date().to_string();
        assert_eq!(out, today);
    }
}
