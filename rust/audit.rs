//! `audit`: per-record validation and exact token accounting for fine-tuning datasets in the OpenAI
//! formats (chat, preference, legacy completion) and for plain text records.
//!
//! [`audit_record`] gives a record a list of errors (the record would be rejected by the fine-tuning
//! API) and warnings (it would be accepted, maybe not as meant), each a [`Problem`] with a stable code
//! from [`codes`] and a message naming the offending message (`messages[2]`) or key, and counts its
//! tokens exactly with the given [`Counter`] (what is counted: [`RecordAudit`]). An invalid record is
//! still counted as far as its shape allows.
//!
//! The rules are the error categories of OpenAI's chat fine-tuning data-preparation cookbook, extended
//! with the rules of today's API (roles, tool calls, weights, preference records); every code says
//! which rule a record breaks.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};
use smallvec::SmallVec;

use crate::interned::Label;
use crate::record::{for_each_content_text, json_type, Problem};
use crate::tokenizer::Counter;

/// A record's errors or warnings. Most records have none, or one or two warnings (no system message,
/// a special token): kept inline, these cost no allocation in the worker and no free on the
/// collector's thread, where frees of another thread's memory contend for its allocator's lock.
pub type Problems = SmallVec<[Problem; 2]>;

/// Stable codes of the problems an audit reports.
pub mod codes {
    use crate::record;

    // Errors: the record would be rejected.
    /// A message is not a JSON object (the cookbook's `data_type`; the same code as a line that is not
    /// an object).
    pub const DATA_TYPE: &str = record::codes::NOT_AN_OBJECT;
    /// A chat record whose `messages` is missing, not a list, or empty.
    pub const MISSING_MESSAGES_LIST: &str = "missing_messages_list";
    /// A message without `role`, without `content` (unless an assistant message with tool calls), a
    /// `tool` message without `tool_call_id`, or a `function` message without `name`.
    pub const MESSAGE_MISSING_KEY: &str = "message_missing_key";
    /// A message key outside [`MESSAGE_KEYS`](super::MESSAGE_KEYS).
    pub const MESSAGE_UNRECOGNIZED_KEY: &str = "message_unrecognized_key";
    /// A `role` outside [`ROLES`](super::ROLES), or not a string.
    pub const UNRECOGNIZED_ROLE: &str = "unrecognized_role";
    /// `content` is null, `""` or an empty list where content is required (everywhere except an
    /// assistant message with `tool_calls` or `function_call`).
    pub const MISSING_CONTENT: &str = "missing_content";
    /// `content` (or `refusal`) of the wrong type: only user messages may hold a list of content parts.
    pub const CONTENT_NOT_STRING: &str = "content_not_string";
    /// A user content part that is not `{"type": "text", "text": str}` or
    /// `{"type": "image_url", "image_url": {"url": str}}`.
    pub const INVALID_CONTENT_PART: &str = "invalid_content_part";
    /// A message `name` that is not a non-empty string.
    pub const INVALID_NAME: &str = "invalid_name";
    /// A chat record without an assistant message.
    pub const EXAMPLE_MISSING_ASSISTANT_MESSAGE: &str = "example_missing_assistant_message";
    /// A `weight` that is not 0 or 1, or a weight on a message that is not an assistant message.
    pub const INVALID_WEIGHT: &str = "invalid_weight";
    /// A malformed `tool_calls` / `function_call`, a tool call on a non-assistant message, or a `tool`
    /// message whose `tool_call_id` answers no earlier tool call.
    pub const INVALID_TOOL_CALL: &str = "invalid_tool_call";
    /// Assistant `tool_calls` in a record without `tools`, or `function_call` without `functions`.
    pub const TOOL_CALL_WITHOUT_TOOLS: &str = "tool_call_without_tools";
    /// Malformed `tools` or `functions` definitions.
    pub const INVALID_TOOLS: &str = "invalid_tools";
    /// A preference record without a valid `input.messages`, or whose `preferred_output` /
    /// `non_preferred_output` is not a list of exactly one assistant message.
    pub const INVALID_PREFERENCE: &str = "invalid_preference";
    /// A completion record without `prompt` or `completion`, or a text record without its field.
    pub const FIELD_MISSING: &str = record::codes::FIELD_MISSING;
    /// A completion record's `prompt` / `completion`, or a text record's field, is not a string.
    pub const FIELD_NOT_STRING: &str = record::codes::FIELD_NOT_STRING;
    /// The tokenizer failed on a text (those texts count 0 tokens).
    pub const TOKENIZER_FAILED: &str = record::codes::TOKENIZER_FAILED;

    // Warnings: the record is valid.
    /// A chat or preference record without a `system` (or `developer`) message.
    pub const NO_SYSTEM_MESSAGE: &str = "no_system_message";
    /// A chat or preference record without a `user` message.
    pub const NO_USER_MESSAGE: &str = "no_user_message";
    /// More tokens than the context limit: the example would be truncated in training.
    pub const TOO_LONG: &str = "too_long";
    /// A text holds something that looks like a special token, such as `<|endoftext|>`.
    pub const SPECIAL_TOKEN_TEXT: &str = "special_token_text";

    // File-level warnings, which the caller adds.
    /// Fewer examples than the API's minimum ([`MIN_EXAMPLES`](super::MIN_EXAMPLES)).
    pub const TOO_FEW_EXAMPLES: &str = "too_few_examples";
    /// A record that repeats an earlier one.
    pub const DUPLICATE: &str = "duplicate";
}

/// The fewest examples the OpenAI fine-tuning API accepts in a training file.
pub const MIN_EXAMPLES: u64 = 10;

/// The message roles the API knows.
pub const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool", "function"];

/// The keys a message may have. `weight` (0 or 1) only on assistant messages; `tool_calls`,
/// `function_call` and `refusal` are assistant keys; `tool_call_id` is the `tool` message's answer to a
/// call; `name` names the participant (required on `function` messages).
pub const MESSAGE_KEYS: &[&str] =
    &["role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"];

/// Tokens of a message's framing (`<|start|>{role}<|message|>...<|end|>` less the role's own tokens),
/// per OpenAI's token-counting cookbook.
pub const TOKENS_PER_MESSAGE: u64 = 3;
/// Extra tokens for a message's `name`.
pub const TOKENS_PER_NAME: u64 = 1;
/// Tokens that prime the reply (`<|start|>assistant<|message|>`), once per conversation.
pub const REPLY_PRIMING_TOKENS: u64 = 3;

/// A record's dataset format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// `{"messages": [...], "tools"?: [...], "functions"?: [...]}`
    Chat,
    /// `{"input": {"messages": [...], "tools"?: [...]}, "preferred_output": [msg],
    /// "non_preferred_output": [msg]}` (direct preference optimization).
    Preference,
    /// `{"prompt": str, "completion": str}` (legacy completion models).
    Completion,
    /// One text field (`text` unless configured).
    Text,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Chat, Format::Preference, Format::Completion, Format::Text];

    pub fn name(self) -> &'static str {
        match self {
            Format::Chat => "chat",
            Format::Preference => "preference",
            Format::Completion => "completion",
            Format::Text => "text",
        }
    }

    /// The format called `name` ([`Format::name`]).
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The top-level keys that [`Format::detect`] looks at.
    pub const KEYS: [&'static str; 6] =
        ["messages", "input", "preferred_output", "non_preferred_output", "prompt", "completion"];

    /// The format a record is in: `messages` makes it chat; `input` with `preferred_output` or
    /// `non_preferred_output` a preference record; `prompt` or `completion` a completion record;
    /// anything else a text record.
    pub fn detect(record: &Map<String, Value>) -> Format {
        Format::from_keys(|key| record.contains_key(key))
    }

    /// [`Format::detect`] for a record that has the keys of [`Format::KEYS`] for which `has` is true.
    pub fn from_keys(has: impl Fn(&str) -> bool) -> Format {
        if has("messages") {
            Format::Chat
        } else if has("input") && (has("preferred_output") || has("non_preferred_output")) {
            Format::Preference
        } else if has("prompt") || has("completion") {
            Format::Completion
        } else {
            Format::Text
        }
    }
}

/// A key, or a dotted path of keys into nested objects (`metadata.label`).
pub fn parse_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditOptions {
    /// Audit every record in this format instead of detecting each record's format.
    pub format: Option<Format>,
    /// The field of text records, as a path ([`parse_path`]); `["text"]` by default.
    pub text_field: Vec<String>,
    /// Warn ([`codes::TOO_LONG`]) about records with more total tokens than this.
    pub context_limit: Option<u64>,
    /// Take the label ([`RecordAudit::label`]) from this field instead.
    pub label_field: Option<Vec<String>>,
}

impl Default for AuditOptions {
    fn default() -> AuditOptions {
        AuditOptions {
            format: None,
            text_field: vec!["text".to_string()],
            context_limit: None,
            label_field: None,
        }
    }
}

