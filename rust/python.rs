//! The Python bindings (`tokenlens._core`): the only place that knows about Python. Heavy work
//! runs with the GIL released; engine errors become the exception tree declared here.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyOSError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::audit::{parse_path, AuditOptions, Format};
use crate::count::{count, CountOptions, CountReport, LineStatus, Totals};
use crate::dedup::{DedupConfig, Keep};
use crate::error::Error;
use crate::output::AtomicFile;
use crate::pipeline::{default_threads, CheckClock, RunOptions};
use crate::reader::{Progress as EngineProgress, ReadOptions, Source};
use crate::record::TextSpec;
use crate::scan::{
    resolve_sharded, scan, scan_shard as scan_shard_state, RowStatus, ScanOptions, ScanReport, ScanState,
    ShardMinhashes, ShardPlace,
};
use crate::tokenizer::{Encoding as EngineEncoding, BUILTIN_ENCODINGS};

create_exception!(_core, TokenlensError, PyException, "Base class of tokenlens errors.");
create_exception!(_core, InvalidInputError, TokenlensError, "An option or input that cannot be used.");
create_exception!(_core, TokenizerError, TokenlensError, "A tokenizer could not be loaded or failed.");

fn to_py_err(error: Error) -> PyErr {
    match error {
        Error::NotFound(path) => {
            PyFileNotFoundError::new_err((2, "No such file", path.display().to_string()))
        }
        Error::Io { path, source } => PyOSError::new_err(format!("{path}: {source}")),
        Error::Tokenizer(msg) => TokenizerError::new_err(msg),
        Error::InvalidInput(msg) => InvalidInputError::new_err(msg),
        Error::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err("interrupted"),
    }
}

/// Runs `work` without the GIL, checking for Ctrl-C about every 100 ms; a pending Python signal
/// (KeyboardInterrupt) stops the work and is re-raised.
fn run_interruptible<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(&(dyn Fn() -> Result<(), Error> + Sync)) -> Result<T, Error> + Send,
) -> PyResult<T> {
    let pending: Mutex<Option<PyErr>> = Mutex::new(None);
    let check = || {
        Python::with_gil(|py| py.check_signals()).map_err(|err| {
            *pending.lock().expect("not poisoned") = Some(err);
            Error::Interrupted
        })
    };
    let result = py.allow_threads(|| work(&check));
    match (result, pending.into_inner().expect("not poisoned")) {
        (_, Some(err)) => Err(err),
        (result, None) => result.map_err(to_py_err),
    }
}

/// A tokenizer: a built-in OpenAI encoding or a Hugging Face tokenizer.json.
#[pyclass(module = "tokenlens._core", frozen)]
struct Encoding {
    inner: EngineEncoding,
}

#[pymethods]
impl Encoding {
    #[new]
    fn new(py: Python<'_>, spec: &str) -> PyResult<Self> {
        let inner = py.allow_threads(|| EngineEncoding::load(spec)).map_err(to_py_err)?;
        Ok(Encoding { inner })
    }

    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    #[pyo3(signature = (text, special_tokens = false))]
    fn count(&self, text: &str, special_tokens: bool) -> PyResult<u64> {
        self.inner.counter(special_tokens).count(text).map_err(to_py_err)
    }

