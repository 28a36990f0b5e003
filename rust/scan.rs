//! `scan`: the one-pass audit of a fine-tuning dataset. Every line gets a verdict; records are
//! validated and counted exactly (see [`crate::audit`]); the summary gathers distributions, label
//! balance, packing and cost.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::audit::{audit_record, codes as audit_codes, AuditOptions, RecordAudit, MIN_EXAMPLES};
use crate::dedup::{
    detection_table, resolve, DedupConfig, DedupIndex, DedupOptions, Diversity, RecordOutcome,
    RecordSignature, SignWorker,
};
use crate::error::Error;
use crate::pipeline::{run, Event, Kernel, RunOptions};
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
#[derive(Default)]
struct ProblemList {
    kept: Vec<Located>,
    per_code: BTreeMap<&'static str, u64>,
}

impl ProblemList {
    fn note(&mut self, located: Located) {
        let seen = self.per_code.entry(located.problem.code).or_default();
        *seen += 1;
        if *seen <= MAX_REPORTED_PER_CODE {
            self.kept.push(located);
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
#[derive(Clone, Debug)]
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

/// Duplicate figures of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowDedup {
    /// File index and line of the first record with the same text, when this one is a copy.
    pub exact_dup_of: Option<(usize, u64)>,
    /// Near-duplicate cluster id (the number of its first record among the signed ones).
    pub cluster: Option<u64>,
    pub cluster_size: u64,
    pub is_representative: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowStatus {
    Valid,
    Invalid,
    Blank,
    /// Not in the sample.
    Skipped,
}

/// Where a problem is: a line, or the whole file (line 0).
#[derive(Clone, Debug)]
pub struct Located {
    pub file: usize,
    pub line: u64,
    pub severity: &'static str,
    pub problem: Problem,
}

struct ScanKernel<'a> {
    encodings: &'a [Encoding],
    options: &'a ScanOptions,
    dedup: Option<&'a DedupOptions>,
    diversity: &'a Mutex<Diversity>,
}

struct ScanWorker<'a> {
    counters: Vec<Counter>,
    signer: Option<SignWorker<'a>>,
}

impl<'a> Kernel for ScanKernel<'a> {
    type Worker = ScanWorker<'a>;
    type Output = Vec<RecordRow>;

    fn worker(&self) -> ScanWorker<'a> {
        ScanWorker {
            counters: self.encodings.iter().map(|e| e.counter(false)).collect(),
            signer: self.dedup.map(|d| SignWorker::new(&d.config, self.diversity)),
        }
    }

    fn process(&self, worker: &mut ScanWorker<'a>, chunk: &LinesChunk) -> Vec<RecordRow> {
        let counters = &mut worker.counters;
        let mut rows = Vec::new();
        chunk.for_each_line(|line, _, bytes| {
            let mut row = RecordRow {
                file: chunk.file,
                line,
                status: RowStatus::Valid,
                line_problem: None,
                audit: None,
                other_tokens: vec![],
                signature: None,
                dedup: None,
            };
            let parsed = parse_line(line, bytes);
            if !matches!(parsed, Parsed::Blank) && !in_sample(self.options.sample, chunk.file, line) {
                row.status = RowStatus::Skipped;
                rows.push(row);
                return;
            }
            match parsed {
                Parsed::Blank => row.status = RowStatus::Blank,
                Parsed::Invalid(problem) => {
                    row.status = RowStatus::Invalid;
                    row.line_problem = Some(problem);
                }
                Parsed::Record(record) => {
                    let audit = audit_record(&record, &self.options.audit, &mut counters[0]);
                    let no_limit = AuditOptions { context_limit: None, ..self.options.audit.clone() };
                    row.other_tokens = counters[1..]
                        .iter_mut()
                        .map(|c| audit_record(&record, &no_limit, c).total_tokens)
                        .collect();
                    row.status = if audit.is_valid() { RowStatus::Valid } else { RowStatus::Invalid };
                    if let (RowStatus::Valid, Some(signer), Some(d)) =
                        (&row.status, &mut worker.signer, self.dedup)
                    {
                        row.signature = signer.sign_record(&record, &d.text).ok();
                    }
                    row.audit = Some(audit);
                }
            }
            rows.push(row);
        });
        rows
    }
}