/// The audit of one record.
///
/// Token accounting follows OpenAI's token-counting cookbook (`num_tokens_from_messages`):
/// - a message counts [`TOKENS_PER_MESSAGE`] (3) plus the tokens of each of its string values (`role`,
///   `content`, `name`, `tool_call_id`, `refusal`, ...), plus [`TOKENS_PER_NAME`] (1) if it has a
///   `name`; a content-part list counts the `text` of its text parts (image parts count 0: their cost
///   depends on the image, which is not read); a message that is not an object counts 0;
/// - a conversation adds [`REPLY_PRIMING_TOKENS`] (3) once.
///
/// Tools are an approximation, since OpenAI renders them in a hidden format of its own: a tool call
/// (each `tool_calls[].function`, and a `function_call`) counts the tokens of its `name` and
/// `arguments` strings (not its `id` or `type`), added to its message; the record's `tools` and
/// `functions` definitions count the tokens of their compact JSON serialization (keys in sorted order),
/// once per record, in `total_tokens` only.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordAudit {
    pub format: Format,
    /// The record would be rejected when there is any.
    pub errors: Problems,
    pub warnings: Problems,
    /// Chat: `messages`; preference: `input.messages` plus `preferred_output`; others: 0.
    pub n_messages: u32,
    /// Chat: all messages, the tool definitions and the reply priming. Preference: the same for
    /// `input` followed by the `preferred_output` message (the non-preferred output is not counted).
    /// Completion: `prompt_tokens + completion_tokens` (the legacy format has no framing). Text: the
    /// tokens of the field.
    pub total_tokens: u64,
    /// Tokens trained on. Chat: the whole per-message count (3-token framing, role and name
    /// included) of each assistant message whose `weight` is not 0; preference: the preferred output
    /// message, counted the same way; completion: `completion_tokens`; text: `total_tokens`.
    pub trainable_tokens: u64,
    /// The tokens of content texts only: message `content` (chat, preference as in `total_tokens`),
    /// `prompt` and `completion`, or the text field.
    pub content_tokens: u64,
    /// Completion records: the tokens of `prompt`; 0 for other formats.
    pub prompt_tokens: u64,
    /// Completion records: the tokens of `completion`; 0 for other formats.
    pub completion_tokens: u64,
    /// The target text, for class balance: the string content of the last assistant message (chat;
    /// the preferred output for preference records), the completion (completion records), nothing for
    /// text records. With [`AuditOptions::label_field`], that field instead (a string, or a number or
    /// boolean as JSON), nothing when it is missing or another type.
    pub label: Option<String>,
}

impl RecordAudit {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    fn empty(format: Format) -> RecordAudit {
        RecordAudit {
            format,
            errors: Problems::new(),
            warnings: Problems::new(),
            n_messages: 0,
            total_tokens: 0,
            trainable_tokens: 0,
            content_tokens: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            label: None,
        }
    }
}

/// Validates `record` and counts its tokens (see [`RecordAudit`]). Warnings of the codes in `quiet`
/// get an empty message: a caller that keeps the messages of only the first warnings of each code
/// need not write the others (on some datasets, nearly every record has a warning).
pub fn audit_record(
    record: &Map<String, Value>,
    options: &AuditOptions,
    quiet: &[Label],
    counter: &mut Counter,
) -> RecordAudit {
    let format = options.format.unwrap_or_else(|| Format::detect(record));
    let mut audit = RecordAudit::empty(format);
    let mut tally = Tally { counter, quiet, failure: None, special: None };
    match format {
        Format::Chat => audit_chat(record, &mut tally, &mut audit),
        Format::Preference => audit_preference(record, &mut tally, &mut audit),
        Format::Completion => audit_completion(record, &mut tally, &mut audit),
        Format::Text => audit_text(record, &options.text_field, &mut tally, &mut audit),
    }
    if let Some(path) = &options.label_field {
        audit.label = lookup(record, path).and_then(|value| match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
            _ => None,
        });
    }
    tally.conclude(options, &mut audit);
    audit
}

/// What [`audit_record`] makes of a record in the text format whose text field is the string
/// `text`: the same audit, for a reader that found the field without building the record. Not for
/// options with a label field.
pub fn audit_text_field(
    text: &str,
    options: &AuditOptions,
    quiet: &[Label],
    counter: &mut Counter,
) -> RecordAudit {
    debug_assert!(options.label_field.is_none() && matches!(options.format, None | Some(Format::Text)));
    let mut audit = RecordAudit::empty(Format::Text);
    let mut tally = Tally { counter, quiet, failure: None, special: None };
    count_text_field(text, &options.text_field, &mut tally, &mut audit);
    tally.conclude(options, &mut audit);
    audit
}

/// Where a message is: `messages[2]`, `input.messages[0]`, `preferred_output[0]`.
#[derive(Clone, Copy, Debug)]
struct At {
    list: &'static str,
    index: usize,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.list, self.index)
    }
}

fn error(errors: &mut Problems, code: &'static str, message: String) {
    errors.push(Problem::new(code, message));
}

fn role_of(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

fn lookup<'v>(record: &'v Map<String, Value>, path: &[String]) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(record.get(first)?, |value, key| value.get(key.as_str()))
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn audit_chat(record: &Map<String, Value>, tally: &mut Tally, audit: &mut RecordAudit) {
    let errors = &mut audit.errors;
    let messages = match record.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => Some(messages.as_slice()),
        Some(Value::Array(_)) => {
            error(errors, codes::MISSING_MESSAGES_LIST, "\"messages\" is an empty list".into());
            None
        }
        Some(other) => {
            let message = format!("\"messages\" is {}, not a list", json_type(other));
            error(errors, codes::MISSING_MESSAGES_LIST, message);
            None
        }
        None => {
            error(errors, codes::MISSING_MESSAGES_LIST, "no \"messages\" list".into());
            None
        }
    };
    let mut calls = Calls::default();
    if let Some(messages) = messages {
        for (index, message) in messages.iter().enumerate() {
            check_message(message, At { list: "messages", index }, &mut calls, errors);
        }
        if !messages.iter().any(|m| role_of(m) == Some("assistant")) {
            error(errors, codes::EXAMPLE_MISSING_ASSISTANT_MESSAGE, "no assistant message".into());
        }
        role_warnings(messages, tally, &mut audit.warnings);
    }
    let definitions = check_definitions(record, "", errors);
    calls.require_definitions(definitions, "", errors);

    if let Some(messages) = messages {
        for (index, message) in messages.iter().enumerate() {
            let n = count_message(tally, message, At { list: "messages", index });
            audit.total_tokens += n.tokens;
            audit.content_tokens += n.content;
            if is_trained(message) {
                audit.trainable_tokens += n.tokens;
            }
        }
        audit.total_tokens += REPLY_PRIMING_TOKENS;
        audit.n_messages = to_u32(messages.len());
        audit.label = last_assistant_content(messages);
    }
    audit.total_tokens += count_definitions(record, "", tally);
}

fn audit_preference(record: &Map<String, Value>, tally: &mut Tally, audit: &mut RecordAudit) {
    let errors = &mut audit.errors;
    let input = match record.get("input") {
        Some(Value::Object(input)) => Some(input),
        Some(other) => {
            error(
                errors,
                codes::INVALID_PREFERENCE,
                format!("\"input\" is {}, not an object", json_type(other)),
            );
            None
        }
        None => {
            error(errors, codes::INVALID_PREFERENCE, "no \"input\" object".into());
            None
        }
    };
    let input_messages = input.and_then(|input| match input.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => Some(messages.as_slice()),
        Some(Value::Array(_)) => {
            error(errors, codes::INVALID_PREFERENCE, "\"input.messages\" is an empty list".into());
            None
        }
        Some(other) => {
            let message = format!("\"input.messages\" is {}, not a list", json_type(other));
            error(errors, codes::INVALID_PREFERENCE, message);
            None
        }
        None => {
            error(errors, codes::INVALID_PREFERENCE, "no \"input.messages\" list".into());
            None
        }
    });
    let mut calls = Calls::default();
    if let Some(messages) = input_messages {
        for (index, message) in messages.iter().enumerate() {
            check_message(message, At { list: "input.messages", index }, &mut calls, errors);
        }
        role_warnings(messages, tally, &mut audit.warnings);
    }
    let mut preferred = None;
    for key in ["preferred_output", "non_preferred_output"] {
        let output = match record.get(key) {
            Some(Value::Array(output)) => output,
            Some(other) => {
                let message = format!("\"{key}\" is {}, not a list", json_type(other));
                error(errors, codes::INVALID_PREFERENCE, message);
                continue;
            }
            None => {
                error(errors, codes::INVALID_PREFERENCE, format!("no \"{key}\" list"));
                continue;
            }
        };
        if output.len() != 1 {
            let message =
                format!("\"{key}\" has {} messages; expected exactly one assistant message", output.len());
            error(errors, codes::INVALID_PREFERENCE, message);
        }
        for (index, message) in output.iter().enumerate() {
            let at = At { list: key, index };
            check_message(message, at, &mut calls, errors);
            if let Some(role) = role_of(message).filter(|&role| role != "assistant") {
                let message = format!("{at} has role {role:?}; an output must be an assistant message");
                error(errors, codes::INVALID_PREFERENCE, message);
            }
        }
        if key == "preferred_output" {
            preferred = Some(output.as_slice());
        }
    }
    let definitions = input.map(|input| check_definitions(input, "input.", errors)).unwrap_or_default();
    calls.require_definitions(definitions, "input.", errors);

    let mut any_message = false;
    for (list, messages, trained) in
        [("input.messages", input_messages, false), ("preferred_output", preferred, true)]
    {
        for (index, message) in messages.unwrap_or_default().iter().enumerate() {
            let n = count_message(tally, message, At { list, index });
            audit.total_tokens += n.tokens;
            audit.content_tokens += n.content;
            if trained {
                audit.trainable_tokens += n.tokens;
            }
            audit.n_messages = audit.n_messages.saturating_add(1);
            any_message = true;
        }
    }
    if any_message {
        audit.total_tokens += REPLY_PRIMING_TOKENS;
    }
    if let Some(input) = input {
        audit.total_tokens += count_definitions(input, "input.", tally);
    }
    audit.label = preferred.and_then(last_assistant_content);
}