    #[pyo3(signature = (texts, special_tokens = false, threads = None))]
    fn count_batch(
        &self,
        py: Python<'_>,
        texts: Vec<Bound<'_, PyString>>,
        special_tokens: bool,
        threads: Option<usize>,
    ) -> PyResult<Vec<u64>> {
        // The UTF-8 that Python keeps with each string, not a copy: the references in `texts` keep
        // the strings alive while the GIL is released.
        let utf8: Vec<&str> = texts.iter().map(|text| text.to_str()).collect::<PyResult<_>>()?;
        let threads = threads.unwrap_or_else(default_threads).clamp(1, utf8.len().max(1));
        let mut counts = vec![0; utf8.len()];
        run_interruptible(py, |check| {
            // Blocks of texts go to whichever thread is free, so that the threads finish together
            // however the texts' lengths vary along the list.
            const BLOCK: usize = 256;
            let blocks = Mutex::new(utf8.chunks(BLOCK).zip(counts.chunks_mut(BLOCK)));
            // Set when a thread fails or the caller is interrupted: the others stop at their next text.
            let stop = AtomicBool::new(false);
            let work = |watch_interrupts: bool| -> Result<(), Error> {
                let mut counter = self.inner.counter(special_tokens);
                let mut clock = CheckClock::start();
                // Reading the clock costs about as much as counting a short text, so it is read once
                // per 64 KB of text or so (a text weighing at least 64 bytes).
                let mut since_clock = 0;
                loop {
                    // Taken in a statement of its own, so the lock is let go before counting.
                    let block = blocks.lock().expect("not poisoned").next();
                    let Some((texts, counts)) = block else { return Ok(()) };
                    for (text, count) in texts.iter().zip(counts) {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        since_clock += text.len().max(64);
                        if watch_interrupts && since_clock >= 1 << 16 {
                            since_clock = 0;
                            if clock.due() {
                                check().inspect_err(|_| stop.store(true, Ordering::Relaxed))?;
                            }
                        }
                        *count = counter.count(text).inspect_err(|_| stop.store(true, Ordering::Relaxed))?;
                    }
                }
            };
            // The calling thread counts too, and is the one that watches for Ctrl-C.
            std::thread::scope(|scope| {
                let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(|| work(false))).collect();
                let caller = work(true);
                helpers.into_iter().fold(caller, |result, helper| {
                    result.and(helper.join().expect("counting thread panicked"))
                })
            })
        })?;
        Ok(counts)
    }

    #[pyo3(signature = (text, special_tokens = false))]
    fn encode(&self, py: Python<'_>, text: &str, special_tokens: bool) -> PyResult<Vec<u32>> {
        py.allow_threads(|| self.inner.encode(text, special_tokens)).map_err(to_py_err)
    }

    fn decode_bytes<'py>(&self, py: Python<'py>, ids: Vec<u32>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.inner.decode_bytes(&ids).map_err(to_py_err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The vocabulary of a built-in encoding as {token bytes: rank}; None for tokenizer.json.
    fn tiktoken_ranks<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(tiktoken) = self.inner.tiktoken() else { return Ok(None) };
        let dict = PyDict::new(py);
        for (bytes, rank) in tiktoken.ranks.iter() {
            dict.set_item(PyBytes::new(py, bytes), rank)?;
        }
        Ok(Some(dict))
    }

    /// tiktoken's pre-tokenizer pattern of a built-in encoding; None for tokenizer.json.
    #[getter]
    fn pattern(&self) -> Option<&'static str> {
        self.inner.tiktoken().map(|t| t.pretokenizer.kind().reference_pattern())
    }

    /// What runs the encoding: "tiktoken" (a built-in encoding), "native-bpe" (a byte-level BPE
    /// tokenizer.json on tokenlens's own path) or "tokenizers" (the `tokenizers` crate).
    #[getter]
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    /// Why a tokenizer.json is not on the native path; None when it is, and for built-in encodings.
    #[getter]
    fn fallback_reason(&self) -> Option<&str> {
        self.inner.fallback_reason()
    }

    /// Special tokens of a built-in encoding as {text: id}; empty for tokenizer.json.
    #[getter]
    fn special_tokens<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (text, rank) in self.inner.tiktoken().map_or(&[][..], |t| &t.special_tokens[..]) {
            dict.set_item(text, rank)?;
        }
        Ok(dict)
    }

    fn __repr__(&self) -> String {
        format!("Encoding({:?})", self.inner.name())
    }
}

/// Live counters of a running job, safe to read from another thread.
#[pyclass(module = "tokenlens._core", frozen)]
struct Progress {
    inner: Arc<EngineProgress>,
}

#[pymethods]
impl Progress {
    #[new]
    fn new() -> Self {
        Progress { inner: Arc::default() }
    }

    #[getter]
    fn bytes_read(&self) -> u64 {
        self.inner.bytes_read.load(Ordering::Relaxed)
    }

    #[getter]
    fn bytes_total(&self) -> u64 {
        self.inner.bytes_total.load(Ordering::Relaxed)
    }

    #[getter]
    fn lines_done(&self) -> u64 {
        self.inner.lines_done.load(Ordering::Relaxed)
    }

    /// Counts work done elsewhere (by the shards of a distributed run).
    #[pyo3(signature = (*, bytes_read = 0, lines_done = 0, bytes_total = 0))]
    fn add(&self, bytes_read: u64, lines_done: u64, bytes_total: u64) {
        use Ordering::Relaxed;
        self.inner.bytes_read.fetch_add(bytes_read, Relaxed);
        self.inner.lines_done.fetch_add(lines_done, Relaxed);
        self.inner.bytes_total.fetch_add(bytes_total, Relaxed);
    }
}

/// How a job runs, as the Python functions pass it.
struct RunSettings<'py> {
    threads: Option<usize>,
    max_line_bytes: u64,
    chunk_size: Option<usize>,
    progress: Option<&'py Progress>,
}

