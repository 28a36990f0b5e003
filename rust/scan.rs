//! `scan`: the one-pass audit of a fine-tuning dataset. Every line gets a verdict; records are
//! validated and counted exactly (see [`crate::audit`]); the summary gathers distributions, label
//! balance, packing and cost.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::audit::{
    audit_record, audit_text_field, codes as audit_codes, AuditOptions, Format, RecordAudit, MIN_EXAMPLES,
};
use crate::dedup::{
    cluster, detection_table, read_minhashes, resolve, DedupConfig, DedupIndex, DedupOptions, DedupResult,
    Diversity, RecordOutcome, RecordSignature, SignWorker,
};
use crate::error::Error;
use crate::interned::{self, Label};
use crate::pipeline::{run, Event, Kernel, RunOptions};
use crate::quick_texts::QuickTexts;
use crate::reader::{LinesChunk, Source};
use crate::record::{codes, parse_line, Parsed, Problem, TextSpec};
use crate::stats::{
    billed_tokens_per_epoch, default_epochs, estimate_total, pack_ffd, pack_none, Cost, Distribution,
    LabelBalance, Summary,
};
use crate::tokenizer::{Counter, Encoding};

/// At most this many problems of each code are kept with their messages; all of them are counted.
pub const MAX_REPORTED_PER_CODE: u64 = 1_000;

/// The problems kept with their messages: the first [`MAX_REPORTED_PER_CODE`] of each code.
#[derive(Default, Serialize, Deserialize)]
struct ProblemList {
    kept: Vec<Located>,
    #[serde(deserialize_with = "interned::keys")]
    per_code: BTreeMap<Label, u64>,
}

impl ProblemList {
    /// Counts a problem of `code` at `file:line`, and keeps it if it is among the first of its
    /// code. `message` is made only then: most problems of a large file are past the kept ones.
    fn note(
        &mut self,
        file: usize,
        line: u64,
        severity: Label,
        code: Label,
        message: impl FnOnce() -> String,
    ) {
        let seen = self.per_code.entry(code).or_default();
        *seen += 1;
        if *seen <= MAX_REPORTED_PER_CODE {
            let problem = Problem { code, message: message() };
            self.kept.push(Located { file, line, severity, problem });
        }
    }

    /// The codes of which the first [`MAX_REPORTED_PER_CODE`] are kept already.
    fn full_codes(&self) -> Vec<Label> {
        self.per_code.iter().filter(|(_, &n)| n >= MAX_REPORTED_PER_CODE).map(|(&code, _)| code).collect()
    }

    /// Appends the problems of the next shard (each moved to its place in the run by `relocate`),
    /// keeping the first [`MAX_REPORTED_PER_CODE`] of each code over all shards.
    fn append(&mut self, other: ProblemList, mut relocate: impl FnMut(&mut Located)) {
        let mut taken: BTreeMap<&str, u64> = BTreeMap::new();
        for mut located in other.kept {
            let before = self.per_code.get(located.problem.code).copied().unwrap_or(0);
            let taken = taken.entry(located.problem.code).or_default();
            *taken += 1;
            if before + *taken <= MAX_REPORTED_PER_CODE {
                relocate(&mut located);
                self.kept.push(located);
            }
        }
        for (code, n) in other.per_code {
            *self.per_code.entry(code).or_default() += n;
        }
    }
}

#[derive(Clone, Debug)]
pub struct ScanOptions {
    pub audit: AuditOptions,
    /// Training price in USD per million tokens, if known.
    pub price_per_mtok: Option<f64>,
    /// Overrides the default-epochs heuristic.
    pub epochs: Option<u64>,
    /// Sequence length for the packing figures; the context limit by default.
    pub pack_length: Option<u32>,
    /// Audit only this fraction of the lines (chosen by a hash of seed, file and line) and estimate.
    pub sample: Option<(f64, u64)>,
    /// Keep one row per line for the records table.
    pub keep_records: bool,
    /// Find exact and near duplicates among the valid records.
    pub dedup: Option<DedupConfig>,
}

/// One line's verdict and figures. The token figures are for the first encoding; `other_tokens`
/// holds the totals for the others.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordRow {
    pub file: usize,
    pub line: u64,
    pub status: RowStatus,
    /// Why the line is not a record at all (not JSON, not an object, too long ...).
    pub line_problem: Option<Problem>,
    /// The audit, for records.
    pub audit: Option<RecordAudit>,
    pub other_tokens: Vec<u64>,
    /// The duplicate signature of a valid record (taken by the collector).
    pub signature: Option<RecordSignature>,
    /// What deduplication found, for valid records.
    pub dedup: Option<RowDedup>,
}

impl RecordRow {
    /// A row with no findings yet.
    fn new(file: usize, line: u64, status: RowStatus) -> RecordRow {
        let (line_problem, audit, other_tokens, signature, dedup) = (None, None, vec![], None, None);
        RecordRow { file, line, status, line_problem, audit, other_tokens, signature, dedup }
    }
}

/// Duplicate figures of one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDedup {
    /// File index and line of the first record with the same text, when this one is a copy.
    pub exact_dup_of: Option<(usize, u64)>,
    /// Near-duplicate cluster id (the number of its first record among the signed ones).
    pub cluster: Option<u64>,
    pub cluster_size: u64,
    pub is_representative: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowStatus {
    Valid,
    Invalid,
    Blank,
    /// Not in the sample.
    Skipped,
}

/// Where a problem is: a line, or the whole file (line 0).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Located {
    pub file: usize,
    pub line: u64,
    #[serde(deserialize_with = "interned::str")]
    pub severity: Label,
    pub problem: Problem,
}