fn audit_completion(record: &Map<String, Value>, tally: &mut Tally, audit: &mut RecordAudit) {
    let mut field = |key: &'static str| match record.get(key) {
        Some(Value::String(text)) => Some((key, text)),
        Some(other) => {
            let message = format!("\"{key}\" is {}, not a string", json_type(other));
            error(&mut audit.errors, codes::FIELD_NOT_STRING, message);
            None
        }
        None => {
            error(&mut audit.errors, codes::FIELD_MISSING, format!("no \"{key}\" field"));
            None
        }
    };
    let (prompt, completion) = (field("prompt"), field("completion"));
    let mut count = |field: Option<(&str, &String)>| match field {
        Some((key, text)) => tally.count(text, || key.to_string()),
        None => 0,
    };
    audit.prompt_tokens = count(prompt);
    audit.completion_tokens = count(completion);
    audit.total_tokens = audit.prompt_tokens + audit.completion_tokens;
    audit.content_tokens = audit.total_tokens;
    audit.trainable_tokens = audit.completion_tokens;
    audit.label = completion.map(|(_, text)| text.clone());
}

fn audit_text(record: &Map<String, Value>, path: &[String], tally: &mut Tally, audit: &mut RecordAudit) {
    let name = || path.join(".");
    match lookup(record, path) {
        Some(Value::String(text)) => count_text_field(text, path, tally, audit),
        Some(other) => {
            let name = name();
            let message = format!("field {name:?} is {}, not a string", json_type(other));
            error(&mut audit.errors, codes::FIELD_NOT_STRING, message);
        }
        None => error(&mut audit.errors, codes::FIELD_MISSING, format!("no field {:?}", name())),
    }
}

/// The tokens of a text record whose field at `path` is `text`.
fn count_text_field(text: &str, path: &[String], tally: &mut Tally, audit: &mut RecordAudit) {
    audit.total_tokens = tally.count(text, || path.join("."));
    audit.content_tokens = audit.total_tokens;
    audit.trainable_tokens = audit.total_tokens;
}

/// An assistant message whose `weight` is not 0 (a missing or invalid weight trains).
fn is_trained(message: &Value) -> bool {
    role_of(message) == Some("assistant")
        && !message.get("weight").and_then(Value::as_f64).is_some_and(|weight| weight == 0.0)
}

fn last_assistant_content(messages: &[Value]) -> Option<String> {
    let last = messages.iter().rev().find(|m| role_of(m) == Some("assistant"))?;
    last.get("content").and_then(Value::as_str).map(str::to_string)
}

fn role_warnings(messages: &[Value], tally: &Tally, warnings: &mut Problems) {
    let has = |roles: &[&str]| messages.iter().filter_map(role_of).any(|role| roles.contains(&role));
    if !has(&["system", "developer"]) {
        warnings.push(tally.warning(codes::NO_SYSTEM_MESSAGE, || "no system (or developer) message".into()));
    }
    if !has(&["user"]) {
        warnings.push(tally.warning(codes::NO_USER_MESSAGE, || "no user message".into()));
    }
}

/// The tool calls of a conversation, for the checks that span messages.
#[derive(Default)]
struct Calls<'v> {
    /// The `id` of every assistant tool call so far.
    ids: Vec<&'v str>,
    /// The first assistant message with `tool_calls`.
    first_tool_calls: Option<At>,
    /// The first assistant message with `function_call`.
    first_function_call: Option<At>,
}

impl Calls<'_> {
    fn require_definitions(&self, definitions: Definitions, prefix: &str, errors: &mut Problems) {
        let needs = [
            (self.first_tool_calls, definitions.tools, "tools"),
            (self.first_function_call, definitions.functions, "functions"),
        ];
        for (first, defined, key) in needs {
            if let Some(at) = first.filter(|_| !defined) {
                let message =
                    format!("{at} calls a function but the record has no \"{prefix}{key}\" definitions");
                error(errors, codes::TOOL_CALL_WITHOUT_TOOLS, message);
            }
        }
    }
}

fn check_message<'v>(message: &'v Value, at: At, calls: &mut Calls<'v>, errors: &mut Problems) {
    let Value::Object(m) = message else {
        error(errors, codes::DATA_TYPE, format!("{at} is {}, not an object", json_type(message)));
        return;
    };
    let role = match m.get("role") {
        Some(Value::String(role)) if ROLES.contains(&role.as_str()) => Some(role.as_str()),
        Some(Value::String(role)) => {
            let message = format!("{at} has role {role:?}; expected one of {}", ROLES.join(", "));
            error(errors, codes::UNRECOGNIZED_ROLE, message);
            None
        }
        Some(other) => {
            error(
                errors,
                codes::UNRECOGNIZED_ROLE,
                format!("{at} \"role\" is {}, not a string", json_type(other)),
            );
            None
        }
        None => {
            error(errors, codes::MESSAGE_MISSING_KEY, format!("{at} has no \"role\""));
            None
        }
    };
    let unknown: Vec<String> =
        m.keys().filter(|key| !MESSAGE_KEYS.contains(&key.as_str())).map(|key| format!("{key:?}")).collect();
    if !unknown.is_empty() {
        let message = format!(
            "{at} has unrecognized keys {}; allowed: {}",
            unknown.join(", "),
            MESSAGE_KEYS.join(", ")
        );
        error(errors, codes::MESSAGE_UNRECOGNIZED_KEY, message);
    }
    let assistant = role == Some("assistant");

    match m.get("name") {
        Some(Value::String(name)) if !name.is_empty() => {}
        Some(other) => {
            error(errors, codes::INVALID_NAME, format!("{at} \"name\" {other} is not a non-empty string"))
        }
        None if role == Some("function") => {
            error(errors, codes::MESSAGE_MISSING_KEY, format!("{at} (function) has no \"name\""));
        }
        None => {}
    }

    if let Some(weight) = m.get("weight") {
        if !assistant {
            let message = format!("{at} has a \"weight\", which only assistant messages may have");
            error(errors, codes::INVALID_WEIGHT, message);
        } else if !matches!(weight.as_f64(), Some(w) if w == 0.0 || w == 1.0) {
            error(errors, codes::INVALID_WEIGHT, format!("{at} has weight {weight}; it must be 0 or 1"));
        }
    }

    // A null `tool_calls` or `function_call` is taken as absent.
    let tool_calls = m.get("tool_calls").filter(|v| !v.is_null());
    let function_call = m.get("function_call").filter(|v| !v.is_null());
    for (key, value) in [("tool_calls", tool_calls), ("function_call", function_call)] {
        if value.is_some() && !assistant {
            let message = format!("{at} has \"{key}\", which only assistant messages may have");
            error(errors, codes::INVALID_TOOL_CALL, message);
        }
    }
    if let Some(tool_calls) = tool_calls.filter(|_| assistant) {
        calls.first_tool_calls.get_or_insert(at);
        match tool_calls {
            Value::Array(list) if list.is_empty() => {
                error(errors, codes::INVALID_TOOL_CALL, format!("{at} has an empty \"tool_calls\" list"));
            }
            Value::Array(list) => {
                for (j, call) in list.iter().enumerate() {
                    if let Some(defect) = tool_call_defect(call) {
                        error(errors, codes::INVALID_TOOL_CALL, format!("{at}.tool_calls[{j}] {defect}"));
                    }
                    calls.ids.extend(call.get("id").and_then(Value::as_str));
                }
            }
            other => {
                let message = format!("{at} \"tool_calls\" is {}, not a list", json_type(other));
                error(errors, codes::INVALID_TOOL_CALL, message);
            }
        }
    }
    if let Some(function_call) = function_call.filter(|_| assistant) {
        calls.first_function_call.get_or_insert(at);
        if let Some(defect) = function_defect(function_call) {
            error(errors, codes::INVALID_TOOL_CALL, format!("{at}.function_call {defect}"));
        }
    }

    if role == Some("tool") {
        match m.get("tool_call_id") {
            Some(Value::String(id)) if calls.ids.contains(&id.as_str()) => {}
            Some(Value::String(id)) => {
                let message =
                    format!("{at} answers tool call {id:?}, which no earlier assistant message made");
                error(errors, codes::INVALID_TOOL_CALL, message);
            }
            Some(other) => {
                let message = format!("{at} \"tool_call_id\" is {}, not a string", json_type(other));
                error(errors, codes::INVALID_TOOL_CALL, message);
            }
            None => error(errors, codes::MESSAGE_MISSING_KEY, format!("{at} (tool) has no \"tool_call_id\"")),
        }
    }

    // Content may be absent, null or empty only where the assistant calls a function instead.
    let calls_function = assistant && (tool_calls.is_some() || function_call.is_some());
    match m.get("content") {
        None if calls_function => {}
        None => error(errors, codes::MESSAGE_MISSING_KEY, format!("{at} has no \"content\"")),
        Some(Value::Null) if calls_function => {}
        Some(Value::Null) => error(errors, codes::MISSING_CONTENT, format!("{at} has null content")),
        Some(Value::String(s)) if s.is_empty() && !calls_function => {
            error(errors, codes::MISSING_CONTENT, format!("{at} has empty content"));
        }
        Some(Value::String(_)) => {}
        // An unknown role is reported already; its parts are not reported again.
        Some(Value::Array(parts)) if role.is_none() || role == Some("user") => {
            if parts.is_empty() {
                error(errors, codes::MISSING_CONTENT, format!("{at} has an empty list of content parts"));
            }
            for (j, part) in parts.iter().enumerate() {
                if let Some(defect) = content_part_defect(part) {
                    error(errors, codes::INVALID_CONTENT_PART, format!("{at}.content[{j}] {defect}"));
                }
            }
        }
        Some(other) => {
            let allowed =
                if role == Some("user") { "a string or a list of content parts" } else { "a string" };
            let message = format!("{at} content is {}; expected {allowed}", json_type(other));
            error(errors, codes::CONTENT_NOT_STRING, message);
        }
    }
    if let Some(refusal) = m.get("refusal").filter(|r| !r.is_null() && !r.is_string()) {
        let message = format!("{at} \"refusal\" is {}, not a string", json_type(refusal));
        error(errors, codes::CONTENT_NOT_STRING, message);
    }
}