impl RunSettings<'_> {
    fn validate(&self) -> PyResult<()> {
        if self.threads == Some(0) || self.chunk_size == Some(0) || self.max_line_bytes == 0 {
            return Err(InvalidInputError::new_err(
                "threads, chunk_size and max_line_bytes must be at least 1",
            ));
        }
        Ok(())
    }

    fn options<'a>(&self, check: &'a (dyn Fn() -> Result<(), Error> + Sync)) -> RunOptions<'a> {
        let defaults = ReadOptions::default();
        RunOptions {
            threads: self.threads.unwrap_or_else(default_threads),
            read: ReadOptions {
                max_line_bytes: self.max_line_bytes,
                chunk_size: self.chunk_size.unwrap_or(defaults.chunk_size),
            },
            progress: self.progress.map_or_else(Arc::default, |p| p.inner.clone()),
            check_interrupt: Some(check),
        }
    }
}

fn totals_dict<'py>(py: Python<'py>, t: &Totals) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("lines", t.lines)?;
    d.set_item("records", t.records)?;
    d.set_item("blank", t.blank)?;
    d.set_item("invalid", t.invalid)?;
    d.set_item("tokens", t.tokens)?;
    d.set_item("text_bytes", t.text_bytes)?;
    d.set_item("input_bytes", t.input_bytes)?;
    let codes = PyDict::new(py);
    for (code, n) in &t.problems_by_code {
        codes.set_item(code, n)?;
    }
    d.set_item("problems_by_code", codes)?;
    Ok(d)
}

fn count_report_dict<'py>(py: Python<'py>, report: &CountReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("encoding", &report.encoding)?;
    let files = PyList::empty(py);
    for f in &report.files {
        let fd = totals_dict(py, &f.totals)?;
        fd.set_item("name", &f.name)?;
        fd.set_item("compression", f.compression)?;
        fd.set_item("error", &f.error)?;
        files.append(fd)?;
    }
    d.set_item("files", files)?;
    d.set_item("total", totals_dict(py, &report.total)?)?;
    let problems: Vec<_> =
        report.problems.iter().map(|p| (p.file, p.line, p.problem.code, &p.problem.message)).collect();
    d.set_item("problems", problems)?;
    let lines = &report.lines;
    let mut csv = Csv::new("file,line,offset,tokens,text_bytes,status,error", lines.len());
    for l in lines {
        csv.number(Some(l.file as u64));
        csv.number(Some(l.line));
        csv.number(Some(l.offset));
        csv.number(matches!(l.status, LineStatus::Counted).then_some(l.tokens));
        csv.number(Some(l.text_bytes));
        let (status, error) = match &l.status {
            LineStatus::Counted => ("ok", None),
            LineStatus::Blank => ("blank", None),
            LineStatus::Invalid(p) => ("invalid", Some(p.code)),
        };
        csv.text(Some(status));
        csv.text(error);
        csv.end_row();
    }
    d.set_item("lines", csv.into_py(py))?;
    Ok(d)
}

/// Counts tokens in JSONL files; returns totals per file and in total, problem lines, and (with
/// `keep_lines`) one row per line as CSV (see [`Csv`]).
#[pyfunction]
#[pyo3(signature = (paths, encoding, field = None, special_tokens = false, threads = None, keep_lines = true, max_line_bytes = 256 << 20, progress = None, chunk_size = None))]
#[allow(clippy::too_many_arguments)]
fn count_files<'py>(
    py: Python<'py>,
    paths: Vec<String>,
    encoding: &Encoding,
    field: Option<&str>,
    special_tokens: bool,
    threads: Option<usize>,
    keep_lines: bool,
    max_line_bytes: u64,
    progress: Option<&Progress>,
    chunk_size: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let settings = RunSettings { threads, max_line_bytes, chunk_size, progress };
    settings.validate()?;
    let sources: Vec<Source> = paths.iter().map(|p| Source::from_arg(p)).collect();
    let options = CountOptions { text: TextSpec::parse(field), special_tokens, keep_lines };
    let report =
        run_interruptible(py, |check| count(&sources, &encoding.inner, &options, &settings.options(check)))?;
    count_report_dict(py, &report)
}

/// A table for Python as CSV with a header, which polars reads natively: millions of rows as Python
/// objects would take seconds and gigabytes. Fields are written left to right, each with its comma;
/// `None` is an empty field (null), and an empty string is `""`.
struct Csv(Vec<u8>);

impl Csv {
    fn new(header: &str, rows: usize) -> Csv {
        let mut csv = Vec::with_capacity(header.len() + 1 + 48 * rows);
        csv.extend_from_slice(header.as_bytes());
        csv.push(b'\n');
        Csv(csv)
    }

    fn number(&mut self, value: Option<u64>) {
        if let Some(v) = value {
            // Writing into a Vec cannot fail.
            write!(self.0, "{v}").expect("writes to memory");
        }
        self.0.push(b',');
    }

    fn boolean(&mut self, value: Option<bool>) {
        self.text(value.map(|b| if b { "true" } else { "false" }));
    }

