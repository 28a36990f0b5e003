//! `count`: exact token counts per line, per file and in total.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::pipeline::{run, Event, Kernel, RunOptions};
use crate::quick_texts::QuickTexts;
use crate::reader::{LinesChunk, Source};
use crate::record::{codes, parse_line, Parsed, Problem, TextSpec};
use crate::tokenizer::{Counter, Encoding};

/// At most this many problem lines are kept with their messages; all of them are counted.
pub const MAX_REPORTED_PROBLEMS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct CountOptions {
    pub text: TextSpec,
    /// Count `<|endoftext|>` and friends as special tokens instead of ordinary text.
    pub special_tokens: bool,
    /// Keep one row per line (for a table); otherwise only totals.
    pub keep_lines: bool,
}

/// The verdict for one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineStatus {
    Counted,
    Blank,
    Invalid(Problem),
}

#[derive(Clone, Debug)]
pub struct LineCount {
    pub file: usize,
    pub line: u64,
    pub offset: u64,
    /// Bytes of the counted text (UTF-8).
    pub text_bytes: u64,
    pub tokens: u64,
    pub status: LineStatus,
}

/// Totals for one file or for all of them. Always `lines == records + blank + invalid`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub lines: u64,
    pub records: u64,
    pub blank: u64,
    pub invalid: u64,
    pub tokens: u64,
    pub text_bytes: u64,
    /// Bytes of the (decompressed) input.
    pub input_bytes: u64,
    pub problems_by_code: BTreeMap<&'static str, u64>,
}

impl Totals {
    fn add_line(&mut self, line: &LineCount) {
        self.lines += 1;
        match &line.status {
            LineStatus::Counted => {
                self.records += 1;
                self.tokens += line.tokens;
                self.text_bytes += line.text_bytes;
            }
            LineStatus::Blank => self.blank += 1,
            LineStatus::Invalid(problem) => {
                self.invalid += 1;
                *self.problems_by_code.entry(problem.code).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: &Totals) {
        self.lines += other.lines;
        self.records += other.records;
        self.blank += other.blank;
        self.invalid += other.invalid;
        self.tokens += other.tokens;
        self.text_bytes += other.text_bytes;
        self.input_bytes += other.input_bytes;
        for (code, n) in &other.problems_by_code {
            *self.problems_by_code.entry(code).or_default() += n;
        }
    }
}

#[derive(Clone, Debug)]
pub struct FileCount {
    pub name: String,
    pub compression: Option<&'static str>,
    pub totals: Totals,
    /// Why the file could not be read to its end, if it could not.
    pub error: Option<String>,
}

/// A problem line, with where it is.
#[derive(Clone, Debug)]
pub struct LineProblem {
    pub file: usize,
    pub line: u64,
    pub problem: Problem,
}

#[derive(Debug)]
pub struct CountReport {
    pub encoding: String,
    pub files: Vec<FileCount>,
    pub total: Totals,
    /// The first [`MAX_REPORTED_PROBLEMS`] problem lines, in input order.
    pub problems: Vec<LineProblem>,
    /// One row per line, when asked for.
    pub lines: Vec<LineCount>,
}

struct CountKernel<'a> {
    encoding: &'a Encoding,
    options: &'a CountOptions,
}

impl Kernel for CountKernel<'_> {
    type Worker = (Counter, QuickTexts);
    type Output = Vec<LineCount>;

    fn worker(&self) -> (Counter, QuickTexts) {
        (self.encoding.counter(self.options.special_tokens), QuickTexts::default())
    }

    fn process(&self, (counter, quick): &mut (Counter, QuickTexts), chunk: &LinesChunk) -> Vec<LineCount> {
        let mut out = Vec::with_capacity(chunk.lines as usize);
        chunk.for_each_line(|line, offset, bytes| {
            let mut row = LineCount {
                file: chunk.file,
                line,
                offset,
                text_bytes: 0,
                tokens: 0,
                status: LineStatus::Counted,
            };
            // Most lines are records with texts: read those without building the record.
            row.status = match quick.line_texts(line, bytes, &self.options.text) {
                Some(texts) => count_texts(counter, &mut row, |f| {
                    texts.for_each(f);
                    Ok(())
                }),
                None => match parse_line(line, bytes) {
                    Parsed::Blank => LineStatus::Blank,
                    Parsed::Invalid(problem) => LineStatus::Invalid(problem),
                    Parsed::Record(record) => {
                        count_texts(counter, &mut row, |f| self.options.text.for_each_text(&record, f))
                    }
                },
            };
            out.push(row);
        });
        out
    }
}