fn content_part_defect(part: &Value) -> Option<String> {
    let Value::Object(p) = part else {
        return Some(format!("is {}, not an object", json_type(part)));
    };
    match p.get("type").and_then(Value::as_str) {
        Some("text") => match p.get("text") {
            Some(Value::String(_)) => None,
            Some(other) => Some(format!("\"text\" is {}, not a string", json_type(other))),
            None => Some("has no \"text\"".into()),
        },
        Some("image_url") => match p.get("image_url").and_then(|image| image.get("url")) {
            Some(Value::String(_)) => None,
            _ => Some("has no \"image_url\" object with a string \"url\"".into()),
        },
        Some(other) => Some(format!("has type {other:?}; expected \"text\" or \"image_url\"")),
        None => Some("has no string \"type\"".into()),
    }
}

/// The first defect of an entry of `tool_calls`: `{"id": str, "type": "function", "function": {"name":
/// str, "arguments": str}}`.
fn tool_call_defect(call: &Value) -> Option<String> {
    let Value::Object(c) = call else {
        return Some(format!("is {}, not an object", json_type(call)));
    };
    if !c.get("id").is_some_and(Value::is_string) {
        return Some("has no string \"id\"".into());
    }
    match c.get("type") {
        Some(Value::String(t)) if t == "function" => {}
        Some(other) => return Some(format!("has type {other}; expected \"function\"")),
        None => return Some("has no \"type\"".into()),
    }
    match c.get("function") {
        Some(function) => function_defect(function).map(|defect| format!("function {defect}")),
        None => Some("has no \"function\"".into()),
    }
}

/// The first defect of a function call: `{"name": str, "arguments": str}`, the arguments being JSON.
fn function_defect(function: &Value) -> Option<String> {
    let Value::Object(f) = function else {
        return Some(format!("is {}, not an object", json_type(function)));
    };
    if !f.get("name").and_then(Value::as_str).is_some_and(|name| !name.is_empty()) {
        return Some("has no non-empty string \"name\"".into());
    }
    match f.get("arguments") {
        Some(Value::String(arguments)) => serde_json::from_str::<serde::de::IgnoredAny>(arguments)
            .err()
            .map(|e| format!("\"arguments\" is not valid JSON: {e}")),
        Some(other) => Some(format!("\"arguments\" is {}, not a string of JSON", json_type(other))),
        None => Some("has no \"arguments\"".into()),
    }
}

/// Which definitions a record has: a non-empty `tools` / `functions` list.
#[derive(Clone, Copy, Debug, Default)]
struct Definitions {
    tools: bool,
    functions: bool,
}

/// Checks `tools` (`[{"type": "function", "function": F}]`) and `functions` (`[F]`), where a function
/// definition `F` is `{"name": str, "description"?: str, "parameters"?: object}` with a name of 1 to 64
/// ASCII letters, digits, underscores or dashes.
fn check_definitions(container: &Map<String, Value>, prefix: &str, errors: &mut Problems) -> Definitions {
    let mut defined = Definitions::default();
    for key in ["tools", "functions"] {
        let list = match container.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(list)) => list,
            Some(other) => {
                let message = format!("\"{prefix}{key}\" is {}, not a list", json_type(other));
                error(errors, codes::INVALID_TOOLS, message);
                continue;
            }
        };
        for (i, definition) in list.iter().enumerate() {
            let defect =
                if key == "tools" { tool_defect(definition) } else { function_definition_defect(definition) };
            if let Some(defect) = defect {
                error(errors, codes::INVALID_TOOLS, format!("{prefix}{key}[{i}] {defect}"));
            }
        }
        if key == "tools" {
            defined.tools = !list.is_empty();
        } else {
            defined.functions = !list.is_empty();
        }
    }
    defined
}

fn tool_defect(tool: &Value) -> Option<String> {
    let Value::Object(t) = tool else {
        return Some(format!("is {}, not an object", json_type(tool)));
    };
    match t.get("type") {
        Some(Value::String(kind)) if kind == "function" => {}
        Some(other) => return Some(format!("has type {other}; expected \"function\"")),
        None => return Some("has no \"type\"".into()),
    }
    match t.get("function") {
        Some(function) => function_definition_defect(function).map(|defect| format!("function {defect}")),
        None => Some("has no \"function\"".into()),
    }
}

fn function_definition_defect(function: &Value) -> Option<String> {
    let Value::Object(f) = function else {
        return Some(format!("is {}, not an object", json_type(function)));
    };
    match f.get("name") {
        Some(Value::String(name)) if is_function_name(name) => {}
        Some(Value::String(name)) => {
            return Some(format!("name {name:?} is not 1 to 64 letters, digits, underscores or dashes"));
        }
        Some(other) => return Some(format!("\"name\" is {}, not a string", json_type(other))),
        None => return Some("has no \"name\"".into()),
    }
    match (f.get("description"), f.get("parameters")) {
        (Some(d), _) if !d.is_string() => Some(format!("\"description\" is {}, not a string", json_type(d))),
        (_, Some(p)) if !p.is_object() => {
            Some(format!("\"parameters\" is {}, not a JSON Schema object", json_type(p)))
        }
        _ => None,
    }
}

fn is_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Counts texts, keeping the first tokenizer failure and the first special-token-like text.
struct Tally<'c> {
    counter: &'c mut Counter,
    /// Warning codes written without a message (see [`audit_record`]).
    quiet: &'c [Label],
    failure: Option<String>,
    special: Option<Problem>,
}

impl Tally<'_> {
    /// Adds the problems found while counting, and the context-limit warning.
    fn conclude(mut self, options: &AuditOptions, audit: &mut RecordAudit) {
        if let Some(message) = self.failure.take() {
            audit.errors.push(Problem::new(codes::TOKENIZER_FAILED, message));
        }
        if let Some(limit) = options.context_limit.filter(|&limit| audit.total_tokens > limit) {
            audit.warnings.push(self.warning(codes::TOO_LONG, || {
                let tokens = audit.total_tokens;
                format!("{tokens} tokens, over the context limit of {limit}: the example would be truncated")
            }));
        }
        audit.warnings.extend(self.special);
    }

    /// A warning of `code`, with the message `message()` unless the code is quiet.
    fn warning(&self, code: Label, message: impl FnOnce() -> String) -> Problem {
        Problem::new(code, if self.quiet.contains(&code) { String::new() } else { message() })
    }

    /// The tokens of `text`, found at `at()`; 0 if the tokenizer fails.
    fn count(&mut self, text: &str, at: impl Fn() -> String) -> u64 {
        if self.special.is_none() {
            if let Some(token) = special_token_text(text) {
                let warning = self.warning(codes::SPECIAL_TOKEN_TEXT, || {
                    format!("{} contains {token:?}, which looks like a special token", at())
                });
                self.special = Some(warning);
            }
        }
        match self.counter.count(text) {
            Ok(n) => n,
            Err(e) => {
                self.failure.get_or_insert_with(|| format!("{}: {e}", at()));
                0
            }
        }
    }
}