    /// Quoted when empty or when it holds a comma, a quote or a line break.
    fn text(&mut self, text: Option<&str>) {
        if let Some(text) = text {
            if text.is_empty() || text.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
                self.0.push(b'"');
                self.0.extend_from_slice(text.replace('"', "\"\"").as_bytes());
                self.0.push(b'"');
            } else {
                self.0.extend_from_slice(text.as_bytes());
            }
        }
        self.0.push(b',');
    }

    /// Ends a row: its last comma becomes the line break.
    fn end_row(&mut self) {
        if let Some(last) = self.0.last_mut() {
            *last = b'\n';
        }
    }

    fn into_py(self, py: Python<'_>) -> Bound<'_, PyBytes> {
        PyBytes::new(py, &self.0)
    }
}

/// The records table of a scan (file and exact_dup_of_file as indices, a row's problem codes joined by
/// commas).
fn records_csv<'py>(py: Python<'py>, report: &ScanReport) -> Bound<'py, PyBytes> {
    let rows = &report.records;
    let mut csv = Csv::new(
        "file,line,status,format,errors,warnings,n_messages,tokens,trainable_tokens,content_tokens,\
         prompt_tokens,completion_tokens,label,exact_dup_of_file,exact_dup_of,cluster,cluster_size,\
         is_representative",
        rows.len(),
    );
    let codes = |list: &[crate::record::Problem]| list.iter().map(|p| p.code).collect::<Vec<_>>().join(",");
    for r in rows {
        let audit = r.audit.as_ref();
        let dedup = r.dedup.as_ref();
        csv.number(Some(r.file as u64));
        csv.number(Some(r.line));
        csv.text(Some(match r.status {
            RowStatus::Valid => "valid",
            RowStatus::Invalid => "invalid",
            RowStatus::Blank => "blank",
            RowStatus::Skipped => "not_sampled",
        }));
        csv.text(audit.map(|a| a.format.name()));
        let errors = match (&r.line_problem, audit) {
            (Some(p), _) => p.code.to_string(),
            (None, Some(a)) => codes(&a.errors),
            (None, None) => String::new(),
        };
        csv.text(Some(&errors));
        csv.text(Some(&audit.map_or_else(String::new, |a| codes(&a.warnings))));
        csv.number(audit.map(|a| u64::from(a.n_messages)));
        csv.number(audit.map(|a| a.total_tokens));
        csv.number(audit.map(|a| a.trainable_tokens));
        csv.number(audit.map(|a| a.content_tokens));
        csv.number(audit.map(|a| a.prompt_tokens));
        csv.number(audit.map(|a| a.completion_tokens));
        csv.text(audit.and_then(|a| a.label.as_deref()));
        let original = dedup.and_then(|d| d.exact_dup_of);
        csv.number(original.map(|x| x.0 as u64));
        csv.number(original.map(|x| x.1));
        csv.number(dedup.and_then(|d| d.cluster));
        csv.number(dedup.map(|d| d.cluster_size));
        csv.boolean(dedup.map(|d| d.is_representative));
        csv.end_row();
    }
    csv.into_py(py)
}

/// A problem as Python sees it: (file index, line, severity, code, message).
type ProblemTuple = (usize, u64, &'static str, &'static str, String);

/// The options of a scan (everything but how to run it), shared by the local and distributed engines.
#[pyclass(module = "tokenlens._core", frozen)]
struct ScanConfig {
    options: ScanOptions,
}

#[pymethods]
impl ScanConfig {
    #[new]
    #[pyo3(signature = (*, format = None, text_field = "text", label_field = None, context_limit = None, price_per_mtok = None, epochs = None, pack_length = None, sample = None, seed = 0, keep_records = false, dedup = true, ngram = 5, num_perm = 112, bands = 14, rows = 8, threshold = 0.8, keep = "first"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        format: Option<&str>,
        text_field: &str,
        label_field: Option<&str>,
        context_limit: Option<u64>,
        price_per_mtok: Option<f64>,
        epochs: Option<u64>,
        pack_length: Option<u32>,
        sample: Option<f64>,
        seed: u64,
        keep_records: bool,
        dedup: bool,
        ngram: usize,
        num_perm: usize,
        bands: usize,
        rows: usize,
        threshold: f64,
        keep: &str,
    ) -> PyResult<Self> {
        let format = match format {
            None | Some("auto") => None,
            Some(name) => Some(
                Format::parse(name)
                    .ok_or_else(|| InvalidInputError::new_err(format!("unknown format {name:?}")))?,
            ),
        };
        let dedup = match dedup {
            false => None,
            true => {
                let keep = Keep::parse(keep).map_err(to_py_err)?;
                let config =
                    DedupConfig { ngram, num_perm, bands, rows, threshold, keep, ..Default::default() };
                config.validate().map_err(to_py_err)?;
                Some(config)
            }
        };
        let options = ScanOptions {
            audit: AuditOptions {
                format,
                text_field: parse_path(text_field),
                context_limit,
                label_field: label_field.map(parse_path),
            },
            price_per_mtok,
            epochs,
            pack_length,
            sample: sample.map(|f| (f, seed)),
            keep_records,
            dedup,
        };
        Ok(ScanConfig { options })
    }
}