/// Counts the texts that `for_each_text` gives into `row`: the line's status.
fn count_texts(
    counter: &mut Counter,
    row: &mut LineCount,
    for_each_text: impl FnOnce(&mut dyn FnMut(&str)) -> Result<(), Problem>,
) -> LineStatus {
    let mut failure = None;
    let found = for_each_text(&mut |text| {
        row.text_bytes += text.len() as u64;
        match counter.count(text) {
            Ok(n) => row.tokens += n,
            Err(e) => failure = Some(Problem::new(codes::TOKENIZER_FAILED, e.to_string())),
        }
    });
    match found.err().or(failure) {
        None => LineStatus::Counted,
        Some(problem) => {
            row.tokens = 0;
            row.text_bytes = 0;
            LineStatus::Invalid(problem)
        }
    }
}

/// Counts the tokens of every line of `sources`.
pub fn count(
    sources: &[Source],
    encoding: &Encoding,
    options: &CountOptions,
    run_options: &RunOptions,
) -> Result<CountReport, Error> {
    let kernel = CountKernel { encoding, options };
    let mut report = CountReport {
        encoding: encoding.name().to_string(),
        files: sources
            .iter()
            .map(|s| FileCount { name: s.name(), compression: None, totals: Totals::default(), error: None })
            .collect(),
        total: Totals::default(),
        problems: Vec::new(),
        lines: Vec::new(),
    };
    let note_problem = |problems: &mut Vec<LineProblem>, file, line, problem: &Problem| {
        if problems.len() < MAX_REPORTED_PROBLEMS {
            problems.push(LineProblem { file, line, problem: problem.clone() });
        }
    };
    run(sources, run_options, &kernel, |event| {
        match event {
            Event::FileStart { file, compression } => {
                report.files[file].compression = Some(compression.name())
            }
            Event::Lines { output, .. } => {
                for row in output {
                    report.files[row.file].totals.add_line(&row);
                    if let LineStatus::Invalid(problem) = &row.status {
                        note_problem(&mut report.problems, row.file, row.line, problem);
                    }
                    if options.keep_lines {
                        report.lines.push(row);
                    }
                }
            }
            Event::LineTooLong { file, line, offset, len } => {
                let problem = Problem::new(
                    codes::LINE_TOO_LONG,
                    format!(
                        "line is {len} bytes, over the limit of {} (--max-line-bytes)",
                        run_options.read.max_line_bytes
                    ),
                );
                let row = LineCount {
                    file,
                    line,
                    offset,
                    text_bytes: 0,
                    tokens: 0,
                    status: LineStatus::Invalid(problem.clone()),
                };
                report.files[file].totals.add_line(&row);
                note_problem(&mut report.problems, file, line, &problem);
                if options.keep_lines {
                    report.lines.push(row);
                }
            }
            Event::FileEnd { file, bytes, error, .. } => {
                report.files[file].totals.input_bytes = bytes;
                report.files[file].error = error;
            }
        }
        Ok(())
    })?;
    for file in &report.files {
        report.total.merge(&file.totals);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::ReadOptions;

    fn count_text(data: &str, threads: usize, chunk_size: usize) -> CountReport {
        let dir = std::env::temp_dir().join(format!("tokenlens-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("in-{threads}-{chunk_size}.jsonl"));
        std::fs::write(&path, data).unwrap();
        let enc = Encoding::load("cl100k_base").unwrap();
        let options = CountOptions { text: TextSpec::Auto, special_tokens: false, keep_lines: true };
        let run_options = RunOptions {
            threads,
            read: ReadOptions { chunk_size, max_line_bytes: 1 << 20 },
            ..Default::default()
        };
        count(&[Source::Path(path)], &enc, &options, &run_options).unwrap()
    }

    #[test]
    fn broken_line_in_the_middle_is_reported_and_the_rest_counted() {
        let data = "{\"text\": \"hello world\"}\n{\"text\": \"oops\"\n\n{\"text\": \"hello world\"}\n";
        let report = count_text(data, 2, 8);
        let t = &report.total;
        assert_eq!((t.lines, t.records, t.blank, t.invalid, t.tokens), (4, 2, 1, 1, 4));
        assert_eq!(report.problems.len(), 1);
        assert_eq!((report.problems[0].line, report.problems[0].problem.code), (2, codes::INVALID_JSON));
    }

    #[test]
    fn results_do_not_depend_on_threads_or_chunking() {
        let mut data = String::new();
        for i in 0..500 {
            if i % 37 == 0 {
                data += "{broken\n";
            } else {
                data += &format!("{{\"text\": \"record {i} {}\"}}\n", "word ".repeat(i % 13));
            }
        }
        let reference = count_text(&data, 1, 1 << 20);
        for (threads, chunk) in [(2, 1), (3, 17), (4, 4096)] {
            let other = count_text(&data, threads, chunk);
            assert_eq!(other.total, reference.total);
            let rows =
                |r: &CountReport| r.lines.iter().map(|l| (l.line, l.offset, l.tokens)).collect::<Vec<_>>();
            assert_eq!(rows(&other), rows(&reference));
        }
    }
}
