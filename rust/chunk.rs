//! `chunk`: long text records cut into pieces of at most `max_tokens` tokens, at token boundaries.
//!
//! # Pieces
//!
//! A record whose text field (a top-level key, `text` by default) counts more than `max_tokens`
//! tokens (ordinary text: `<|endoftext|>` and the like are not special tokens) is replaced by one
//! record per piece. The text is encoded once; a piece ends `max_tokens` tokens after its start, at
//! the byte where that token ends, moved back to a character boundary when a token ends inside a
//! multi-byte UTF-8 character. A piece counted alone may tokenize differently from its slice of the
//! whole text's tokens, so every piece is counted again and shortened until it has at most
//! `max_tokens` tokens: **no piece counts more than `max_tokens` tokens on its own**. (A single
//! character takes at most 4 tokens, so any `max_tokens >= 4` always works; a smaller limit that a
//! character does not fit is an error.)
//!
//! Without overlap, each piece starts where the previous one ended, so the pieces of a record,
//! concatenated in `chunk_index` order, are exactly its original text. With `overlap` K (K <
//! `max_tokens`), each piece after the first starts K tokens (of the whole text's tokenization)
//! before the previous piece's end, moved back to a character boundary; a piece always starts
//! after the previous piece's start, so the pieces advance.
//!
//! # Records
//!
//! A piece is the record with its text field replaced by the piece and four fields added after the
//! others (replacing any fields of the same names): `source_file` (the input as given),
//! `source_line` (1-based line number in that file), `chunk_index` (0-based) and `chunk_count`.
//! The other fields keep their order and their bytes; separators become compact (`,` and `:`).
//!
//! Lines that fit (at most `max_tokens` tokens) are copied byte for byte. Lines that cannot be
//! chunked are copied byte for byte too and reported with a reason code: blank lines
//! (`blank_line`), lines that are not JSON objects (the codes of [`crate::record`]), records
//! without the field (`field_missing`) or whose field is not a string (`field_not_string`). Nothing
//! is dropped. Lines over the line-length limit cannot be copied and are an error.

use std::path::Path;

use crate::error::Error;
use crate::output::{require_whole_input, AtomicFile, OutputFile};
use crate::pipeline::{run, Event, Kernel, RunOptions};
use crate::reader::{LinesChunk, Source};
use crate::record::{codes, parse_line, Parsed};
use crate::tokenizer::{Counter, Encoding};

/// The fields a piece gets, in this order.
pub const PIECE_FIELDS: [&str; 4] = ["source_file", "source_line", "chunk_index", "chunk_count"];

#[derive(Clone, Debug)]
pub struct ChunkOptions {
    /// The top-level key of the text.
    pub field: String,
    pub max_tokens: u64,
    pub overlap: u64,
}

impl ChunkOptions {
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_tokens == 0 {
            return Err(Error::InvalidInput("max_tokens must be at least 1".into()));
        }
        if self.overlap >= self.max_tokens {
            return Err(Error::InvalidInput("overlap must be less than max_tokens".into()));
        }
        Ok(())
    }
}

/// The byte ranges of the pieces of `text` (see the module documentation). `counter` must count
/// with `encoding`, without special tokens.
pub fn split_text(
    encoding: &Encoding,
    counter: &mut Counter,
    text: &str,
    options: &ChunkOptions,
) -> Result<Vec<(usize, usize)>, Error> {
    let max = options.max_tokens;
    let tiktoken = encoding.tiktoken().ok_or_else(|| {
        Error::InvalidInput(format!(
            "chunk needs a built-in encoding whose tokens are byte strings, not {}",
            encoding.name()
        ))
    })?;
    let ids = encoding.encode(text, false)?;
    let mut offsets = Vec::with_capacity(ids.len() + 1);
    let mut end = 0usize;
    offsets.push(0);
    for &id in &ids {
        end += tiktoken.ranks.token_bytes(id).map_or(0, <[u8]>::len);
        offsets.push(end);
    }
    if end != text.len() {
        return Err(Error::Tokenizer(format!(
            "the tokens of a text do not cover it ({end} of {} bytes)",
            text.len()
        )));
    }
    let n = ids.len();
    let floor_char = |mut b: usize| {
        while !text.is_char_boundary(b) {
            b -= 1;
        }
        b
    };
    let mut pieces = Vec::new();
    let mut start = 0usize;
    while start < text.len() {
        // The first token that starts at or after `start`; a token cut by `start` counts as one.
        let first = offsets.partition_point(|&o| o < start);
        let partial = u64::from(offsets[first] != start);
        let mut end_token = (first as u64 + max.saturating_sub(partial)).min(n as u64) as usize;
        let cut = loop {
            let cut = floor_char(offsets[end_token]);
            if cut <= start {
                let one = start + text[start..].chars().next().map_or(1, char::len_utf8);
                let tokens = counter.count(&text[start..one])?;
                if tokens > max {
                    return Err(Error::InvalidInput(format!(
                        "--max-tokens {max} is too small: the character {:?} alone is {tokens} tokens",
                        &text[start..one]
                    )));
                }
                break one;
            }
            let tokens = counter.count(&text[start..cut])?;
            if tokens <= max {
                break cut;
            }
            end_token = end_token.saturating_sub(((tokens - max) as usize).max(1));
        };
        pieces.push((start, cut));
        if cut == text.len() {
            break;
        }
        start = if options.overlap > 0 {
            let containing = offsets.partition_point(|&o| o <= cut) - 1;
            let back = floor_char(offsets[containing.saturating_sub(options.overlap as usize)]);
            if back > start {
                back
            } else {
                cut
            }
        } else {
            cut
        };
    }
    Ok(pieces)
}