/// What Python gets of a scan: (summary as JSON text, problems, records table as CSV).
type ScanResult<'py> = (String, Vec<ProblemTuple>, Bound<'py, PyBytes>);

fn scan_result<'py>(py: Python<'py>, report: &ScanReport) -> PyResult<ScanResult<'py>> {
    let problems = report
        .problems
        .iter()
        .map(|p| (p.file, p.line, p.severity, p.problem.code, p.problem.message.clone()))
        .collect();
    Ok((report.summary.to_string(), problems, records_csv(py, report)))
}

fn encodings_of(encodings: &[PyRef<'_, Encoding>]) -> Vec<EngineEncoding> {
    encodings.iter().map(|e| e.inner.clone()).collect()
}

/// The one-pass audit.
#[pyfunction]
#[pyo3(signature = (paths, encodings, config, *, threads = None, max_line_bytes = 256 << 20, progress = None, chunk_size = None))]
#[allow(clippy::too_many_arguments)]
fn scan_files<'py>(
    py: Python<'py>,
    paths: Vec<String>,
    encodings: Vec<PyRef<'py, Encoding>>,
    config: &ScanConfig,
    threads: Option<usize>,
    max_line_bytes: u64,
    progress: Option<&Progress>,
    chunk_size: Option<usize>,
) -> PyResult<ScanResult<'py>> {
    let sources: Vec<Source> = paths.iter().map(|p| Source::from_arg(p)).collect();
    let encodings = encodings_of(&encodings);
    let settings = RunSettings { threads, max_line_bytes, chunk_size, progress };
    settings.validate()?;
    let report =
        run_interruptible(py, |check| scan(&sources, &encodings, &config.options, &settings.options(check)))?;
    scan_result(py, &report)
}

/// The source of a shard: a whole file, bytes `start..end` of a plain file, or lines in memory.
fn shard_source(path: &str, byte_range: Option<(u64, u64)>, data: Option<&[u8]>) -> PyResult<Source> {
    Ok(match (byte_range, data) {
        (None, None) => Source::from_arg(path),
        (Some((start, end)), None) => Source::Range { path: path.into(), start, end },
        (None, Some(data)) => Source::Memory { name: path.to_string(), data: data.into() },
        (Some(_), Some(_)) => {
            return Err(InvalidInputError::new_err("a shard has a byte range or data, not both"))
        }
    })
}

/// Scans one shard of a distributed run (file number `file` of the run, or a byte range of it, or
/// lines given as `data`). Returns (lines read, the serialized state for `scan_merge`).
#[pyfunction]
#[pyo3(signature = (path, file, encodings, config, *, byte_range = None, data = None, threads = None, max_line_bytes = 256 << 20, chunk_size = None))]
#[allow(clippy::too_many_arguments)]
fn scan_shard<'py>(
    py: Python<'py>,
    path: &str,
    file: usize,
    encodings: Vec<PyRef<'py, Encoding>>,
    config: &ScanConfig,
    byte_range: Option<(u64, u64)>,
    data: Option<&[u8]>,
    threads: Option<usize>,
    max_line_bytes: u64,
    chunk_size: Option<usize>,
) -> PyResult<(u64, Bound<'py, PyBytes>)> {
    let source = shard_source(path, byte_range, data)?;
    let encodings = encodings_of(&encodings);
    let settings = RunSettings { threads, max_line_bytes, chunk_size, progress: None };
    settings.validate()?;
    let state = run_interruptible(py, |check| {
        let state = scan_shard_state(&source, file, &encodings, &config.options, &settings.options(check))?;
        Ok((state.lines(), state.to_bytes()))
    })?;
    Ok((state.0, PyBytes::new(py, &state.1)))
}

/// The MinHash signatures of the records at `lines` of a shard (numbered within the shard), as
/// (line, little-endian u32 values), for the driver's `fetch`.
#[pyfunction]
#[pyo3(signature = (path, config, lines, *, byte_range = None, data = None, threads = None, max_line_bytes = 256 << 20))]
#[allow(clippy::too_many_arguments)]
fn shard_minhashes<'py>(
    py: Python<'py>,
    path: &str,
    config: &ScanConfig,
    lines: Vec<u64>,
    byte_range: Option<(u64, u64)>,
    data: Option<&[u8]>,
    threads: Option<usize>,
    max_line_bytes: u64,
) -> PyResult<Vec<(u64, Bound<'py, PyBytes>)>> {
    let source = shard_source(path, byte_range, data)?;
    let settings = RunSettings { threads, max_line_bytes, chunk_size: None, progress: None };
    settings.validate()?;
    let found = run_interruptible(py, |check| {
        crate::scan::shard_minhashes(&source, &config.options, &settings.options(check), lines)
    })?;
    Ok(found
        .into_iter()
        .map(|(line, minhash)| {
            let bytes: Vec<u8> = minhash.iter().flat_map(|v| v.to_le_bytes()).collect();
            (line, PyBytes::new(py, &bytes))
        })
        .collect())
}