struct ScanKernel<'a> {
    encodings: &'a [Encoding],
    options: &'a ScanOptions,
    dedup: Option<&'a DedupOptions>,
    diversity: &'a Mutex<Diversity>,
    /// The audit options of the other encodings, which count tokens only: no context-limit warning.
    token_only: AuditOptions,
    /// The text field as a [`TextSpec::Field`], when the options let text records be read without
    /// building them (no other format forced, no label field).
    quick_text_field: Option<TextSpec>,
    /// The index of the first source among all the files of the run (not 0 for a shard), so that
    /// sampling picks the same lines however the input is split.
    first_file: usize,
    /// The problem codes whose kept messages are all in, as the collector last saw them; a worker
    /// writes no messages for their warnings. Chunks are collected in input order, so a chunk that a
    /// worker begins comes after every problem the collector has seen.
    quiet: &'a Mutex<Vec<Label>>,
}

struct ScanWorker<'a> {
    counters: Vec<Counter>,
    signer: Option<SignWorker<'a>>,
    quick: QuickTexts,
}

/// A record as scan reads it: a text record's text field, found without building the record, or
/// the whole record. Both give the same audit and signature.
enum ScanRecord<'l> {
    TextField(&'l str),
    Object(Map<String, Value>),
}

impl ScanRecord<'_> {
    fn audit(&self, options: &AuditOptions, quiet: &[Label], counter: &mut Counter) -> RecordAudit {
        match self {
            ScanRecord::TextField(text) => audit_text_field(text, options, quiet, counter),
            ScanRecord::Object(record) => audit_record(record, options, quiet, counter),
        }
    }

    fn sign(&self, signer: &mut SignWorker, spec: &TextSpec) -> Option<RecordSignature> {
        match self {
            ScanRecord::TextField(text) => Some(signer.sign_text(text)),
            ScanRecord::Object(record) => signer.sign_record(record, spec).ok(),
        }
    }
}

impl<'a> Kernel for ScanKernel<'a> {
    type Worker = ScanWorker<'a>;
    type Output = Vec<RecordRow>;

    fn worker(&self) -> ScanWorker<'a> {
        ScanWorker {
            counters: self.encodings.iter().map(|e| e.counter(false)).collect(),
            signer: self.dedup.map(|d| SignWorker::new(&d.config, self.diversity)),
            quick: QuickTexts::default(),
        }
    }

    fn process(&self, worker: &mut ScanWorker<'a>, chunk: &LinesChunk) -> Vec<RecordRow> {
        let ScanWorker { counters, signer, quick } = worker;
        let quiet = self.quiet.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut rows = Vec::with_capacity(chunk.lines as usize);
        chunk.for_each_line(|line, offset, bytes| {
            let mut row = RecordRow::new(chunk.file, line, RowStatus::Valid);
            let quick_text =
                self.quick_text_field.as_ref().and_then(|field| quick.text_field(line, bytes, field));
            let parsed = match quick_text {
                Some(text) => Ok(ScanRecord::TextField(text)),
                None => match parse_line(line, bytes) {
                    Parsed::Record(record) => Ok(ScanRecord::Object(record)),
                    not_a_record => Err(not_a_record),
                },
            };
            let file = self.first_file + chunk.file;
            if !matches!(parsed, Err(Parsed::Blank)) && !in_sample(self.options.sample, file, offset) {
                row.status = RowStatus::Skipped;
                rows.push(row);
                return;
            }
            match parsed {
                Err(Parsed::Invalid(problem)) => {
                    row.status = RowStatus::Invalid;
                    row.line_problem = Some(problem);
                }
                Err(_) => row.status = RowStatus::Blank,
                Ok(record) => {
                    let audit = record.audit(&self.options.audit, &quiet, &mut counters[0]);
                    row.other_tokens = counters[1..]
                        .iter_mut()
                        .map(|c| record.audit(&self.token_only, &quiet, c).total_tokens)
                        .collect();
                    row.status = if audit.is_valid() { RowStatus::Valid } else { RowStatus::Invalid };
                    if let (RowStatus::Valid, Some(signer), Some(d)) =
                        (&row.status, signer.as_mut(), self.dedup)
                    {
                        row.signature = record.sign(signer, &d.text);
                    }
                    row.audit = Some(audit);
                }
            }
            rows.push(row);
        });
        rows
    }
}