/// The first run of `<|`, 1 to 64 characters other than whitespace, `<`, `>` and `|`, then `|>`: the
/// shape of special tokens such as `<|endoftext|>` or `<|im_start|>`.
fn special_token_text(text: &str) -> Option<&str> {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    memchr::memmem::find(text.as_bytes(), b"<|")?;
    let pattern = PATTERN.get_or_init(|| Regex::new(r"<\|[^\s<>|]{1,64}\|>").expect("pattern compiles"));
    pattern.find(text).map(|m| m.as_str())
}

#[derive(Clone, Copy, Debug, Default)]
struct MessageTokens {
    tokens: u64,
    content: u64,
}

/// A message's tokens by the formula documented on [`RecordAudit`].
fn count_message(tally: &mut Tally, message: &Value, at: At) -> MessageTokens {
    let Value::Object(m) = message else {
        return MessageTokens::default();
    };
    let mut n = MessageTokens { tokens: TOKENS_PER_MESSAGE, content: 0 };
    for (key, value) in m {
        match (key.as_str(), value) {
            ("content", content) => {
                let mut tokens = 0;
                for_each_content_text(content, &mut |text| {
                    tokens += tally.count(text, || format!("{at}.content"))
                });
                n.tokens += tokens;
                n.content += tokens;
            }
            (key, Value::String(text)) => {
                n.tokens += tally.count(text, || format!("{at}.{key}"));
                if key == "name" {
                    n.tokens += TOKENS_PER_NAME;
                }
            }
            ("tool_calls", Value::Array(list)) => {
                for (j, call) in list.iter().enumerate() {
                    n.tokens +=
                        count_call(tally, call.get("function"), &|| format!("{at}.tool_calls[{j}].function"));
                }
            }
            ("function_call", call) => {
                n.tokens += count_call(tally, Some(call), &|| format!("{at}.function_call"))
            }
            _ => {}
        }
    }
    n
}

/// The tokens of a function call's `name` and `arguments` strings.
fn count_call(tally: &mut Tally, function: Option<&Value>, at: &dyn Fn() -> String) -> u64 {
    let Some(function) = function else { return 0 };
    let mut tokens = 0;
    for key in ["name", "arguments"] {
        if let Some(text) = function.get(key).and_then(Value::as_str) {
            tokens += tally.count(text, || format!("{}.{key}", at()));
        }
    }
    tokens
}