/// The driver of a distributed scan: merges the shards' states, given in input order as (file,
/// state), and makes the report. `fetch(requests)` is called once when near-duplicate candidates
/// must be verified: `requests` is a list of (shard index, line numbers within the shard), and it
/// returns, per request, what `shard_minhashes` gives for that shard. Returns what `scan_files` does.
#[pyfunction]
#[pyo3(signature = (names, encodings, config, shards, fetch))]
fn scan_merge<'py>(
    py: Python<'py>,
    names: Vec<String>,
    encodings: Vec<PyRef<'py, Encoding>>,
    config: &ScanConfig,
    shards: Vec<(usize, Py<PyBytes>)>,
    fetch: Bound<'py, PyAny>,
) -> PyResult<ScanResult<'py>> {
    let encodings = encodings_of(&encodings);
    let options = &config.options;
    let fetch = fetch.unbind();
    let report = run_interruptible(py, |check| {
        let mut driver = ScanState::for_driver(names.len(), &encodings, options)?;
        let mut places: Vec<ShardPlace> = Vec::with_capacity(shards.len());
        let mut lines_in_file = vec![0u64; names.len()];
        for (file, bytes) in shards {
            check()?;
            // Read where Python holds them, one state at a time: no second copy of all the states.
            let state = Python::with_gil(|py| ScanState::from_bytes(bytes.as_bytes(py)))?;
            let lines_before = *lines_in_file.get(file).ok_or_else(|| {
                Error::InvalidInput(format!("shard of file {file}, but there are {} files", names.len()))
            })?;
            let place = ShardPlace { file, lines_before, lines: state.lines() };
            lines_in_file[file] += place.lines;
            driver.append(state, file, lines_before)?;
            places.push(place);
        }
        driver.finish(&names, &encodings, options, |index, signed| {
            resolve_sharded(index, signed, names.len(), &places, |requests| {
                Python::with_gil(|py| call_fetch(py, &fetch, requests)).map_err(|e| {
                    Error::InvalidInput(format!("fetching the candidates' signatures failed: {e}"))
                })
            })
        })
    })?;
    scan_result(py, &report)
}

/// Calls the Python `fetch` of `scan_merge` and decodes its answer.
fn call_fetch(
    py: Python<'_>,
    fetch: &PyObject,
    requests: Vec<(usize, Vec<u64>)>,
) -> PyResult<Vec<ShardMinhashes>> {
    let answers: Vec<Vec<(u64, Vec<u8>)>> = fetch.call1(py, (requests,))?.extract(py)?;
    answers
        .into_iter()
        .map(|answer| {
            answer
                .into_iter()
                .map(|(line, bytes)| {
                    if bytes.len() % 4 != 0 {
                        return Err(InvalidInputError::new_err("a MinHash is a whole number of u32 values"));
                    }
                    let values = bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                    Ok((line, values.collect()))
                })
                .collect()
        })
        .collect()
}

/// Byte ranges of about `parts` similar sizes, cut at line starts, for shards of a plain file;
/// `None` for a compressed file.
#[pyfunction]
fn line_ranges(py: Python<'_>, path: &str, parts: usize) -> PyResult<Option<Vec<(u64, u64)>>> {
    py.allow_threads(|| crate::reader::line_ranges(std::path::Path::new(path), parts)).map_err(to_py_err)
}

/// An output complete in a temporary file beside its destination, not yet in place: `commit`
/// renames it onto the destination; `discard`, or dropping it uncommitted, removes it. A job that
/// writes several outputs commits them only once all are complete, so that Ctrl-C or an error
/// never leaves some without the others.
#[pyclass(module = "tokenlens._core", frozen)]
struct PendingOutput {
    file: Mutex<Option<AtomicFile>>,
    #[pyo3(get)]
    temp: String,
    #[pyo3(get)]
    dest: String,
}

impl PendingOutput {
    fn wrap(file: AtomicFile) -> PendingOutput {
        let temp = file.temp().display().to_string();
        let dest = file.dest().display().to_string();
        PendingOutput { file: Mutex::new(Some(file)), temp, dest }
    }

    fn take(&self) -> Option<AtomicFile> {
        self.file.lock().expect("not poisoned").take()
    }
}