/// The members of a JSON object (known to be valid) as raw (key, value) byte spans, in order.
fn members(json: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let ws = |mut i: usize| {
        while i < json.len() && matches!(json[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    };
    let string_end = |mut i: usize| {
        i += 1;
        while i < json.len() && json[i] != b'"' {
            i += if json[i] == b'\\' { 2 } else { 1 };
        }
        i + 1
    };
    let value_end = |mut i: usize| -> Option<usize> {
        match json.get(i)? {
            b'"' => Some(string_end(i)),
            b'{' | b'[' => {
                let mut depth = 0usize;
                while i < json.len() {
                    match json[i] {
                        b'"' => {
                            i = string_end(i);
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(i + 1);
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                None
            }
            _ => {
                while i < json.len() && !matches!(json[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                {
                    i += 1;
                }
                Some(i)
            }
        }
    };
    let mut out = Vec::new();
    let mut i = ws(0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(i + 1);
    if json.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(i);
        let key = json.get(i..key_end)?;
        i = ws(key_end);
        if json.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        let end = value_end(i)?;
        out.push((key, json.get(i..end)?));
        i = ws(end);
        match json.get(i) {
            Some(b',') => i = ws(i + 1),
            Some(b'}') => return Some(out),
            _ => return None,
        }
    }
}

/// What became of one chunk of lines.
#[derive(Default)]
struct ChunkOut {
    bytes: Vec<u8>,
    lines_written: u64,
    /// (line, pieces) of the chunked records.
    changed: Vec<(u64, u64)>,
    /// (line, reason) of the lines copied because they could not be chunked.
    unchanged: Vec<(u64, &'static str)>,
    records: u64,
}

struct ChunkKernel<'a> {
    encoding: &'a Encoding,
    options: &'a ChunkOptions,
    names: Vec<String>,
}

impl ChunkKernel<'_> {
    /// Appends the pieces of a record, or returns `Ok(None)` when it fits.
    fn chunk_record(
        &self,
        counter: &mut Counter,
        file: usize,
        line: u64,
        content: &[u8],
        text: &str,
        out: &mut Vec<u8>,
    ) -> Result<Option<u64>, Error> {
        if counter.count(text)? <= self.options.max_tokens {
            return Ok(None);
        }
        let pieces = split_text(self.encoding, counter, text, self.options)?;
        let json = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
        let members = members(json).ok_or_else(|| {
            Error::InvalidInput(format!("{}:{line}: cannot re-read the record", self.names[file]))
        })?;
        let count = pieces.len() as u64;
        for (index, &(a, b)) in pieces.iter().enumerate() {
            out.push(b'{');
            let mut first = true;
            for &(key, value) in &members {
                let name: String = serde_json::from_slice(key).unwrap_or_default();
                if PIECE_FIELDS.contains(&name.as_str()) {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(key);
                out.push(b':');
                if name == self.options.field {
                    serde_json::to_writer(&mut *out, &text[a..b]).expect("writing to a Vec");
                } else {
                    out.extend_from_slice(value);
                }
            }
            let fields = [
                serde_json::Value::from(self.names[file].as_str()),
                line.into(),
                (index as u64).into(),
                count.into(),
            ];
            for (key, value) in PIECE_FIELDS.iter().zip(fields) {
                if !first {
                    out.push(b',');
                }
                first = false;
                serde_json::to_writer(&mut *out, key).expect("writing to a Vec");
                out.push(b':');
                serde_json::to_writer(&mut *out, &value).expect("writing to a Vec");
            }
            out.extend_from_slice(b"}\n");
        }
        Ok(Some(count))
    }

    fn process_lines(&self, counter: &mut Counter, chunk: &LinesChunk) -> Result<ChunkOut, Error> {
        let mut out = ChunkOut { bytes: Vec::with_capacity(chunk.data.len()), ..Default::default() };
        let data = &chunk.data;
        let mut line = chunk.first_line;
        let mut start = 0;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i + 1);
            let raw = &data[start..end];
            let content = raw.strip_suffix(b"\n").unwrap_or(raw);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            let pieces = match parse_line(line, content) {
                Parsed::Blank => Err(codes::BLANK_LINE),
                Parsed::Invalid(problem) => Err(problem.code),
                Parsed::Record(record) => {
                    out.records += 1;
                    match record.get(&self.options.field) {
                        None => Err(codes::FIELD_MISSING),
                        Some(serde_json::Value::String(text)) => {
                            Ok(self.chunk_record(counter, chunk.file, line, content, text, &mut out.bytes)?)
                        }
                        Some(_) => Err(codes::FIELD_NOT_STRING),
                    }
                }
            };
            match pieces {
                Ok(Some(n)) => {
                    out.changed.push((line, n));
                    out.lines_written += n;
                }
                kept => {
                    if let Err(code) = kept {
                        out.unchanged.push((line, code));
                    }
                    out.bytes.extend_from_slice(raw);
                    if !raw.ends_with(b"\n") {
                        out.bytes.push(b'\n');
                    }
                    out.lines_written += 1;
                }
            }
            line += 1;
            start = end;
        }
        Ok(out)
    }
}

impl Kernel for ChunkKernel<'_> {
    type Worker = Counter;
    type Output = Result<ChunkOut, Error>;

    fn worker(&self) -> Counter {
        self.encoding.counter(false)
    }

    fn process(&self, counter: &mut Counter, chunk: &LinesChunk) -> Result<ChunkOut, Error> {
        self.process_lines(counter, chunk)
    }
}

/// What a chunk run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkSummary {
    pub lines_read: u64,
    pub lines_written: u64,
    pub records: u64,
    /// (file, line, pieces) of each chunked record, in input order.
    pub changed: Vec<(usize, u64, u64)>,
    /// (file, line, reason code) of each line copied because it could not be chunked.
    pub unchanged: Vec<(usize, u64, &'static str)>,
}

/// Writes every line of `sources` to a temporary file beside `dest` (compressed by `dest`'s
/// extension), each long text record replaced by its pieces; the file is returned complete for the
/// caller to commit.
pub fn chunk(
    sources: &[Source],
    encoding: &Encoding,
    options: &ChunkOptions,
    dest: &Path,
    force: bool,
    run_options: &RunOptions,
) -> Result<(ChunkSummary, AtomicFile), Error> {
    options.validate()?;
    if encoding.tiktoken().is_none() {
        return Err(Error::InvalidInput(format!(
            "chunk needs a built-in encoding ({}), not {}",
            crate::tokenizer::BUILTIN_ENCODINGS.join(", "),
            encoding.name()
        )));
    }
    let mut output_file = OutputFile::create(dest, sources, force)?;
    let kernel = ChunkKernel { encoding, options, names: sources.iter().map(Source::name).collect() };
    let mut summary = ChunkSummary::default();
    run(sources, run_options, &kernel, |event| {
        match event {
            Event::Lines { chunk, output } => {
                let out = output?;
                output_file.write(&out.bytes)?;
                summary.lines_written += out.lines_written;
                summary.records += out.records;
                summary.changed.extend(out.changed.into_iter().map(|(l, n)| (chunk.file, l, n)));
                summary.unchanged.extend(out.unchanged.into_iter().map(|(l, c)| (chunk.file, l, c)));
            }
            Event::LineTooLong { file, line, .. } => {
                return Err(Error::InvalidInput(format!(
                    "{}:{line}: the line is over --max-line-bytes and cannot be copied; raise the limit",
                    sources[file].name()
                )));
            }
            Event::FileEnd { file, lines, error, .. } => {
                summary.lines_read += lines;
                require_whole_input(sources, file, error)?;
            }
            Event::FileStart { .. } => {}
        }
        Ok(())
    })?;
    Ok((summary, output_file.finish()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(max_tokens: u64, overlap: u64) -> ChunkOptions {
        ChunkOptions { field: "text".into(), max_tokens, overlap }
    }

    #[test]
    fn pieces_fit_and_reassemble() {
        let enc = Encoding::load("cl100k_base").unwrap();
        let mut counter = enc.counter(false);
        let texts = [
            "Hello, wörld! ".repeat(50),
            "深度学习 👩‍👩‍👧 émoji 🎉🎉🎉 ".repeat(40),
            "a".repeat(3000),
            " \n\r\n\t".repeat(200),
            "<|endoftext|> x".repeat(30),
        ];
        for text in &texts {
            for max in [4, 5, 7, 16, 100] {
                let pieces = split_text(&enc, &mut counter, text, &options(max, 0)).unwrap();
                let joined: String = pieces.iter().map(|&(a, b)| &text[a..b]).collect();
                assert_eq!(&joined, text);
                for &(a, b) in &pieces {
                    assert!(a < b);
                    assert!(counter.count(&text[a..b]).unwrap() <= max, "{max} {:?}", &text[a..b]);
                }
                let overlapped = split_text(&enc, &mut counter, text, &options(max, max / 2)).unwrap();
                assert_eq!(overlapped.first().unwrap().0, 0);
                assert_eq!(overlapped.last().unwrap().1, text.len());
                for w in overlapped.windows(2) {
                    assert!(w[1].0 > w[0].0 && w[1].0 <= w[0].1);
                }
                for &(a, b) in &overlapped {
                    assert!(counter.count(&text[a..b]).unwrap() <= max);
                }
            }
        }
        let err = split_text(&enc, &mut counter, "🎉🎉", &options(1, 0)).unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
    }

    #[test]
    fn members_keep_raw_spans() {
        let json = br#" { "a" : [1, {"x": "]}"}], "b\"c": "s\\\"", "n":-1.5e3,"t":true , "o":{} } "#;
        let m = members(json).unwrap();
        let keys: Vec<_> = m.iter().map(|(k, _)| std::str::from_utf8(k).unwrap()).collect();
        assert_eq!(keys, [r#""a""#, r#""b\"c""#, r#""n""#, r#""t""#, r#""o""#]);
        let values: Vec<_> = m.iter().map(|(_, v)| std::str::from_utf8(v).unwrap()).collect();
        assert_eq!(values, [r#"[1, {"x": "]}"}]"#, r#""s\\\"""#, "-1.5e3", "true", "{}"]);
        assert_eq!(members(b"{}").unwrap().len(), 0);
    }

    #[test]
    fn writes_pieces_and_copies_the_rest() {
        let dir = std::env::temp_dir().join(format!("tokenlens-chunk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("in.jsonl");
        let long = "word ".repeat(30);
        let data = format!(
            "{{\"id\": 1, \"text\": \"short\"}}\r\n\nnot json\n{{\"z\": 0, \"text\": \"{long}\", \"a\": [1]}}\n{{\"x\": 1}}"
        );
        std::fs::write(&input, &data).unwrap();
        let dest = dir.join("out.jsonl");
        let _ = std::fs::remove_file(&dest);
        let enc = Encoding::load("cl100k_base").unwrap();
        let sources = [Source::Path(input.clone())];
        let (summary, file) =
            chunk(&sources, &enc, &options(10, 0), &dest, false, &RunOptions::default()).unwrap();
        file.commit().unwrap();
        assert_eq!(summary.changed, vec![(0, 4, 4)]);
        assert_eq!(
            summary.unchanged,
            vec![(0, 2, "blank_line"), (0, 3, "invalid_json"), (0, 5, "field_missing")]
        );
        assert_eq!((summary.lines_read, summary.lines_written, summary.records), (5, 8, 3));
        let out = String::from_utf8(std::fs::read(&dest).unwrap()).unwrap();
        let lines: Vec<&str> = out.split_inclusive('\n').collect();
        assert_eq!(lines[0], "{\"id\": 1, \"text\": \"short\"}\r\n");
        assert_eq!(lines[1..3], ["\n", "not json\n"]);
        assert_eq!(lines[7], "{\"x\": 1}\n");
        let mut joined = String::new();
        for (i, line) in lines[3..7].iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["z"], 0);
            assert_eq!(v["a"], serde_json::json!([1]));
            assert_eq!(
                (v["source_line"].as_u64(), v["chunk_index"].as_u64(), v["chunk_count"].as_u64()),
                (Some(4), Some(i as u64), Some(4))
            );
            assert!(line.starts_with("{\"z\":0,\"text\":"));
            joined.push_str(v["text"].as_str().unwrap());
        }
        assert_eq!(joined, long);
        assert!(chunk(&sources, &enc, &options(10, 0), &dest, false, &RunOptions::default()).is_err());
        assert!(chunk(&sources, &enc, &options(10, 0), &input, true, &RunOptions::default()).is_err());
        assert_eq!(std::fs::read(&input).unwrap(), data.as_bytes());
    }
}
