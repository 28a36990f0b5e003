//! Scans JSONL files (validation, token accounting, near-duplicate signatures, statistics) on one
//! worker thread (`THREADS=n` for more), for instruction-count profiling:
//!
//!     cargo build --release --example scan_file
//!     valgrind --tool=callgrind target/release/examples/scan_file cl100k_base data.jsonl

use tokenlens::audit::AuditOptions;
use tokenlens::dedup::DedupConfig;
use tokenlens::pipeline::RunOptions;
use tokenlens::reader::Source;
use tokenlens::scan::{scan, ScanOptions};
use tokenlens::tokenizer::Encoding;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [encoding, paths @ ..] = args.as_slice() else {
        panic!("usage: scan_file ENCODING FILE...");
    };
    let encoding = Encoding::load(encoding).expect("encoding loads");
    let sources: Vec<Source> = paths.iter().map(|p| Source::from_arg(p)).collect();
    let options = ScanOptions {
        audit: AuditOptions::default(),
        price_per_mtok: None,
        epochs: None,
        pack_length: None,
        sample: None,
        keep_records: false,
        dedup: Some(DedupConfig::default()),
    };
    let threads = std::env::var("THREADS").map_or(1, |t| t.parse().expect("THREADS is a number"));
    let run_options = RunOptions { threads, ..Default::default() };
    let report = scan(&sources, &[encoding], &options, &run_options).expect("scan runs");
    println!("{:#}", report.summary);
}