#[pymethods]
impl PendingOutput {
    /// A new empty temporary file for `dest`, for the caller to write at `temp`.
    #[new]
    fn new(dest: &str) -> PyResult<PendingOutput> {
        let (file, _) = AtomicFile::create(std::path::Path::new(dest), true).map_err(to_py_err)?;
        Ok(PendingOutput::wrap(file))
    }

    /// Renames the file onto its destination; once done, further calls do nothing.
    fn commit(&self) -> PyResult<()> {
        self.take().map_or(Ok(()), |file| file.commit().map_err(to_py_err))
    }

    /// Removes the temporary file, unless it was committed.
    fn discard(&self) {
        drop(self.take());
    }
}

/// Copies every line of `paths` except the dropped ones (per file, ascending line numbers) to a
/// temporary file for `dest`. Returns (lines read, lines written, the output to commit).
#[pyfunction]
#[pyo3(signature = (paths, drop, dest, *, force = false, threads = None, max_line_bytes = 256 << 20, progress = None))]
#[allow(clippy::too_many_arguments)]
fn write_lines(
    py: Python<'_>,
    paths: Vec<String>,
    mut drop: Vec<Vec<u64>>,
    dest: &str,
    force: bool,
    threads: Option<usize>,
    max_line_bytes: u64,
    progress: Option<&Progress>,
) -> PyResult<(u64, u64, PendingOutput)> {
    if drop.len() != paths.len() {
        return Err(InvalidInputError::new_err("drop needs one list of line numbers per path"));
    }
    drop.iter_mut().for_each(|lines| {
        lines.sort_unstable();
        lines.dedup();
    });
    let settings = RunSettings { threads, max_line_bytes, chunk_size: None, progress };
    settings.validate()?;
    let sources: Vec<Source> = paths.iter().map(|p| Source::from_arg(p)).collect();
    let dest = std::path::Path::new(dest);
    let (summary, file) = run_interruptible(py, |check| {
        crate::output::write_lines(&sources, &drop, dest, force, &settings.options(check))
    })?;
    Ok((summary.lines_read, summary.lines_written, PendingOutput::wrap(file)))
}

/// Exact and near duplicates (exact ones only with `exact_only`) of the records of `paths` (no
/// tokenization). Returns (summary JSON, records as CSV with a header: file (index), line,
/// exact_dup_of_file, exact_dup_of, cluster (empty when none), cluster_size, is_representative,
/// removed; see [`Csv`]).
#[pyfunction]
#[pyo3(signature = (paths, *, field = None, exact_only = false, ngram = 5, num_perm = 112, bands = 14, rows = 8, threshold = 0.8, keep = "first", threads = None, max_line_bytes = 256 << 20, progress = None))]
#[allow(clippy::too_many_arguments)]
fn dedup_files<'py>(
    py: Python<'py>,
    paths: Vec<String>,
    field: Option<&str>,
    exact_only: bool,
    ngram: usize,
    num_perm: usize,
    bands: usize,
    rows: usize,
    threshold: f64,
    keep: &str,
    threads: Option<usize>,
    max_line_bytes: u64,
    progress: Option<&Progress>,
) -> PyResult<(String, Bound<'py, PyBytes>)> {
    let settings = RunSettings { threads, max_line_bytes, chunk_size: None, progress };
    settings.validate()?;
    let keep = Keep::parse(keep).map_err(to_py_err)?;
    let config = DedupConfig { ngram, num_perm, bands, rows, threshold, keep, ..Default::default() };
    let options = crate::dedup::DedupOptions { text: TextSpec::parse(field), config, exact_only };
    let sources: Vec<Source> = paths.iter().map(|p| Source::from_arg(p)).collect();
    let report =
        run_interruptible(py, |check| crate::dedup::dedup(&sources, &options, &settings.options(check)))?;
    let s = &report.summary;
    let summary = serde_json::json!({
        "lines": report.lines, "blank": report.blank, "not_records": report.skipped_by_code,
        "records": s.records, "exact_duplicates": s.exact_duplicates, "near_dup_clusters": s.near_dup_clusters,
        "records_in_clusters": s.records_in_clusters, "removed": s.removed, "kept": s.kept,
        "unique_fraction": s.unique_fraction,
        "file_errors": report.file_errors,
        "detection_probability": crate::dedup::detection_table(bands, rows),
    });
    let recs = &report.records;
    let mut csv = Csv::new(
        "file,line,exact_dup_of_file,exact_dup_of,cluster,cluster_size,is_representative,removed",
        recs.len(),
    );
    for r in recs {
        let o = &r.outcome;
        let original = o.exact_dup_of.map(|i| &recs[i as usize]);
        csv.number(Some(r.file as u64));
        csv.number(Some(r.line));
        csv.number(original.map(|x| x.file as u64));
        csv.number(original.map(|x| x.line));
        csv.number(o.cluster);
        csv.number(Some(o.cluster_size));
        csv.boolean(Some(o.is_representative));
        csv.boolean(Some(o.removed()));
        csv.end_row();
    }
    drop(report);
    Ok((summary.to_string(), csv.into_py(py)))
}