/// The tokens of the compact JSON of `tools` and `functions` (see [`RecordAudit`]).
fn count_definitions(container: &Map<String, Value>, prefix: &str, tally: &mut Tally) -> u64 {
    let mut tokens = 0;
    for key in ["tools", "functions"] {
        if let Some(definitions) = container.get(key).filter(|v| !v.is_null()) {
            tokens += tally.count(&definitions.to_string(), || format!("{prefix}{key}"));
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{parse_line, Parsed};
    use crate::tokenizer::Encoding;

    const SYSTEM: &str = r#"{"role": "system", "content": "You are terse."}"#;
    const USER: &str = r#"{"role": "user", "content": "Capital of France?"}"#;
    const ASSISTANT: &str = r#"{"role": "assistant", "content": "Paris"}"#;
    const TOOLS: &str = r#"[{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}}]"#;
    const CALL: &str = r#"{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}"#;

    fn counter() -> Counter {
        Encoding::load("cl100k_base").unwrap().counter(false)
    }

    fn record(line: &str) -> Map<String, Value> {
        match parse_line(1, line.as_bytes()) {
            Parsed::Record(record) => record,
            other => panic!("not a record: {other:?}: {line}"),
        }
    }

    fn audit_with(line: &str, options: &AuditOptions) -> RecordAudit {
        audit_record(&record(line), options, &[], &mut counter())
    }

    fn audit(line: &str) -> RecordAudit {
        audit_with(line, &AuditOptions::default())
    }

    /// A chat record of these messages (joined with commas), with optional extra top-level JSON.
    fn chat(messages: &[&str], extra: &str) -> String {
        format!(r#"{{"messages": [{}]{extra}}}"#, messages.join(", "))
    }

    fn tool_chat(call: &str, extra: &str) -> String {
        let assistant = format!(r#"{{"role": "assistant", "content": null, "tool_calls": [{call}]}}"#);
        let tool = r#"{"role": "tool", "tool_call_id": "call_1", "content": "18C"}"#;
        chat(&[SYSTEM, USER, &assistant, tool, ASSISTANT], extra)
    }

    fn preference(input: &str, preferred: &str, non_preferred: &str) -> String {
        format!(
            r#"{{"input": {input}, "preferred_output": {preferred}, "non_preferred_output": {non_preferred}}}"#
        )
    }

    fn codes_of(problems: &[Problem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.code).collect()
    }

    /// Each bad line is reported with `code` (and a message naming where); each good line has no errors.
    fn check_rule(code: &str, bad: &[String], good: &[String]) {
        for line in bad {
            let audit = audit(line);
            assert!(
                codes_of(&audit.errors).contains(&code),
                "{code} not reported for {line}: {:?}",
                audit.errors
            );
            assert!(!audit.is_valid());
        }
        for line in good {
            let audit = audit(line);
            assert!(audit.is_valid(), "errors for {line}: {:?}", audit.errors);
        }
    }

    fn msg(json: &str) -> String {
        json.to_string()
    }

    #[test]
    fn data_type() {
        check_rule(
            codes::DATA_TYPE,
            &[chat(&[SYSTEM, "\"hi\"", ASSISTANT], ""), chat(&[USER, "[]", ASSISTANT], "")],
            &[chat(&[SYSTEM, USER, ASSISTANT], "")],
        );
        let a = audit(&chat(&[USER, "3", ASSISTANT], ""));
        assert_eq!(a.errors[0].message, "messages[1] is a number, not an object");
    }

    #[test]
    fn missing_messages_list() {
        let bad = [r#"{"messages": []}"#, r#"{"messages": "hi"}"#, r#"{"messages": null}"#].map(msg);
        check_rule(codes::MISSING_MESSAGES_LIST, &bad, &[chat(&[USER, ASSISTANT], "")]);
        let forced = AuditOptions { format: Some(Format::Chat), ..AuditOptions::default() };
        let a = audit_with(r#"{"text": "x"}"#, &forced);
        assert_eq!(codes_of(&a.errors), [codes::MISSING_MESSAGES_LIST]);
        assert_eq!(a.total_tokens, 0);
    }

    #[test]
    fn message_missing_key() {
        let bad = [
            chat(&[r#"{"content": "no role"}"#, ASSISTANT], ""),
            chat(&[USER, r#"{"role": "assistant"}"#], ""),
            chat(&[USER, r#"{"role": "function", "content": "42"}"#, ASSISTANT], ""),
            tool_chat(CALL, &format!(r#", "tools": {TOOLS}"#)).replace(r#""tool_call_id": "call_1", "#, ""),
        ];
        let good = [
            chat(&[USER, r#"{"role": "function", "name": "f", "content": "42"}"#, ASSISTANT], ""),
            // An assistant message that calls a tool needs no content.
            tool_chat(CALL, &format!(r#", "tools": {TOOLS}"#)).replace(r#""content": null, "#, ""),
        ];
        check_rule(codes::MESSAGE_MISSING_KEY, &bad, &good);
        assert_eq!(audit(&bad[1]).errors[0].message, "messages[1] has no \"content\"");
    }

    #[test]
    fn message_unrecognized_key() {
        let bad = [chat(&[r#"{"role": "user", "content": "u", "extra": 1, "meta": {}}"#, ASSISTANT], "")];
        let every_key =
            r#"{"role": "assistant", "name": "bot", "content": "a", "weight": 1, "refusal": null}"#;
        check_rule(codes::MESSAGE_UNRECOGNIZED_KEY, &bad, &[chat(&[USER, every_key], "")]);
        let message = &audit(&bad[0]).errors[0].message;
        assert!(
            message.starts_with(r#"messages[0] has unrecognized keys "extra", "meta"; allowed: role"#),
            "{message}"
        );
    }

    #[test]
    fn unrecognized_role() {
        let bad = [
            chat(&[r#"{"role": "bot", "content": "x"}"#, ASSISTANT], ""),
            chat(&[r#"{"role": 1, "content": "x"}"#, ASSISTANT], ""),
            chat(&[r#"{"role": "User", "content": "x"}"#, ASSISTANT], ""),
        ];
        let good = [chat(&[r#"{"role": "developer", "content": "Be terse."}"#, USER, ASSISTANT], "")];
        check_rule(codes::UNRECOGNIZED_ROLE, &bad, &good);
    }

    #[test]
    fn missing_content() {
        let bad = [
            chat(&[r#"{"role": "user", "content": ""}"#, ASSISTANT], ""),
            chat(&[r#"{"role": "user", "content": null}"#, ASSISTANT], ""),
            chat(&[r#"{"role": "user", "content": []}"#, ASSISTANT], ""),
            chat(&[USER, r#"{"role": "assistant", "content": null}"#], ""),
        ];
        let good = [
            tool_chat(CALL, &format!(r#", "tools": {TOOLS}"#)),
            chat(&[r#"{"role": "user", "content": " "}"#, ASSISTANT], ""),
        ];
        check_rule(codes::MISSING_CONTENT, &bad, &good);
    }

    #[test]
    fn content_not_string() {
        let bad = [
            chat(&[r#"{"role": "user", "content": 5}"#, ASSISTANT], ""),
            chat(&[r#"{"role": "user", "content": {"text": "x"}}"#, ASSISTANT], ""),
            chat(&[USER, r#"{"role": "assistant", "content": [{"type": "text", "text": "a"}]}"#], ""),
            chat(&[r#"{"role": "system", "content": [{"type": "text", "text": "s"}]}"#, USER, ASSISTANT], ""),
            chat(&[USER, r#"{"role": "assistant", "content": "a", "refusal": 3}"#], ""),
        ];
        let parts = r#"{"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}"#;
        let good = [
            chat(&[parts, ASSISTANT], ""),
            chat(&[USER, r#"{"role": "assistant", "content": "a", "refusal": "no"}"#], ""),
        ];
        check_rule(codes::CONTENT_NOT_STRING, &bad, &good);
    }

    #[test]
    fn invalid_content_part() {
        let bad = [
            r#"["plain"]"#,
            r#"[{"type": "audio", "audio": {}}]"#,
            r#"[{"type": "text"}]"#,
            r#"[{"type": "text", "text": 1}]"#,
            r#"[{"type": "image_url", "image_url": "https://x"}]"#,
            r#"[{"text": "no type"}]"#,
        ]
        .map(|parts| chat(&[&format!(r#"{{"role": "user", "content": {parts}}}"#), ASSISTANT], ""));
        let good =
            [chat(&[r#"{"role": "user", "content": [{"type": "text", "text": "t"}]}"#, ASSISTANT], "")];
        check_rule(codes::INVALID_CONTENT_PART, &bad, &good);
        assert_eq!(audit(&bad[2]).errors[0].message, "messages[0].content[0] has no \"text\"");
    }

    #[test]
    fn invalid_name() {
        let bad = [
            chat(&[r#"{"role": "user", "name": 5, "content": "u"}"#, ASSISTANT], ""),
            chat(&[r#"{"role": "user", "name": "", "content": "u"}"#, ASSISTANT], ""),
        ];
        check_rule(
            codes::INVALID_NAME,
            &bad,
            &[chat(&[r#"{"role": "user", "name": "ann", "content": "u"}"#, ASSISTANT], "")],
        );
    }

    #[test]
    fn example_missing_assistant_message() {
        check_rule(
            codes::EXAMPLE_MISSING_ASSISTANT_MESSAGE,
            &[chat(&[SYSTEM, USER], "")],
            &[chat(&[SYSTEM, USER, ASSISTANT], "")],
        );
    }

    #[test]
    fn invalid_weight() {
        let bad = [
            chat(&[USER, r#"{"role": "assistant", "content": "a", "weight": 2}"#], ""),
            chat(&[USER, r#"{"role": "assistant", "content": "a", "weight": 0.5}"#], ""),
            chat(&[USER, r#"{"role": "assistant", "content": "a", "weight": "1"}"#], ""),
            chat(&[USER, r#"{"role": "assistant", "content": "a", "weight": true}"#], ""),
            chat(&[r#"{"role": "user", "content": "u", "weight": 1}"#, ASSISTANT], ""),
        ];
        let good = [chat(
            &[
                USER,
                r#"{"role": "assistant", "content": "a", "weight": 0}"#,
                USER,
                r#"{"role": "assistant", "content": "b", "weight": 1}"#,
                USER,
                r#"{"role": "assistant", "content": "c", "weight": 1.0}"#,
            ],
            "",
        )];
        check_rule(codes::INVALID_WEIGHT, &bad, &good);
        assert_eq!(audit(&bad[0]).errors[0].message, "messages[1] has weight 2; it must be 0 or 1");
    }

    #[test]
    fn invalid_tool_call() {
        let tools = format!(r#", "tools": {TOOLS}"#);
        let with_tools = |call: &str| tool_chat(call, &tools);
        let bad = [
            with_tools(r#""not an object""#),
            with_tools(r#"{"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}"#),
            with_tools(
                r#"{"id": "call_1", "type": "code", "function": {"name": "get_weather", "arguments": "{}"}}"#,
            ),
            with_tools(r#"{"id": "call_1", "function": {"name": "get_weather", "arguments": "{}"}}"#),
            with_tools(r#"{"id": "call_1", "type": "function"}"#),
            with_tools(r#"{"id": "call_1", "type": "function", "function": {"arguments": "{}"}}"#),
            with_tools(
                r#"{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {}}}"#,
            ),
            with_tools(
                r#"{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}"#,
            ),
            // The tool message answers call_1, which was never made.
            with_tools(&CALL.replace("call_1", "call_2")),
            chat(&[USER, r#"{"role": "assistant", "tool_calls": "get_weather"}"#, ASSISTANT], &tools),
            chat(&[USER, r#"{"role": "assistant", "tool_calls": []}"#, ASSISTANT], &tools),
            chat(
                &[&format!(r#"{{"role": "user", "content": "u", "tool_calls": [{CALL}]}}"#), ASSISTANT],
                &tools,
            ),
            chat(
                &[USER, r#"{"role": "assistant", "function_call": {"name": "f", "arguments": 1}}"#],
                r#", "functions": [{"name": "f"}]"#,
            ),
            chat(&[USER, r#"{"role": "tool", "tool_call_id": 7, "content": "x"}"#, ASSISTANT], ""),
        ];
        let good = [
            with_tools(CALL),
            chat(
                &[
                    USER,
                    r#"{"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{}"}}"#,
                    r#"{"role": "function", "name": "f", "content": "1"}"#,
                    ASSISTANT,
                ],
                r#", "functions": [{"name": "f"}]"#,
            ),
            // A null tool_calls is no tool call.
            chat(&[USER, r#"{"role": "assistant", "content": "a", "tool_calls": null}"#], ""),
        ];
        check_rule(codes::INVALID_TOOL_CALL, &bad, &good);
        assert_eq!(audit(&bad[4]).errors[0].message, "messages[2].tool_calls[0] has no \"function\"");
        assert_eq!(
            audit(&bad[8]).errors[0].message,
            "messages[3] answers tool call \"call_1\", which no earlier assistant message made"
        );
    }

    #[test]
    fn tool_call_without_tools() {
        let function_call =
            r#"{"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{}"}}"#;
        let bad = [
            tool_chat(CALL, ""),
            tool_chat(CALL, r#", "tools": []"#),
            tool_chat(CALL, r#", "functions": [{"name": "get_weather"}]"#),
            chat(&[USER, function_call, ASSISTANT], ""),
        ];
        let good = [
            tool_chat(CALL, &format!(r#", "tools": {TOOLS}"#)),
            chat(&[USER, function_call, ASSISTANT], r#", "functions": [{"name": "f"}]"#),
        ];
        check_rule(codes::TOOL_CALL_WITHOUT_TOOLS, &bad, &good);
        assert_eq!(
            audit(&bad[0]).errors[0].message,
            "messages[2] calls a function but the record has no \"tools\" definitions"
        );
    }

    #[test]
    fn invalid_tools() {
        let bad = [
            r#", "tools": "get_weather""#,
            r#", "tools": ["get_weather"]"#,
            r#", "tools": [{"function": {"name": "f"}}]"#,
            r#", "tools": [{"type": "retrieval", "function": {"name": "f"}}]"#,
            r#", "tools": [{"type": "function"}]"#,
            r#", "tools": [{"type": "function", "function": {"description": "d"}}]"#,
            r#", "tools": [{"type": "function", "function": {"name": "get weather"}}]"#,
            r#", "tools": [{"type": "function", "function": {"name": "f", "description": 1}}]"#,
            r#", "tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]"#,
            r#", "functions": [{"description": "d"}]"#,
            r#", "functions": {"name": "f"}"#,
        ]
        .map(|extra| chat(&[USER, ASSISTANT], extra));
        let good = [
            chat(&[USER, ASSISTANT], &format!(r#", "tools": {TOOLS}"#)),
            chat(&[USER, ASSISTANT], r#", "tools": [], "functions": [{"name": "f-1_x", "parameters": {}}]"#),
        ];
        check_rule(codes::INVALID_TOOLS, &bad, &good);
        assert_eq!(
            audit(&bad[6]).errors[0].message,
            "tools[0] function name \"get weather\" is not 1 to 64 letters, digits, underscores or dashes"
        );
    }

    #[test]
    fn invalid_preference() {
        let input = format!(r#"{{"messages": [{SYSTEM}, {USER}]}}"#);
        let out = |content: &str| format!(r#"[{{"role": "assistant", "content": "{content}"}}]"#);
        let (yes, no) = (out("Paris"), out("Lyon"));
        let bad = [
            r#"{"input": "x", "preferred_output": [], "non_preferred_output": []}"#.to_string(),
            preference(r#"{"messages": []}"#, &yes, &no),
            preference(r#"{"messages": "hi"}"#, &yes, &no),
            preference(r#"{"tools": []}"#, &yes, &no),
            preference(&input, "[]", &no),
            preference(&input, &format!(r#"[{ASSISTANT}, {ASSISTANT}]"#), &no),
            preference(&input, &yes, &format!("[{USER}]")),
            preference(&input, &yes, r#"{"role": "assistant", "content": "x"}"#),
            format!(r#"{{"input": {input}, "preferred_output": {yes}}}"#),
        ];
        check_rule(codes::INVALID_PREFERENCE, &bad, &[preference(&input, &yes, &no)]);
        assert_eq!(
            audit(&bad[6]).errors[0].message,
            "non_preferred_output[0] has role \"user\"; an output must be an assistant message"
        );
        // Messages inside a preference record follow the chat rules.
        let a = audit(&preference(r#"{"messages": [{"role": "bot", "content": "x"}]}"#, &yes, &no));
        assert_eq!(codes_of(&a.errors), [codes::UNRECOGNIZED_ROLE]);
        assert!(a.errors[0].message.starts_with("input.messages[0] has role \"bot\""));
        let calls = format!(r#"[{{"role": "assistant", "content": null, "tool_calls": [{CALL}]}}]"#);
        assert_eq!(
            codes_of(&audit(&preference(&input, &calls, &no)).errors),
            [codes::TOOL_CALL_WITHOUT_TOOLS]
        );
        let with_tools = format!(r#"{{"messages": [{USER}], "tools": {TOOLS}}}"#);
        assert!(audit(&preference(&with_tools, &calls, &no)).is_valid());
    }

    #[test]
    fn completion_and_text_fields() {
        check_rule(
            codes::FIELD_MISSING,
            &[r#"{"prompt": "p"}"#, r#"{"completion": "c"}"#, r#"{"body": "b"}"#].map(msg),
            &[r#"{"prompt": "p", "completion": "c"}"#, r#"{"text": "t"}"#].map(msg),
        );
        check_rule(
            codes::FIELD_NOT_STRING,
            &[
                r#"{"prompt": 1, "completion": "c"}"#,
                r#"{"prompt": "p", "completion": ["c"]}"#,
                r#"{"text": 5}"#,
            ]
            .map(msg),
            &[r#"{"prompt": "", "completion": "c"}"#, r#"{"text": ""}"#].map(msg),
        );
        let options = AuditOptions { text_field: parse_path("meta.body"), ..AuditOptions::default() };
        assert!(audit_with(r#"{"meta": {"body": "hello world"}}"#, &options).is_valid());
        let a = audit_with(r#"{"meta": {"text": "hello world"}}"#, &options);
        assert_eq!(
            (a.errors[0].code, a.errors[0].message.as_str()),
            (codes::FIELD_MISSING, "no field \"meta.body\"")
        );
    }

    fn check_warning(code: &str, options: &AuditOptions, bad: &[String], good: &[String]) {
        for line in bad {
            let audit = audit_with(line, options);
            assert!(audit.is_valid(), "{line}: {:?}", audit.errors);
            assert!(
                codes_of(&audit.warnings).contains(&code),
                "{code} not reported for {line}: {:?}",
                audit.warnings
            );
        }
        for line in good {
            let audit = audit_with(line, options);
            assert_eq!(audit.warnings[..], [], "{line}");
        }
    }

    #[test]
    fn role_warnings_for_chat_and_preference() {
        let options = AuditOptions::default();
        let yes = format!("[{ASSISTANT}]");
        let dev = r#"{"role": "developer", "content": "Be terse."}"#;
        check_warning(
            codes::NO_SYSTEM_MESSAGE,
            &options,
            &[chat(&[USER, ASSISTANT], ""), preference(&format!(r#"{{"messages": [{USER}]}}"#), &yes, &yes)],
            &[chat(&[SYSTEM, USER, ASSISTANT], ""), chat(&[dev, USER, ASSISTANT], "")],
        );
        check_warning(
            codes::NO_USER_MESSAGE,
            &options,
            &[
                chat(&[SYSTEM, ASSISTANT], ""),
                preference(&format!(r#"{{"messages": [{SYSTEM}]}}"#), &yes, &yes),
            ],
            &[preference(&format!(r#"{{"messages": [{SYSTEM}, {USER}]}}"#), &yes, &yes)],
        );
    }

    #[test]
    fn too_long_warning() {
        let line = chat(&[SYSTEM, USER, ASSISTANT], "");
        let total = audit(&line).total_tokens;
        let limit = |limit| AuditOptions { context_limit: Some(limit), ..AuditOptions::default() };
        check_warning(codes::TOO_LONG, &limit(total - 1), std::slice::from_ref(&line), &[]);
        check_warning(codes::TOO_LONG, &limit(total), &[], std::slice::from_ref(&line));
        let a = audit_with(r#"{"text": "hello world"}"#, &limit(1));
        assert_eq!(
            a.warnings[0].message,
            "2 tokens, over the context limit of 1: the example would be truncated"
        );
    }

    #[test]
    fn special_token_text_warning() {
        let options = AuditOptions::default();
        let bad = [
            chat(&[SYSTEM, USER, r#"{"role": "assistant", "content": "Paris<|endoftext|>"}"#], ""),
            chat(
                &[
                    SYSTEM,
                    r#"{"role": "user", "content": [{"type": "text", "text": "<|im_start|>user"}]}"#,
                    ASSISTANT,
                ],
                "",
            ),
            r#"{"prompt": "p", "completion": "c <|eot_id|>"}"#.to_string(),
            r#"{"text": "<|reserved_special_token_0|>"}"#.to_string(),
        ];
        let good = [
            chat(&[SYSTEM, USER, r#"{"role": "assistant", "content": "a <| b |> c <|| d <|x"}"#], ""),
            r#"{"text": "x | y <|>"}"#.to_string(),
        ];
        check_warning(codes::SPECIAL_TOKEN_TEXT, &options, &bad, &good);
        assert_eq!(
            audit(&bad[0]).warnings[0].message,
            "messages[2].content contains \"<|endoftext|>\", which looks like a special token"
        );
    }

    #[test]
    fn a_text_field_read_alone_is_audited_as_its_record() {
        let texts = [
            "",
            "hello world",
            "tail <|endoftext|> and <|im_start|>",
            r"e\u0301 \ud83d\ude00 \u0000 \t\n  x \\",
            "a <| b |> c",
        ];
        let options = [
            AuditOptions::default(),
            AuditOptions { context_limit: Some(2), ..AuditOptions::default() },
            AuditOptions { format: Some(Format::Text), ..AuditOptions::default() },
            AuditOptions { text_field: parse_path("meta.body"), ..AuditOptions::default() },
        ];
        let mut counter = counter();
        for text in texts {
            for options in &options {
                let line = match options.text_field.as_slice() {
                    [key] => format!(r#"{{"id": 1, "{key}": "{text}"}}"#),
                    _ => format!(r#"{{"meta": {{"body": "{text}"}}}}"#),
                };
                let record = record(&line);
                let Some(Value::String(text)) = lookup(&record, &options.text_field) else { unreachable!() };
                let alone = audit_text_field(text, options, &[], &mut counter);
                assert_eq!(alone, audit_record(&record, options, &[], &mut counter), "{line} {options:?}");
            }
        }
    }

    #[test]
    fn formats_are_detected_or_forced() {
        let detect = |line: &str| Format::detect(&record(line));
        assert_eq!(detect(r#"{"messages": [], "prompt": "p"}"#), Format::Chat);
        assert_eq!(detect(r#"{"input": {}, "non_preferred_output": []}"#), Format::Preference);
        assert_eq!(detect(r#"{"input": "x"}"#), Format::Text);
        assert_eq!(detect(r#"{"completion": "c"}"#), Format::Completion);
        assert_eq!(detect(r#"{"text": "t"}"#), Format::Text);
        for format in Format::ALL {
            assert_eq!(Format::parse(format.name()), Some(format));
        }
        assert_eq!(Format::parse("jsonl"), None);
        let forced = AuditOptions { format: Some(Format::Text), ..AuditOptions::default() };
        let a = audit_with(r#"{"prompt": "p", "text": "hello world"}"#, &forced);
        assert_eq!((a.format, a.total_tokens, a.errors.len()), (Format::Text, 2, 0));
    }

    /// The cookbook formula, written out: 3 per message, the tokens of each string value, 1 per name,
    /// 3 for the reply.
    fn by_formula(messages: &[Value], counter: &mut Counter) -> u64 {
        let mut total = REPLY_PRIMING_TOKENS;
        for message in messages {
            total += 3;
            for (key, value) in message.as_object().unwrap() {
                total += counter.count(value.as_str().unwrap()).unwrap();
                if key == "name" {
                    total += 1;
                }
            }
        }
        total
    }

    #[test]
    fn chat_tokens_follow_the_cookbook() {
        // The example of OpenAI's "How to count tokens with tiktoken" cookbook, which counts 129 prompt
        // tokens for the cl100k_base models and 124 for o200k_base ones.
        let messages = [
            (
                "system",
                None,
                "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
            ),
            ("system", Some("example_user"), "New synergies will help drive top-line growth."),
            ("system", Some("example_assistant"), "Things working well together will increase revenue."),
            (
                "system",
                Some("example_user"),
                "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
            ),
            ("system", Some("example_assistant"), "Let's talk later when we're less busy about how to do better."),
            ("user", None, "This late pivot means we don't have time to boil the ocean for the client deliverable."),
        ];
        let messages: Vec<Value> = messages
            .iter()
            .map(|(role, name, content)| match name {
                Some(name) => serde_json::json!({"role": role, "name": name, "content": content}),
                None => serde_json::json!({"role": role, "content": content}),
            })
            .collect();
        let record = serde_json::json!({ "messages": messages });
        let record = record.as_object().unwrap();
        for (encoding, expected) in [("cl100k_base", 129), ("o200k_base", 124)] {
            let mut counter = Encoding::load(encoding).unwrap().counter(false);
            let a = audit_record(record, &AuditOptions::default(), &[], &mut counter);
            assert_eq!(a.total_tokens, expected, "{encoding}");
            assert_eq!(a.total_tokens, by_formula(&messages, &mut counter));
            // No assistant message: invalid, but counted all the same.
            assert_eq!(codes_of(&a.errors), [codes::EXAMPLE_MISSING_ASSISTANT_MESSAGE]);
            assert_eq!((a.n_messages, a.trainable_tokens, a.label), (6, 0, None));
        }
    }

    #[test]
    fn toy_dataset_by_hand() {
        // cl100k_base: "system", "user", "assistant", "Hi", "hello world" (2), "Paris" are known counts.
        let mut counter = counter();
        let dataset = [
            (
                r#"{"messages": [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hello world"}]}"#,
                15,
            ),
            (
                r#"{"messages": [{"role": "system", "content": "Hi"}, {"role": "user", "name": "ann", "content": "hello world"}, {"role": "assistant", "content": "Paris"}]}"#,
                // (3 + 1 + 1) + (3 + 1 + 1 + 1 + 2) + (3 + 1 + 1) + 3
                21,
            ),
        ];
        for (line, expected) in dataset {
            let record = record(line);
            let a = audit_record(&record, &AuditOptions::default(), &[], &mut counter);
            assert_eq!(a.total_tokens, expected, "{line}");
            assert_eq!(a.total_tokens, by_formula(record["messages"].as_array().unwrap(), &mut counter));
        }
        let a = audit(dataset[1].0);
        assert_eq!((a.n_messages, a.content_tokens, a.trainable_tokens), (3, 1 + 2 + 1, 3 + 1 + 1));
        assert_eq!(a.label.as_deref(), Some("Paris"));
    }

    #[test]
    fn trainable_tokens_skip_weight_zero_and_other_roles() {
        let mut c = counter();
        let line = chat(
            &[
                SYSTEM,
                USER,
                r#"{"role": "assistant", "content": "wrong answer", "weight": 0}"#,
                USER,
                r#"{"role": "assistant", "content": "right answer", "weight": 1}"#,
            ],
            "",
        );
        let a = audit(&line);
        let right = 3 + c.count("assistant").unwrap() + c.count("right answer").unwrap();
        assert_eq!(a.trainable_tokens, right);
        let contents =
            ["You are terse.", "Capital of France?", "wrong answer", "Capital of France?", "right answer"];
        assert_eq!(a.content_tokens, contents.iter().map(|t| c.count(t).unwrap()).sum::<u64>());
        assert_eq!(a.label.as_deref(), Some("right answer"));
        assert_eq!((a.prompt_tokens, a.completion_tokens), (0, 0));
    }

    #[test]
    fn tool_calls_and_definitions_are_counted() {
        let mut c = counter();
        let mut n = |text: &str| c.count(text).unwrap();
        let line = tool_chat(CALL, &format!(r#", "tools": {TOOLS}"#));
        let a = audit(&line);
        assert!(a.is_valid(), "{:?}", a.errors);
        let tools_json = serde_json::from_str::<Value>(TOOLS).unwrap().to_string();
        let system = 3 + n("system") + n("You are terse.");
        let user = 3 + n("user") + n("Capital of France?");
        let call = 3 + n("assistant") + n("get_weather") + n(r#"{"city": "Paris"}"#);
        let tool = 3 + n("tool") + n("call_1") + n("18C");
        let answer = 3 + n("assistant") + n("Paris");
        assert_eq!(a.total_tokens, system + user + call + tool + answer + 3 + n(&tools_json));
        assert_eq!(a.trainable_tokens, call + answer);
        assert_eq!(a.content_tokens, n("You are terse.") + n("Capital of France?") + n("18C") + n("Paris"));
        assert_eq!(a.n_messages, 5);
    }

    #[test]
    fn preference_counts_input_and_preferred_output() {
        let mut c = counter();
        let mut n = |text: &str| c.count(text).unwrap();
        let line = preference(
            &format!(r#"{{"messages": [{SYSTEM}, {USER}]}}"#),
            r#"[{"role": "assistant", "content": "Paris"}]"#,
            r#"[{"role": "assistant", "content": "Lyon, I think"}]"#,
        );
        let a = audit(&line);
        assert!(a.is_valid() && a.warnings.is_empty(), "{a:?}");
        let preferred = 3 + n("assistant") + n("Paris");
        let input = 3 + n("system") + n("You are terse.") + 3 + n("user") + n("Capital of France?");
        assert_eq!(
            (a.format, a.total_tokens, a.trainable_tokens, a.n_messages),
            (Format::Preference, input + preferred + 3, preferred, 3)
        );
        assert_eq!(a.label.as_deref(), Some("Paris"));
    }

    #[test]
    fn completion_and_text_counts() {
        let a = audit(r#"{"prompt": "hello world", "completion": "Paris"}"#);
        assert_eq!((a.prompt_tokens, a.completion_tokens, a.total_tokens, a.trainable_tokens), (2, 1, 3, 1));
        assert_eq!((a.content_tokens, a.n_messages, a.label.as_deref()), (3, 0, Some("Paris")));
        // What can be counted is counted.
        let a = audit(r#"{"prompt": "hello world", "completion": 3}"#);
        assert_eq!((a.total_tokens, a.errors.len(), a.label), (2, 1, None));
        let a = audit(r#"{"text": "hello world"}"#);
        assert_eq!(
            (a.format, a.total_tokens, a.trainable_tokens, a.content_tokens, a.label),
            (Format::Text, 2, 2, 2, None)
        );
    }

    #[test]
    fn invalid_chat_records_are_still_counted() {
        let mut c = counter();
        let line = chat(
            &[r#"{"role": "bot", "content": "hello world"}"#, "7", r#"{"role": "assistant", "content": 5}"#],
            "",
        );
        let a = audit(&line);
        assert_eq!(
            codes_of(&a.errors),
            [codes::UNRECOGNIZED_ROLE, codes::DATA_TYPE, codes::CONTENT_NOT_STRING]
        );
        // The message that is not an object counts 0.
        let expected = (3 + c.count("bot").unwrap() + 2) + (3 + c.count("assistant").unwrap()) + 3;
        assert_eq!((a.total_tokens, a.n_messages, a.label), (expected, 3, None));
    }

    #[test]
    fn label_field_overrides_the_label() {
        let line = r#"{"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], "metadata": {"label": "spam", "score": 3, "flag": true}}"#;
        let label = |path: &str| {
            audit_with(line, &AuditOptions { label_field: Some(parse_path(path)), ..AuditOptions::default() })
                .label
        };
        assert_eq!(audit(line).label.as_deref(), Some("a"));
        assert_eq!(label("metadata.label").as_deref(), Some("spam"));
        assert_eq!(label("metadata.score").as_deref(), Some("3"));
        assert_eq!(label("metadata.flag").as_deref(), Some("true"));
        assert_eq!(label("metadata"), None);
        assert_eq!(label("metadata.missing"), None);
        assert_eq!(label("messages.label"), None);
    }
}
