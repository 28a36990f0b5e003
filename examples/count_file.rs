//! Counts the tokens of JSONL files on one worker thread, for instruction-count profiling:
//!
//!     cargo build --release --example count_file
//!     valgrind --tool=callgrind target/release/examples/count_file cl100k_base data.jsonl

use tokenlens::count::{count, CountOptions};
use tokenlens::pipeline::RunOptions;
use tokenlens::reader::Source;
use tokenlens::record::TextSpec;
use tokenlens::tokenizer::Encoding;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [encoding, paths @ ..] = args.as_slice() else {
        panic!("usage: count_file ENCODING FILE...");
    };
    let encoding = Encoding::load(encoding).expect("encoding loads");
    let sources: Vec<Source> = paths.iter().map(|p| Source::from_arg(p)).collect();
    let options = CountOptions { text: TextSpec::Auto, special_tokens: false, keep_lines: false };
    let run_options = RunOptions { threads: 1, ..Default::default() };
    let report = count(&sources, &encoding, &options, &run_options).expect("count runs");
    let t = &report.total;
    println!("lines {} records {} invalid {} tokens {}", t.lines, t.records, t.invalid, t.tokens);
}