/// Writes `paths` to a temporary file for `dest` with every text record over `max_tokens` tokens
/// (field `field`, a top-level key) replaced by its pieces (see `chunk.rs`). Returns (summary JSON,
/// chunked records as (file, line, pieces), lines copied unchanged as (file, line, reason), the
/// output to commit).
#[pyfunction]
#[pyo3(signature = (paths, dest, encoding, *, max_tokens, overlap = 0, field = "text", force = false, threads = None, max_line_bytes = 256 << 20, progress = None, chunk_size = None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn chunk_files(
    py: Python<'_>,
    paths: Vec<String>,
    dest: &str,
    encoding: &Encoding,
    max_tokens: u64,
    overlap: u64,
    field: &str,
    force: bool,
    threads: Option<usize>,
    max_line_bytes: u64,
    progress: Option<&Progress>,
    chunk_size: Option<usize>,
) -> PyResult<(String, Vec<(usize, u64, u64)>, Vec<(usize, u64, &'static str)>, PendingOutput)> {
    let settings = RunSettings { threads, max_line_bytes, chunk_size, progress };
    settings.validate()?;
    let options = crate::chunk::ChunkOptions { field: field.to_string(), max_tokens, overlap };
    let sources: Vec<Source> = paths.iter().map(|p| Source::from_arg(p)).collect();
    let dest = std::path::Path::new(dest);
    let (s, file) = run_interruptible(py, |check| {
        crate::chunk::chunk(&sources, &encoding.inner, &options, dest, force, &settings.options(check))
    })?;
    let summary = serde_json::json!({
        "lines_read": s.lines_read, "lines_written": s.lines_written, "records": s.records,
        "records_chunked": s.changed.len(), "pieces": s.changed.iter().map(|c| c.2).sum::<u64>(),
        "not_chunked": s.unchanged.len(), "encoding": encoding.inner.name(), "field": field,
        "max_tokens": max_tokens, "overlap": overlap,
    });
    Ok((summary.to_string(), s.changed, s.unchanged, PendingOutput::wrap(file)))
}

/// The content of chosen lines (per path, line numbers) as (path index, line, bytes), in input order.
#[pyfunction]
#[pyo3(signature = (paths, wanted, *, threads = None))]
fn read_lines<'py>(
    py: Python<'py>,
    paths: Vec<String>,
    mut wanted: Vec<Vec<u64>>,
    threads: Option<usize>,
) -> PyResult<Vec<(usize, u64, Bound<'py, PyBytes>)>> {
    if wanted.len() != paths.len() {
        return Err(InvalidInputError::new_err("wanted needs one list of line numbers per path"));
    }
    wanted.iter_mut().for_each(|lines| {
        lines.sort_unstable();
        lines.dedup();
    });
    let settings = RunSettings { threads, max_line_bytes: 256 << 20, chunk_size: None, progress: None };
    settings.validate()?;
    let sources: Vec<Source> = paths.iter().map(|p| Source::from_arg(p)).collect();
    let found = run_interruptible(py, |check| {
        crate::output::read_lines(&sources, &wanted, &settings.options(check))
    })?;
    Ok(found.into_iter().map(|(file, line, bytes)| (file, line, PyBytes::new(py, &bytes))).collect())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("BUILD_PROFILE", if cfg!(debug_assertions) { "debug" } else { "release" })?;
    m.add("BUILTIN_ENCODINGS", BUILTIN_ENCODINGS.to_vec())?;
    m.add("TokenlensError", m.py().get_type::<TokenlensError>())?;
    m.add("InvalidInputError", m.py().get_type::<InvalidInputError>())?;
    m.add("TokenizerError", m.py().get_type::<TokenizerError>())?;
    m.add_class::<Encoding>()?;
    m.add_class::<Progress>()?;
    m.add_class::<ScanConfig>()?;
    m.add_class::<PendingOutput>()?;
    m.add_function(wrap_pyfunction!(count_files, m)?)?;
    m.add_function(wrap_pyfunction!(scan_files, m)?)?;
    m.add_function(wrap_pyfunction!(scan_shard, m)?)?;
    m.add_function(wrap_pyfunction!(shard_minhashes, m)?)?;
    m.add_function(wrap_pyfunction!(scan_merge, m)?)?;
    m.add_function(wrap_pyfunction!(line_ranges, m)?)?;
    m.add_function(wrap_pyfunction!(write_lines, m)?)?;
    m.add_function(wrap_pyfunction!(read_lines, m)?)?;
    m.add_function(wrap_pyfunction!(dedup_files, m)?)?;
    m.add_function(wrap_pyfunction!(chunk_files, m)?)?;
    Ok(())
}