/// Deterministic sampling: the same lines whatever the thread count or chunking.
fn in_sample(sample: Option<(f64, u64)>, file: usize, line: u64) -> bool {
    let Some((fraction, seed)) = sample else { return true };
    // SplitMix64 of (seed, file, line) mapped to [0, 1).
    let mut x =
        seed ^ (file as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ line.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    ((x >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

#[derive(Clone, Debug, Default)]
struct FileTally {
    lines: u64,
    valid: u64,
    invalid: u64,
    blank: u64,
    skipped: u64,
    errors: BTreeMap<&'static str, u64>,
    warnings: BTreeMap<&'static str, u64>,
    compression: Option<&'static str>,
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

/// Runs the audit over `sources`; `encodings[0]` is the one validated and detailed, the others are
/// counted side by side.
pub fn scan(
    sources: &[Source],
    encodings: &[Encoding],
    options: &ScanOptions,
    run_options: &RunOptions,
) -> Result<ScanReport, Error> {
    if encodings.is_empty() {
        return Err(Error::InvalidInput("at least one encoding is needed".into()));
    }
    if let Some((fraction, _)) = options.sample {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::InvalidInput(format!("sample fraction must be in (0, 1], not {fraction}")));
        }
    }
    let dedup_options = options.dedup.clone().map(|config| {
        let text = if options.audit.text_field == ["text"] {
            TextSpec::Auto
        } else {
            TextSpec::Field(options.audit.text_field.clone())
        };
        DedupOptions { text, config }
    });
    if let Some(d) = &dedup_options {
        d.config.validate()?;
    }
    let diversity = Mutex::new(Diversity::default());
    let kernel = ScanKernel { encodings, options, dedup: dedup_options.as_ref(), diversity: &diversity };
    let mut index = dedup_options.as_ref().map(|d| DedupIndex::new(&d.config));
    // Each signed record's file and line, and its row in `records` (when rows are kept).
    let mut places: Vec<(u32, u64)> = Vec::new();
    let mut place_rows: Vec<usize> = Vec::new();
    let mut files = vec![FileTally::default(); sources.len()];
    let mut problems = ProblemList::default();
    let mut records = Vec::new();
    let mut tokens = Distribution::new();
    let mut trainable = Distribution::new();
    let mut messages = Distribution::new();
    let mut other_tokens: Vec<Vec<u64>> = vec![Vec::new(); encodings.len() - 1];
    let mut labels = LabelBalance::new();
    let mut too_long = 0u64;
    let mut formats: BTreeMap<&'static str, u64> = BTreeMap::new();

    run(sources, run_options, &kernel, |event| {
        match event {
            Event::FileStart { file, compression } => files[file].compression = Some(compression.name()),
            Event::FileEnd { file, error, .. } => files[file].error = error,
            Event::LineTooLong { file, line, len, .. } => {
                let problem = Problem::new(
                    codes::LINE_TOO_LONG,
                    format!(
                        "line is {len} bytes, over the limit of {} (--max-line-bytes)",
                        run_options.read.max_line_bytes
                    ),
                );
                let tally = &mut files[file];
                tally.lines += 1;
                tally.invalid += 1;
                *tally.errors.entry(problem.code).or_default() += 1;
                problems.note(Located { file, line, severity: "error", problem: problem.clone() });
                if options.keep_records {
                    let line_problem = Some(problem);
                    let status = RowStatus::Invalid;
                    records.push(RecordRow {
                        file,
                        line,
                        status,
                        line_problem,
                        audit: None,
                        other_tokens: vec![],
                        signature: None,
                        dedup: None,
                    });
                }
            }
            Event::Lines { output, .. } => {
                for mut row in output {
                    if let (Some(index), Some(sig)) = (&mut index, row.signature.take()) {
                        index.add(&sig);
                        places.push((row.file as u32, row.line));
                        place_rows.push(records.len());
                    }
                    let tally = &mut files[row.file];
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
                        let counts =
                            if severity == "error" { &mut tally.errors } else { &mut tally.warnings };
                        *counts.entry(problem.code).or_default() += 1;
                        problems.note(Located {
                            file: row.file,
                            line: row.line,
                            severity,
                            problem: problem.clone(),
                        });
                    }
                    if let Some(audit) = &row.audit {
                        if row.status == RowStatus::Valid {
                            *formats.entry(audit.format.name()).or_default() += 1;
                            tokens.push(audit.total_tokens);
                            trainable.push(audit.trainable_tokens);
                            messages.push(u64::from(audit.n_messages));
                            labels.add(audit.label.as_deref());
                            too_long +=
                                u64::from(audit.warnings.iter().any(|w| w.code == audit_codes::TOO_LONG));
                            for (all, n) in other_tokens.iter_mut().zip(&row.other_tokens) {
                                all.push(*n);
                            }
                        }
                    }
                    if options.keep_records {
                        records.push(row);
                    }
                }
            }
        }
        Ok(())
    })?;

    let mut duplicates = Value::Null;
    if let (Some(index), Some(d)) = (index, &dedup_options) {
        let result = resolve(sources, d, run_options, index, &places)?;
        for (((file, line), outcome), &row) in places.iter().zip(&result.records).zip(&place_rows) {
            if let Some(first) = outcome.exact_dup_of {
                let (first_file, first_line) = places[first as usize];
                let tally = &mut files[*file as usize];
                *tally.warnings.entry(audit_codes::DUPLICATE).or_default() += 1;
                let message = format!("same text as {}:{first_line}", sources[first_file as usize].name());
                let problem = Problem::new(audit_codes::DUPLICATE, message);
                problems.note(Located { file: *file as usize, line: *line, severity: "warning", problem });
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
            detection_table(d.config.bands, d.config.rows).into_iter().map(|(s, p)| json!([s, p])).collect();
        let diversity = diversity.into_inner().unwrap_or_else(|e| e.into_inner()).report();
        duplicates = json!({
            "near_duplicates_searched": !sources.contains(&Source::Stdin),
            "records": sum.records, "exact_duplicates": sum.exact_duplicates,
            "near_dup_clusters": sum.near_dup_clusters, "records_in_clusters": sum.records_in_clusters,
            "removed": sum.removed, "kept": sum.kept, "unique_fraction": sum.unique_fraction,
            "candidates": sum.candidates, "pairs_compared": sum.pairs_compared, "pairs_joined": sum.pairs_joined,
            "config": {"ngram": d.config.ngram, "num_perm": d.config.num_perm, "bands": d.config.bands,
                       "rows": d.config.rows, "threshold": d.config.threshold, "keep": d.config.keep.name()},
            "detection_probability": curve,
            "diversity": diversity.iter().map(|n| json!({"n": n.n, "total": n.total, "distinct": n.distinct,
                                                         "ratio": n.ratio, "exact": n.exact})).collect::<Vec<_>>(),
            "clusters": largest_clusters(&places, &result.records, sources),
        });
    }

    // File-level warnings.
    for (file, tally) in files.iter_mut().enumerate() {
        if tally.valid + tally.invalid > 0 && tally.valid < MIN_EXAMPLES && options.sample.is_none() {
            let problem = Problem::new(
                audit_codes::TOO_FEW_EXAMPLES,
                format!("{} valid examples; fine-tuning needs at least {MIN_EXAMPLES}", tally.valid),
            );
            *tally.warnings.entry(problem.code).or_default() += 1;
            problems.note(Located { file, line: 0, severity: "warning", problem });
        }
    }

    let total = files.iter().fold(FileTally::default(), |mut acc, f| {
        acc.lines += f.lines;
        acc.valid += f.valid;
        acc.invalid += f.invalid;
        acc.blank += f.blank;
        acc.skipped += f.skipped;
        for (c, n) in &f.errors {
            *acc.errors.entry(c).or_default() += n;
        }
        for (c, n) in &f.warnings {
            *acc.warnings.entry(c).or_default() += n;
        }
        acc
    });

    let limit = options.audit.context_limit;
    let sampled_lines = total.lines - total.blank - total.skipped;
    let population = total.lines - total.blank;
    let cost_for = |encoding: &Encoding, per_record: &[u64]| -> Value {
        let billed_per_record: Vec<u64> = per_record.iter().map(|&t| limit.map_or(t, |l| t.min(l))).collect();
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
                let est_valid = (population as f64 * per_record.len() as f64 / sampled_lines.max(1) as f64)
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
        json!(files.iter().zip(sources).map(|(f, s)| f.json(&s.name())).collect::<Vec<_>>()),
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
        json!(options.sample.map(|(f, seed)| json!({"fraction": f, "seed": seed, "lines": sampled_lines}))),
    );
    Ok(ScanReport { summary, problems: problems.kept, records })
}

/// How many of the largest near-duplicate clusters the summary lists, and how many lines of each.
const LISTED_CLUSTERS: usize = 20;
const LISTED_CLUSTER_LINES: usize = 10;

/// The largest clusters, biggest first: size and the first lines (file, line) of each.
fn largest_clusters(places: &[(u32, u64)], outcomes: &[RecordOutcome], sources: &[Source]) -> Value {
    let mut members: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, outcome) in outcomes.iter().enumerate() {
        if let Some(cluster) = outcome.cluster {
            members.entry(cluster).or_default().push(i);
        }
    }
    let mut clusters: Vec<(u64, Vec<usize>)> = members.into_iter().collect();
    clusters.sort_by_key(|(id, m)| (std::cmp::Reverse(m.len()), *id));
    let listed: Vec<Value> = clusters
        .iter()
        .take(LISTED_CLUSTERS)
        .map(|(id, m)| {
            let lines: Vec<Value> = m
                .iter()
                .take(LISTED_CLUSTER_LINES)
                .map(|&i| json!([sources[places[i].0 as usize].name(), places[i].1]))
                .collect();
            json!({"cluster": id, "size": m.len(), "lines": lines})
        })
        .collect();
    json!(listed)
}
