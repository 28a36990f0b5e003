//! The streaming reader and `count` on arbitrary files with small chunks and line limits: every line
//! comes out once, in order, with its number and offset; totals add up and do not depend on chunking
//! or threads.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tokenlens::count::{count, CountOptions, LineStatus};
use tokenlens::pipeline::RunOptions;
use tokenlens::reader::{read_all, Item, Progress, ReadOptions, Source};
use tokenlens::record::TextSpec;
use tokenlens::tokenizer::Encoding;

fn encoding() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(|| Encoding::load("cl100k_base").expect("built-in encoding"))
}

fn temp_file(data: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tokenlens-fuzz-reader-{}.jsonl", std::process::id()));
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(data).unwrap();
    path
}

fuzz_target!(|input: &[u8]| {
    let [a, b, c, data @ ..] = input else { return };
    if data.starts_with(&[0x1f, 0x8b]) || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return; // compressed by its magic bytes: another stream, not these lines
    }
    let chunk_size = usize::from(*a % 64) + 1;
    let max_line_bytes = u64::from(*b) * 4 + 1;
    let threads = usize::from(*c % 3) + 1;
    let path = temp_file(data);
    let sources = [Source::Path(path.clone())];
    let read = ReadOptions { chunk_size, max_line_bytes };

    // The lines of `data`, as the reader should cut them.
    let mut expected: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.is_empty() || data.ends_with(b"\n") {
        expected.pop();
    }

    let mut next_line = 1u64;
    let mut ended = false;
    read_all(&sources, &read, &Arc::new(Progress::default()), |item| {
        assert!(!ended, "an item after the end of the file");
        match item {
            Item::FileStart { .. } => {}
            Item::Lines(chunk) => {
                assert!(!chunk.data.is_empty());
                chunk.for_each_line(|number, offset, line| {
                    assert_eq!(number, next_line);
                    let want = expected[number as usize - 1];
                    let want = want.strip_suffix(b"\r").unwrap_or(want);
                    assert_eq!(line, want, "line {number}");
                    let start = offset as usize;
                    assert_eq!(&data[start..start + line.len()], line, "offset of line {number}");
                    assert!(line.len() as u64 <= max_line_bytes, "line {number} is over the limit");
                    next_line += 1;
                });
            }
            Item::LineTooLong { line, len, .. } => {
                assert_eq!(line, next_line);
                let full = expected[line as usize - 1].len() as u64;
                assert!(len > max_line_bytes && len <= full + 1, "line {line}: len {len}, really {full}");
                next_line += 1;
            }
            Item::FileEnd { lines, bytes, error, .. } => {
                assert_eq!(error, None);
                assert_eq!(lines, expected.len() as u64);
                assert_eq!(bytes, data.len() as u64);
                ended = true;
            }
        }
        true
    });
    assert!(ended);
    assert_eq!(next_line, expected.len() as u64 + 1);

    let options = CountOptions { text: TextSpec::Auto, special_tokens: false, keep_lines: true };
    let run = |threads, read| RunOptions { threads, read, ..Default::default() };
    let small = count(&sources, encoding(), &options, &run(threads, read)).unwrap();
    let big_read = ReadOptions { chunk_size: 1 << 20, max_line_bytes };
    let reference = count(&sources, encoding(), &options, &run(1, big_read)).unwrap();
    let t = &small.total;
    assert_eq!(t.lines, t.records + t.blank + t.invalid);
    assert_eq!(t.lines, expected.len() as u64);
    assert_eq!(t.lines, small.lines.len() as u64);
    assert_eq!(small.total, reference.total);
    let rows = |lines: &[tokenlens::count::LineCount]| {
        lines.iter().map(|l| (l.line, l.offset, l.tokens, l.status.clone())).collect::<Vec<_>>()
    };
    assert_eq!(rows(&small.lines), rows(&reference.lines));
    for (i, row) in small.lines.iter().enumerate() {
        assert_eq!(row.line, i as u64 + 1);
        if row.status != LineStatus::Counted {
            assert_eq!(row.tokens, 0);
        }
    }
    let _ = std::fs::remove_file(path);
});