/// Deterministic sampling by a hash of (seed, file, byte offset of the line): the same lines
/// whatever the thread count, the chunking or the split into shards.
fn in_sample(sample: Option<(f64, u64)>, file: usize, offset: u64) -> bool {
    let Some((fraction, seed)) = sample else { return true };
    // SplitMix64 of (seed, file, offset) mapped to [0, 1).
    let mut x =
        seed ^ (file as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ offset.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    ((x >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct FileTally {
    lines: u64,
    valid: u64,
    invalid: u64,
    blank: u64,
    skipped: u64,
    #[serde(deserialize_with = "interned::keys")]
    errors: BTreeMap<Label, u64>,
    #[serde(deserialize_with = "interned::keys")]
    warnings: BTreeMap<Label, u64>,
    #[serde(deserialize_with = "interned::option")]
    compression: Option<Label>,
    error: Option<String>,
}

impl FileTally {
    fn json(&self, name: &str) -> Value {
        json!({
            "name": name, "compression": self.compression, "error": self.error,
            "lines": self.lines, "records": self.valid + self.invalid, "valid": self.valid,
            "invalid": self.invalid, "blank": self.blank, "not_sampled": self.skipped,
            "errors": self.errors, "warnings": self.warnings,
        })
    }

    /// Adds the counts of `other`; keeps the first compression and error seen.
    fn merge(&mut self, other: &FileTally) {
        self.lines += other.lines;
        self.valid += other.valid;
        self.invalid += other.invalid;
        self.blank += other.blank;
        self.skipped += other.skipped;
        for (c, n) in &other.errors {
            *self.errors.entry(c).or_default() += n;
        }
        for (c, n) in &other.warnings {
            *self.warnings.entry(c).or_default() += n;
        }
        self.compression = self.compression.or(other.compression);
        if self.error.is_none() {
            self.error.clone_from(&other.error);
        }
    }
}

/// Everything a scan found.
pub struct ScanReport {
    /// The JSON summary (see the schema in the Python package).
    pub summary: Value,
    /// The first [`MAX_REPORTED_PER_CODE`] problems of each code, in input order.
    pub problems: Vec<Located>,
    /// One row per line, when asked for.
    pub records: Vec<RecordRow>,
}

fn distribution_json(summary: Option<Summary>) -> Value {
    match summary {
        None => {
            json!({"total": 0, "count": 0, "min": null, "max": null, "mean": null, "p5": null, "p50": null, "p95": null})
        }
        Some(s) => json!({"total": s.sum, "count": s.count, "min": s.min, "max": s.max, "mean": s.mean,
                          "p5": s.p5, "p50": s.p50, "p95": s.p95}),
    }
}

fn check_options(encodings: &[Encoding], options: &ScanOptions) -> Result<(), Error> {
    if encodings.is_empty() {
        return Err(Error::InvalidInput("at least one encoding is needed".into()));
    }
    if let Some((fraction, _)) = options.sample {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::InvalidInput(format!("sample fraction must be in (0, 1], not {fraction}")));
        }
    }
    if let Some(config) = &options.dedup {
        config.validate()?;
    }
    Ok(())
}

/// What duplicate detection reads of a record: the configured text field, else the format's texts.
fn dedup_options(options: &ScanOptions) -> Option<DedupOptions> {
    options.dedup.clone().map(|config| {
        let text = if options.audit.text_field == ["text"] {
            TextSpec::Auto
        } else {
            TextSpec::Field(options.audit.text_field.clone())
        };
        DedupOptions { text, config, exact_only: false }
    })
}

/// Runs the audit over `sources`; `encodings[0]` is the one validated and detailed, the others are
/// counted side by side.
pub fn scan(
    sources: &[Source],
    encodings: &[Encoding],
    options: &ScanOptions,
    run_options: &RunOptions,
) -> Result<ScanReport, Error> {
    check_options(encodings, options)?;
    let state = collect(sources, 0, encodings, options, run_options, false)?;
    let names: Vec<String> = sources.iter().map(Source::name).collect();
    state.finish(&names, encodings, options, |index, places| {
        let dedup = dedup_options(options).expect("an index means dedup options");
        resolve(sources, &dedup, run_options, index, places)
    })
}

/// Scans one shard of a distributed run: file number `file` of the run, or a part of it
/// ([`Source::Range`]). The state goes to the driver, which merges the shards with
/// [`ScanState::append`].
pub fn scan_shard(
    source: &Source,
    file: usize,
    encodings: &[Encoding],
    options: &ScanOptions,
    run_options: &RunOptions,
) -> Result<ScanState, Error> {
    check_options(encodings, options)?;
    collect(std::slice::from_ref(source), file, encodings, options, run_options, true)
}

/// Where a shard's lines are in a distributed run: lines `lines_before + 1 ..= lines_before + lines`
/// of file `file`.
#[derive(Clone, Copy, Debug)]
pub struct ShardPlace {
    pub file: usize,
    pub lines_before: u64,
    pub lines: u64,
}

/// What a shard found of the candidate records it was asked for: (line within the shard, MinHash).
pub type ShardMinhashes = Vec<(u64, Vec<u32>)>;

/// The driver's part of duplicate resolution in a distributed run: clusters the merged index as
/// [`resolve`] does locally, but the candidate records are read again by the shards.
/// `fetch(requests)` gets (shard, ascending line numbers within the shard) for each shard holding
/// candidates and returns, for each request, the (line within the shard, MinHash) found there
/// ([`shard_minhashes`]).
pub fn resolve_sharded(
    index: DedupIndex,
    places: &[(u32, u64)],
    n_files: usize,
    shards: &[ShardPlace],
    fetch: impl FnOnce(Vec<(usize, Vec<u64>)>) -> Result<Vec<ShardMinhashes>, Error>,
) -> Result<DedupResult, Error> {
    cluster(index, places, n_files, |wanted, found| {
        let mut requests: Vec<(usize, Vec<u64>)> = Vec::new();
        for (shard, place) in shards.iter().enumerate() {
            let lines = &wanted[place.file];
            let from = lines.partition_point(|&l| l <= place.lines_before);
            let to = lines.partition_point(|&l| l <= place.lines_before + place.lines);
            if from < to {
                requests.push((shard, lines[from..to].iter().map(|l| l - place.lines_before).collect()));
            }
        }
        let shard_of_request: Vec<usize> = requests.iter().map(|(shard, _)| *shard).collect();
        let answers = fetch(requests)?;
        if answers.len() != shard_of_request.len() {
            return Err(Error::InvalidInput("one answer is needed per request".into()));
        }
        for (shard, answer) in shard_of_request.into_iter().zip(answers) {
            let place = shards[shard];
            for (line, minhash) in answer {
                found(place.file, place.lines_before + line, &minhash);
            }
        }
        Ok(())
    })
}

/// A shard's part of duplicate resolution: the MinHash signatures of its records at `lines`
/// (ascending, numbered within the shard).
pub fn shard_minhashes(
    source: &Source,
    options: &ScanOptions,
    run_options: &RunOptions,
    mut lines: Vec<u64>,
) -> Result<ShardMinhashes, Error> {
    lines.sort_unstable();
    lines.dedup();
    let dedup = dedup_options(options)
        .ok_or_else(|| Error::InvalidInput("duplicate detection is off for this scan".into()))?;
    dedup.config.validate()?;
    let mut found = Vec::new();
    read_minhashes(std::slice::from_ref(source), &dedup, run_options, &[lines], &mut |_, line, minhash| {
        found.push((line, minhash.to_vec()))
    })?;
    Ok(found)
}

/// The first pass: reads `sources` (the first of which is file `first_file` of the run) into a state.
fn collect(
    sources: &[Source],
    first_file: usize,
    encodings: &[Encoding],
    options: &ScanOptions,
    run_options: &RunOptions,
    for_shard: bool,
) -> Result<ScanState, Error> {
    let dedup = dedup_options(options);
    let diversity = Mutex::new(Diversity::default());
    let quiet = Mutex::new(Vec::new());
    let token_only = AuditOptions { context_limit: None, ..options.audit.clone() };
    let audit = &options.audit;
    let quick_text_field = (audit.label_field.is_none() && matches!(audit.format, None | Some(Format::Text)))
        .then(|| TextSpec::Field(audit.text_field.clone()));
    let kernel = ScanKernel {
        encodings,
        options,
        dedup: dedup.as_ref(),
        diversity: &diversity,
        token_only,
        quick_text_field,
        first_file,
        quiet: &quiet,
    };
    let mut state = ScanState::new(sources.len(), encodings.len(), options, for_shard);
    run(sources, run_options, &kernel, |event| {
        match event {
            Event::FileStart { file, compression } => {
                state.files[file].compression = Some(compression.name())
            }
            Event::FileEnd { file, error, .. } => state.files[file].error = error,
            Event::LineTooLong { file, line, len, .. } => {
                let message = format!(
                    "line is {len} bytes, over the limit of {} (--max-line-bytes)",
                    run_options.read.max_line_bytes
                );
                state.add_line_too_long(file, line, Problem::new(codes::LINE_TOO_LONG, message));
            }
            Event::Lines { output, .. } => {
                output.into_iter().for_each(|row| state.add_row(row));
                // The records table shows every message.
                if !options.keep_records {
                    *quiet.lock().unwrap_or_else(|e| e.into_inner()) = state.problems.full_codes();
                }
            }
        }
        Ok(())
    })?;
    state.diversity = diversity.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(state)
}

/// What a scan has gathered before its summary is made, in a form that merges exactly: tallies,
/// the first problems of each code, every record's token figures (so quantiles, packing and cost
/// stay exact), labels, and the duplicate signatures.
///
/// The local engine fills one state as it reads. A distributed run fills one per shard (a file or
/// a byte range of one), serializes it ([`ScanState::to_bytes`]) and merges the shards on the
/// driver in input order ([`ScanState::append`]); [`ScanState::finish`] then makes the same report
/// either way.
#[derive(Serialize, Deserialize)]
pub struct ScanState {
    files: Vec<FileTally>,
    problems: ProblemList,
    keep_records: bool,
    records: Vec<RecordRow>,
    tokens: Distribution,
    trainable: Distribution,
    messages: Distribution,
    /// Per record, the totals of the other encodings.
    other_tokens: Vec<Vec<u64>>,
    labels: LabelBalance,
    too_long: u64,
    #[serde(deserialize_with = "interned::keys")]
    formats: BTreeMap<Label, u64>,
    /// Each signed record's file and line, and its row in `records` (when rows are kept).
    places: Vec<(u32, u64)>,
    place_rows: Vec<usize>,
    /// A shard's duplicate signatures, in input order (one per place).
    signatures: Vec<RecordSignature>,
    /// The duplicate index of the local engine or of the driver, which takes the signatures as they
    /// come.
    #[serde(skip)]
    index: Option<DedupIndex>,
    diversity: Diversity,
}

impl ScanState {
    fn new(n_files: usize, n_encodings: usize, options: &ScanOptions, for_shard: bool) -> ScanState {
        ScanState {
            files: vec![FileTally::default(); n_files],
            problems: ProblemList::default(),
            keep_records: options.keep_records,
            records: Vec::new(),
            tokens: Distribution::new(),
            trainable: Distribution::new(),
            messages: Distribution::new(),
            other_tokens: vec![Vec::new(); n_encodings - 1],
            labels: LabelBalance::new(),
            too_long: 0,
            formats: BTreeMap::new(),
            places: Vec::new(),
            place_rows: Vec::new(),
            signatures: Vec::new(),
            index: options.dedup.as_ref().filter(|_| !for_shard).map(DedupIndex::new),
            diversity: Diversity::default(),
        }
    }

    /// An empty state for the driver of a distributed run over `n_files` files.
    pub fn for_driver(
        n_files: usize,
        encodings: &[Encoding],
        options: &ScanOptions,
    ) -> Result<ScanState, Error> {
        check_options(encodings, options)?;
        Ok(ScanState::new(n_files, encodings.len(), options, false))
    }

    /// Lines read (of the one file of a shard).
    pub fn lines(&self) -> u64 {
        self.files.iter().map(|f| f.lines).sum()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a scan state serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ScanState, Error> {
        postcard::from_bytes(bytes).map_err(|e| Error::InvalidInput(format!("not a scan shard's state: {e}")))
    }

    fn add_line_too_long(&mut self, file: usize, line: u64, problem: Problem) {
        let tally = &mut self.files[file];
        tally.lines += 1;
        tally.invalid += 1;
        *tally.errors.entry(problem.code).or_default() += 1;
        self.problems.note(file, line, "error", problem.code, || problem.message.clone());
        if self.keep_records {
            let mut row = RecordRow::new(file, line, RowStatus::Invalid);
            row.line_problem = Some(problem);
            self.records.push(row);
        }
    }

    fn add_row(&mut self, mut row: RecordRow) {
        if let Some(sig) = row.signature.take() {
            match &mut self.index {
                Some(index) => _ = index.add(&sig),
                // The driver fetches the candidates' signatures from the shards in a second round.
                None => self.signatures.push(RecordSignature { minhash: Vec::new(), ..sig }),
            }
            self.places.push((row.file as u32, row.line));
            self.place_rows.push(self.records.len());
        }
        let tally = &mut self.files[row.file];
        tally.lines += 1;
        match row.status {
            RowStatus::Valid => tally.valid += 1,
            RowStatus::Invalid => tally.invalid += 1,
            RowStatus::Blank => tally.blank += 1,
            RowStatus::Skipped => tally.skipped += 1,
        }
        let errors = row.line_problem.iter().chain(row.audit.iter().flat_map(|a| &a.errors));
        let warnings = row.audit.iter().flat_map(|a| &a.warnings);
        let found = errors.map(|p| ("error", p)).chain(warnings.map(|p| ("warning", p)));
        for (severity, problem) in found {
            let counts = if severity == "error" { &mut tally.errors } else { &mut tally.warnings };
            *counts.entry(problem.code).or_default() += 1;
            self.problems.note(row.file, row.line, severity, problem.code, || problem.message.clone());
        }
        if let Some(audit) = row.audit.as_ref().filter(|_| row.status == RowStatus::Valid) {
            *self.formats.entry(audit.format.name()).or_default() += 1;
            self.tokens.push(audit.total_tokens);
            self.trainable.push(audit.trainable_tokens);
            self.messages.push(u64::from(audit.n_messages));
            self.labels.add(audit.label.as_deref());
            self.too_long += u64::from(audit.warnings.iter().any(|w| w.code == audit_codes::TOO_LONG));
            for (all, n) in self.other_tokens.iter_mut().zip(&row.other_tokens) {
                all.push(*n);
            }
        }
        if self.keep_records {
            self.records.push(row);
        }
    }

    /// Appends the state of the next shard, in input order: a shard of file `file` whose first
    /// line is line `lines_before + 1` of that file. The shard must have been made with the same
    /// options.
    pub fn append(&mut self, shard: ScanState, file: usize, lines_before: u64) -> Result<(), Error> {
        let mismatch = |what: &str| Err(Error::InvalidInput(format!("shard does not fit the run: {what}")));
        if file >= self.files.len() || shard.files.len() != 1 {
            return mismatch("file");
        }
        if shard.signatures.len() != shard.places.len()
            || shard.keep_records != self.keep_records
            || shard.other_tokens.len() != self.other_tokens.len()
            || (self.index.is_none() && !shard.places.is_empty())
        {
            return mismatch("options");
        }
        // Line 0 stands for the whole file and stays 0.
        let line_in_file = |line: u64| if line == 0 { 0 } else { line + lines_before };
        self.files[file].merge(&shard.files[0]);
        self.problems.append(shard.problems, |p| {
            p.file = file;
            p.line = line_in_file(p.line);
        });
        let first_row = self.records.len();
        self.records.extend(shard.records.into_iter().map(|mut row| {
            row.file = file;
            row.line = line_in_file(row.line);
            row
        }));
        self.tokens.merge(&shard.tokens);
        self.trainable.merge(&shard.trainable);
        self.messages.merge(&shard.messages);
        for (all, theirs) in self.other_tokens.iter_mut().zip(&shard.other_tokens) {
            all.extend_from_slice(theirs);
        }
        self.labels.merge(&shard.labels);
        self.too_long += shard.too_long;
        for (format, n) in &shard.formats {
            *self.formats.entry(format).or_default() += n;
        }
        if let Some(index) = &mut self.index {
            for sig in &shard.signatures {
                index.add(sig);
            }
        }
        self.places.extend(shard.places.iter().map(|&(_, line)| (file as u32, line_in_file(line))));
        self.place_rows.extend(shard.place_rows.iter().map(|&row| first_row + row));
        self.diversity.merge(&shard.diversity);
        Ok(())
    }

    /// Makes the report. `names` are the files' names; `resolve` clusters the duplicate index (with
    /// each signed record's file and line), reading the candidate records again where needed.
    pub fn finish(
        self,
        names: &[String],
        encodings: &[Encoding],
        options: &ScanOptions,
        resolve: impl FnOnce(DedupIndex, &[(u32, u64)]) -> Result<DedupResult, Error>,
    ) -> Result<ScanReport, Error> {
        let ScanState {
            mut files,
            mut problems,
            mut records,
            mut tokens,
            mut trainable,
            mut messages,
            other_tokens,
            labels,
            too_long,
            formats,
            places,
            place_rows,
            index,
            diversity,
            ..
        } = self;

        let mut duplicates = Value::Null;
        if let (Some(index), Some(config)) = (index, &options.dedup) {
            let result = resolve(index, &places)?;
            for (((file, line), outcome), &row) in places.iter().zip(&result.records).zip(&place_rows) {
                if let Some(first) = outcome.exact_dup_of {
                    let (first_file, first_line) = places[first as usize];
                    let tally = &mut files[*file as usize];
                    *tally.warnings.entry(audit_codes::DUPLICATE).or_default() += 1;
                    problems.note(*file as usize, *line, "warning", audit_codes::DUPLICATE, || {
                        format!("same text as {}:{first_line}", names[first_file as usize])
                    });
                }
                if options.keep_records {
                    records[row].dedup = Some(RowDedup {
                        exact_dup_of: outcome.exact_dup_of.map(|i| {
                            let (f, l) = places[i as usize];
                            (f as usize, l)
                        }),
                        cluster: outcome.cluster,
                        cluster_size: outcome.cluster_size,
                        is_representative: outcome.is_representative,
                    });
                }
            }
            problems.kept.sort_by_key(|p| (p.file, p.line));
            let sum = &result.summary;
            let curve: Vec<Value> =
                detection_table(config.bands, config.rows).into_iter().map(|(s, p)| json!([s, p])).collect();
            let diversity = diversity.report();
            duplicates = json!({
                "near_duplicates_searched": sum.near_searched,
                "records": sum.records, "exact_duplicates": sum.exact_duplicates,
                "near_dup_clusters": sum.near_dup_clusters, "records_in_clusters": sum.records_in_clusters,
                "removed": sum.removed, "kept": sum.kept, "unique_fraction": sum.unique_fraction,
                "candidates": sum.candidates, "pairs_compared": sum.pairs_compared, "pairs_joined": sum.pairs_joined,
                "config": {"ngram": config.ngram, "num_perm": config.num_perm, "bands": config.bands,
                           "rows": config.rows, "threshold": config.threshold, "keep": config.keep.name()},
                "detection_probability": curve,
                "diversity": diversity.iter().map(|n| json!({"n": n.n, "total": n.total, "distinct": n.distinct,
                                                             "ratio": n.ratio, "exact": n.exact})).collect::<Vec<_>>(),
                "clusters": largest_clusters(&places, &result.records, names),
            });
        }

        // File-level warnings.
        for (file, tally) in files.iter_mut().enumerate() {
            if tally.valid + tally.invalid > 0 && tally.valid < MIN_EXAMPLES && options.sample.is_none() {
                let code = audit_codes::TOO_FEW_EXAMPLES;
                *tally.warnings.entry(code).or_default() += 1;
                problems.note(file, 0, "warning", code, || {
                    format!("{} valid examples; fine-tuning needs at least {MIN_EXAMPLES}", tally.valid)
                });
            }
        }

        let total = files.iter().fold(FileTally::default(), |mut acc, f| {
            acc.merge(f);
            acc
        });

        let limit = options.audit.context_limit;
        let sampled_lines = total.lines - total.blank - total.skipped;
        let population = total.lines - total.blank;
        let cost_for = |encoding: &Encoding, per_record: &[u64]| -> Value {
            let billed_per_record: Vec<u64> =
                per_record.iter().map(|&t| limit.map_or(t, |l| t.min(l))).collect();
            let billed = billed_tokens_per_epoch(per_record.iter().copied(), limit.unwrap_or(u64::MAX));
            let mut cost = match options.sample {
                None => {
                    let epochs = options.epochs.unwrap_or_else(|| default_epochs(per_record.len() as u64));
                    let c = Cost::new(billed, epochs);
                    json!({"epochs": c.epochs, "billed_tokens_per_epoch": c.billed_tokens_per_epoch,
                       "charged_tokens": c.charged_tokens,
                       "usd": options.price_per_mtok.map(|p| c.usd(p)), "estimate": false})
                }
                Some(_) => {
                    // Sampled: invalid sampled lines count as 0 tokens; the population is every non-blank line.
                    let mut sample = billed_per_record.clone();
                    sample.resize(sampled_lines as usize, 0);
                    let est = estimate_total(&sample, population);
                    let est_valid = (population as f64 * per_record.len() as f64
                        / sampled_lines.max(1) as f64)
                        .round() as u64;
                    let epochs = options.epochs.unwrap_or_else(|| default_epochs(est_valid));
                    let price = options.price_per_mtok;
                    json!({"epochs": epochs, "estimate": true,
                       "billed_tokens_per_epoch": est.map(|e| e.value.round()),
                       "billed_tokens_per_epoch_95ci": est.map(|e| [e.low.round(), e.high.round()]),
                       "charged_tokens": est.map(|e| (e.value * epochs as f64).round()),
                       "charged_tokens_95ci": est.map(|e| [(e.low * epochs as f64).round(), (e.high * epochs as f64).round()]),
                       "usd": price.and_then(|p| est.map(|e| e.value * epochs as f64 / 1e6 * p)),
                       "usd_95ci": price.and_then(|p| est.map(|e| [e.low * epochs as f64 / 1e6 * p, e.high * epochs as f64 / 1e6 * p]))})
                }
            };
            cost["encoding"] = json!(encoding.name());
            cost["limit"] = json!(limit);
            cost["price_per_mtok"] = json!(options.price_per_mtok);
            cost["tokens"] = json!(per_record.iter().sum::<u64>());
            cost
        };

        let primary_tokens: Vec<u64> = tokens.values().iter().map(|&v| u64::from(v)).collect();
        let mut costs = vec![cost_for(&encodings[0], &primary_tokens)];
        for (encoding, per_record) in encodings[1..].iter().zip(&other_tokens) {
            costs.push(cost_for(encoding, per_record));
        }

        let pack_length = options.pack_length.or(limit.map(|l| l.min(u64::from(u32::MAX)) as u32));
        let packing = match pack_length {
            None => Value::Null,
            Some(length) => {
                let plain = pack_none(tokens.values(), length)?;
                let packed = pack_ffd(tokens.values(), length)?;
                let fig = |p: &crate::stats::Packing| {
                    json!({"sequences": p.sequences, "padding_waste_percent": p.padding_waste_percent(),
                                                      "truncated_examples": p.truncated_examples})
                };
                json!({"max_length": length, "unpacked": fig(&plain), "packed_ffd": fig(&packed)})
            }
        };

        let label_json = json!({
            "classification": labels.is_classification(),
            "classes": labels.classes().map(|c| c.into_iter().map(|(l, n)| json!([l, n])).collect::<Vec<_>>()),
            "imbalance_ratio": labels.imbalance_ratio(),
            "imbalanced": labels.is_imbalanced(),
            "labeled": labels.labeled(),
            "unlabeled": labels.unlabeled(),
        });

        let mut summary = total.json("total");
        let obj = summary.as_object_mut().expect("an object");
        obj.remove("name");
        obj.remove("compression");
        obj.remove("error");
        obj.insert(
            "files".into(),
            json!(files.iter().zip(names).map(|(f, name)| f.json(name)).collect::<Vec<_>>()),
        );
        obj.insert("formats".into(), json!(formats));
        obj.insert("encoding".into(), json!(encodings[0].name()));
        obj.insert("tokens".into(), distribution_json(tokens.summary()));
        obj.insert("trainable_tokens".into(), distribution_json(trainable.summary()));
        obj.insert("messages".into(), distribution_json(messages.summary()));
        obj.insert("too_long".into(), json!(too_long));
        obj.insert("labels".into(), label_json);
        obj.insert("cost".into(), costs[0].clone());
        obj.insert("costs".into(), json!(costs));
        obj.insert("packing".into(), packing);
        obj.insert("duplicates".into(), duplicates);
        obj.insert(
            "sample".into(),
            json!(options
                .sample
                .map(|(f, seed)| json!({"fraction": f, "seed": seed, "lines": sampled_lines}))),
        );
        Ok(ScanReport { summary, problems: problems.kept, records })
    }
}

/// How many of the largest near-duplicate clusters the summary lists, and how many lines of each.
const LISTED_CLUSTERS: usize = 20;
const LISTED_CLUSTER_LINES: usize = 10;

/// The largest clusters, biggest first: size and the first lines (file, line) of each.
fn largest_clusters(places: &[(u32, u64)], outcomes: &[RecordOutcome], names: &[String]) -> Value {
    // Each cluster has one representative, which carries the cluster's size.
    let mut largest: Vec<(u64, u64)> = outcomes
        .iter()
        .filter(|outcome| outcome.is_representative)
        .filter_map(|outcome| Some((outcome.cluster?, outcome.cluster_size)))
        .collect();
    largest.sort_unstable_by_key(|&(id, size)| (std::cmp::Reverse(size), id));
    largest.truncate(LISTED_CLUSTERS);
    let mut lines: BTreeMap<u64, Vec<Value>> = largest.iter().map(|&(id, _)| (id, Vec::new())).collect();
    for (i, outcome) in outcomes.iter().enumerate() {
        if let Some(listed) = outcome.cluster.and_then(|id| lines.get_mut(&id)) {
            if listed.len() < LISTED_CLUSTER_LINES {
                listed.push(json!([names[places[i].0 as usize], places[i].1]));
            }
        }
    }
    let listed: Vec<Value> = largest
        .iter()
        .map(|(id, size)| json!({"cluster": id, "size": size, "lines": lines.remove(id)}))
        .collect();
    json!(listed)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::reader::{line_ranges, ReadOptions};

    /// A file with every kind of line: chat records, exact and near copies (also of the other
    /// file's records), invalid lines, blank lines, records with errors and an over-long line.
    fn write_inputs(dir: &Path) -> (PathBuf, PathBuf) {
        let mut state = 7u64;
        let mut word = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "tau", "rho", "phi"]
                [(state >> 33) as usize % 10]
                .to_string()
                + &((state >> 40) % 50).to_string()
        };
        let mut texts: Vec<String> =
            (0..120).map(|_| (0..40).map(|_| word()).collect::<Vec<_>>().join(" ")).collect();
        let chat = |user: &str, answer: &str| {
            serde_json::json!({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})
                .to_string()
        };
        let mut plain = Vec::new();
        for i in 0..600 {
            let line = match i % 13 {
                0 => String::new(),
                1 => "{not json".to_string(),
                2 => chat(&texts[i % 7], "yes"), // exact copies
                3 => chat(&texts[(i / 13) % 40].replacen("alpha", "ALPHA!", 1), "no"), // near copies
                4 => r#"{"messages": [{"role": "user", "content": "no answer"}]}"#.to_string(),
                5 if i == 5 => format!(r#"{{"text": "{}"}}"#, "x".repeat(5000)),
                _ => {
                    let t = texts[i % texts.len()].clone();
                    texts.push(t.replace("beta", "b"));
                    chat(&t, if i % 2 == 0 { "yes" } else { "no" })
                }
            };
            writeln!(plain, "{line}").unwrap();
        }
        let plain_path = dir.join("shards.jsonl");
        std::fs::write(&plain_path, &plain).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for t in texts.iter().take(60) {
            writeln!(gz, "{}", chat(t, "yes")).unwrap();
        }
        let gz_path = dir.join("more.jsonl.gz");
        std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
        (plain_path, gz_path)
    }

    fn comparable(report: &ScanReport) -> (String, Vec<String>, Vec<String>) {
        let problems = report
            .problems
            .iter()
            .map(|p| format!("{}:{}:{}:{}:{}", p.file, p.line, p.severity, p.problem.code, p.problem.message))
            .collect();
        let records = report.records.iter().map(|r| format!("{r:?}")).collect();
        (report.summary.to_string(), problems, records)
    }

    #[test]
    fn problems_past_the_kept_ones_are_counted_and_the_kept_ones_have_their_messages() {
        let dir = std::env::temp_dir().join(format!("tokenlens-quiet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("warnings.jsonl");
        // Each record has two or three warnings: a special token, too many tokens, no system message.
        let mut lines = Vec::new();
        for i in 0..2_500 {
            let text = format!("record {i} ends with <|endoftext|>");
            let line = if i % 2 == 0 {
                serde_json::json!({ "text": text })
            } else {
                serde_json::json!({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]})
            };
            writeln!(lines, "{line}").unwrap();
        }
        std::fs::write(&path, &lines).unwrap();
        let run_options = RunOptions {
            threads: 2,
            read: ReadOptions { chunk_size: 4096, ..Default::default() },
            ..Default::default()
        };
        let scan_keeping = |keep_records: bool| {
            let options = ScanOptions {
                audit: AuditOptions { context_limit: Some(4), ..Default::default() },
                price_per_mtok: None,
                epochs: None,
                pack_length: None,
                sample: None,
                keep_records,
                dedup: None,
            };
            let encodings = [Encoding::load("cl100k_base").unwrap()];
            scan(&[Source::Path(path.clone())], &encodings, &options, &run_options).unwrap()
        };
        // Without the records table, workers stop writing the messages of the codes whose kept
        // problems are all in; the report is the same as with it.
        let (quiet, full) = (scan_keeping(false), scan_keeping(true));
        let (quiet_summary, quiet_problems, _) = comparable(&quiet);
        let (full_summary, full_problems, _) = comparable(&full);
        assert_eq!(quiet_summary, full_summary);
        let differ = quiet_problems.iter().zip(&full_problems).find(|(q, f)| q != f);
        assert_eq!((quiet_problems.len(), differ), (full_problems.len(), None));
        let warnings = &quiet.summary["warnings"];
        for code in [audit_codes::SPECIAL_TOKEN_TEXT, audit_codes::TOO_LONG, audit_codes::NO_SYSTEM_MESSAGE] {
            let kept: Vec<&Located> = quiet.problems.iter().filter(|p| p.problem.code == code).collect();
            assert_eq!(kept.len() as u64, MAX_REPORTED_PER_CODE, "{code}");
            assert!(kept.iter().all(|p| !p.problem.message.is_empty()), "{code}");
            assert!(warnings[code].as_u64().unwrap() > MAX_REPORTED_PER_CODE, "{code}: {warnings}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shards_merged_on_a_driver_give_the_local_report() {
        let dir = std::env::temp_dir().join(format!("tokenlens-shards-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (plain, gz) = write_inputs(&dir);
        let encodings = [Encoding::load("cl100k_base").unwrap(), Encoding::load("o200k_base").unwrap()];
        let run_options = RunOptions {
            threads: 2,
            read: ReadOptions { chunk_size: 4096, max_line_bytes: 2000 },
            ..Default::default()
        };
        let names = vec![plain.display().to_string(), gz.display().to_string()];
        for sample in [None, Some((0.6, 3))] {
            let options = ScanOptions {
                audit: AuditOptions { context_limit: Some(60), ..Default::default() },
                price_per_mtok: Some(3.0),
                epochs: None,
                pack_length: None,
                sample,
                keep_records: true,
                dedup: Some(DedupConfig::default()),
            };
            let sources = [Source::Path(plain.clone()), Source::Path(gz.clone())];
            let local = scan(&sources, &encodings, &options, &run_options).unwrap();
            let summary = &local.summary;
            assert!(summary["duplicates"]["exact_duplicates"].as_u64().unwrap() > 10, "{summary}");
            assert!(summary["duplicates"]["near_dup_clusters"].as_u64().unwrap() > 10, "{summary}");
            assert_eq!(summary["errors"]["line_too_long"], 1, "{summary}");

            for parts in [1, 3, 8] {
                let mut shards: Vec<(Source, ShardPlace)> = Vec::new();
                let mut driver = ScanState::for_driver(2, &encodings, &options).unwrap();
                let mut lines_before = 0;
                let ranges = line_ranges(&plain, parts).unwrap().unwrap();
                let plain_shards = ranges
                    .into_iter()
                    .map(|(start, end)| (Source::Range { path: plain.clone(), start, end }, 0));
                for (source, file) in plain_shards.chain([(Source::Path(gz.clone()), 1)]) {
                    if file == 1 {
                        lines_before = 0;
                    }
                    let state = scan_shard(&source, file, &encodings, &options, &run_options).unwrap();
                    let state = ScanState::from_bytes(&state.to_bytes()).unwrap();
                    let place = ShardPlace { file, lines_before, lines: state.lines() };
                    lines_before += place.lines;
                    driver.append(state, file, place.lines_before).unwrap();
                    shards.push((source, place));
                }
                let places: Vec<ShardPlace> = shards.iter().map(|(_, p)| *p).collect();
                let merged = driver
                    .finish(&names, &encodings, &options, |index, signed| {
                        resolve_sharded(index, signed, 2, &places, |requests| {
                            requests
                                .into_iter()
                                .map(|(shard, lines)| {
                                    shard_minhashes(&shards[shard].0, &options, &run_options, lines)
                                })
                                .collect()
                        })
                    })
                    .unwrap();
                assert_eq!(comparable(&merged), comparable(&local), "{parts} parts, sample {sample:?}");
            }
        }
    }
}
