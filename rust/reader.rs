//! Streaming input: files (plain, gzip, zstd; detected by magic bytes) or stdin, cut into
//! newline-aligned chunks so that memory stays bounded whatever the file size.
//!
//! Plain files are mapped into memory rather than copied: a chunk is a range of the map, and a
//! dropped chunk gives its pages back, so resident memory stays bounded there too. Compressed
//! files, stdin, pipes and anything that cannot be mapped are read into buffers.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Error;

/// One input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Path(PathBuf),
    Stdin,
    /// Bytes `start..end` of an uncompressed file, cut at line starts: a shard of a distributed run.
    /// Line numbers count from 1 at `start`; byte offsets are the file's own.
    Range {
        path: PathBuf,
        start: u64,
        end: u64,
    },
    /// Lines held in memory (a block of a distributed dataset), under a name.
    Memory {
        name: String,
        data: Arc<[u8]>,
    },
}

impl Source {
    /// `-` is stdin, anything else a path.
    pub fn from_arg(arg: &str) -> Source {
        if arg == "-" {
            Source::Stdin
        } else {
            Source::Path(PathBuf::from(arg))
        }
    }

    /// The name used in reports and error messages.
    pub fn name(&self) -> String {
        match self {
            Source::Path(p) | Source::Range { path: p, .. } => p.display().to_string(),
            Source::Stdin => "-".to_string(),
            Source::Memory { name, .. } => name.clone(),
        }
    }

    /// Byte offset of the source's first line in its file.
    fn start(&self) -> u64 {
        match self {
            Source::Range { start, .. } => *start,
            _ => 0,
        }
    }

    /// Size on disk, when known.
    pub fn size(&self) -> Option<u64> {
        match self {
            Source::Path(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Source::Stdin => None,
            Source::Range { start, end, .. } => Some(end - start),
            Source::Memory { data, .. } => Some(data.len() as u64),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Counters shared with a progress display; updated by the engine, read from any thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read from disk or stdin (compressed bytes for compressed files).
    pub bytes_read: AtomicU64,
    /// Sum of the sizes of the input files, where known.
    pub bytes_total: AtomicU64,
    /// Lines fully processed.
    pub lines_done: AtomicU64,
}

/// A run of complete lines from one file.
#[derive(Debug)]
pub struct LinesChunk {
    pub file: usize,
    /// 1-based number of the first line.
    pub first_line: u64,
    /// Byte offset of the first line in the (decompressed) stream.
    pub offset: u64,
    /// How many lines `data` holds (the last one may lack its terminator at the end of a stream).
    pub lines: u64,
    pub data: ChunkBytes,
}

/// Memory that chunks are cut from: a buffer the reader filled, a block held in memory, or a
/// mapped file.
trait Backing: Send + Sync {
    fn bytes(&self) -> &[u8];
    /// Says that `range` is no longer needed.
    fn release(&self, _range: Range<usize>) {}
}

impl Backing for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl Backing for Arc<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// A plain file, mapped read-only.
struct MappedFile(memmap2::Mmap);

impl Backing for MappedFile {
    fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Unmaps the pages of `range` (widened to whole pages), so that they stop counting as the
    /// process's memory. They stay in the page cache: a page that a neighbouring chunk still reads
    /// is mapped again, with the same bytes, when it is next touched.
    fn release(&self, range: Range<usize>) {
        #[cfg(unix)]
        // SAFETY: the map is read-only and private, so dropping its pages loses nothing: they are
        // read again from the file when touched.
        unsafe {
            let _ =
                self.0.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, range.start, range.len());
        }
    }
}

/// The bytes of a chunk: a range of memory shared with the other chunks cut from it, given back
/// when the chunk is dropped.
pub struct ChunkBytes {
    backing: Arc<dyn Backing>,
    range: Range<usize>,
}

impl From<Vec<u8>> for ChunkBytes {
    fn from(bytes: Vec<u8>) -> ChunkBytes {
        let range = 0..bytes.len();
        ChunkBytes { backing: Arc::new(bytes), range }
    }
}

impl Deref for ChunkBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.backing.bytes()[self.range.clone()]
    }
}

impl Drop for ChunkBytes {
    fn drop(&mut self) {
        self.backing.release(self.range.clone());
    }
}

impl std::fmt::Debug for ChunkBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkBytes({:?})", self.range)
    }
}

impl LinesChunk {
    /// Calls `f(line_number, byte_offset, line)` for each line, without the line terminator
    /// (`\n`, or `\r\n`).
    pub fn for_each_line(&self, mut f: impl FnMut(u64, u64, &[u8])) {
        let mut line = self.first_line;
        let mut start = 0;
        let data = &self.data[..];
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
            let mut content = &data[start..end];
            if let [rest @ .., b'\r'] = content {
                content = rest;
            }
            f(line, self.offset + start as u64, content);
            line += 1;
            start = end + 1;
        }
    }

    /// Calls `f(line_number, line)` for each line of the chunk whose number is in `wanted`
    /// (ascending); a chunk with none of them is not even split into lines.
    pub fn for_each_wanted_line(&self, wanted: &[u64], mut f: impl FnMut(u64, &[u8])) {
        let mut next = wanted.partition_point(|&l| l < self.first_line);
        if next == wanted.len() {
            return;
        }
        self.for_each_line(|line, _, bytes| {
            if wanted.get(next) == Some(&line) {
                next += 1;
                f(line, bytes);
            }
        });
    }
}

/// What the reader produces, in input order.
#[derive(Debug)]
pub enum Item {
    FileStart {
        file: usize,
        compression: Compression,
    },
    Lines(LinesChunk),
    /// A line longer than the limit; its bytes were skipped, not held in memory.
    LineTooLong {
        file: usize,
        line: u64,
        offset: u64,
        len: u64,
    },
    /// The file ended; `error` says why it ended early (unreadable, truncated or corrupt stream).
    FileEnd {
        file: usize,
        lines: u64,
        bytes: u64,
        error: Option<String>,
    },
}

#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Target size of a chunk of lines.
    pub chunk_size: usize,
    /// Longer lines become `LineTooLong` items.
    pub max_line_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { chunk_size: 1 << 20, max_line_bytes: 256 << 20 }
    }
}

struct CountingReader<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens a source, detecting compression from its first bytes.
pub fn open(source: &Source, progress: &Arc<Progress>) -> Result<(Box<dyn Read + Send>, Compression), Error> {
    let open_file = |path: &PathBuf| {
        File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(path.clone()),
            _ => Error::io(source.name(), e),
        })
    };
    let raw: Box<dyn Read + Send> = match source {
        Source::Path(path) => Box::new(open_file(path)?),
        Source::Stdin => Box::new(io::stdin()),
        Source::Range { path, start, end } => {
            let mut file = open_file(path)?;
            file.seek(SeekFrom::Start(*start)).map_err(|e| Error::io(source.name(), e))?;
            Box::new(file.take(end.saturating_sub(*start)))
        }
        Source::Memory { data, .. } => Box::new(io::Cursor::new(data.clone())),
    };
    let mut buffered =
        BufReader::with_capacity(256 << 10, CountingReader { inner: raw, progress: progress.clone() });
    let compression = match source {
        // A part of a plain file may start with bytes that look like a magic number.
        Source::Range { .. } | Source::Memory { .. } => Compression::None,
        _ => Compression::detect(buffered.fill_buf().map_err(|e| Error::io(source.name(), e))?),
    };
    let reader: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered).map_err(|e| Error::io(source.name(), e))?,
        ),
    };
    Ok((reader, compression))
}

/// Cuts a file into about `parts` byte ranges of similar size, each starting at a line start, for
/// [`Source::Range`]. `None` for a compressed file, which can only be read from its start.
pub fn line_ranges(path: &Path, parts: usize) -> Result<Option<Vec<(u64, u64)>>, Error> {
    let name = || path.display().to_string();
    let (reader, compression) = open(&Source::Path(path.to_path_buf()), &Arc::default())?;
    drop(reader);
    if compression != Compression::None {
        return Ok(None);
    }
    let size = std::fs::metadata(path).map_err(|e| Error::io(name(), e))?.len();
    let mut file = BufReader::with_capacity(64 << 10, File::open(path).map_err(|e| Error::io(name(), e))?);
    let mut starts = vec![0u64];
    for k in 1..parts.max(1) as u64 {
        let target = size * k / parts as u64;
        if target <= *starts.last().expect("not empty") {
            continue;
        }
        // The next line starts after the first newline at or after `target - 1`.
        let mut at = target - 1;
        file.seek(SeekFrom::Start(at)).map_err(|e| Error::io(name(), e))?;
        loop {
            let buf = file.fill_buf().map_err(|e| Error::io(name(), e))?;
            if buf.is_empty() {
                at = size;
                break;
            }
            if let Some(i) = memchr::memchr(b'\n', buf) {
                at += i as u64 + 1;
                break;
            }
            let n = buf.len();
            at += n as u64;
            file.consume(n);
        }
        if at >= size {
            break;
        }
        if at > *starts.last().expect("not empty") {
            starts.push(at);
        }
    }
    starts.push(size);
    Ok(Some(starts.windows(2).map(|w| (w[0], w[1])).collect()))
}

/// Reads every source in order and hands each item to `emit`; stops early when `emit` returns false.
pub fn read_all(
    sources: &[Source],
    options: &ReadOptions,
    progress: &Arc<Progress>,
    mut emit: impl FnMut(Item) -> bool,
) {
    for (file, source) in sources.iter().enumerate() {
        if let Some((backing, range)) = map_plain(source) {
            if !emit(Item::FileStart { file, compression: Compression::None })
                || !read_mapped(file, source.start(), backing, range, options, progress, &mut emit)
            {
                return;
            }
            continue;
        }
        let (reader, compression) = match open(source, progress) {
            Ok(opened) => opened,
            Err(e) => {
                let ended = Item::FileEnd { file, lines: 0, bytes: 0, error: Some(e.to_string()) };
                if !emit(ended) {
                    return;
                }
                continue;
            }
        };
        if !emit(Item::FileStart { file, compression })
            || !read_file(file, source.start(), reader, compression, options, &mut emit)
        {
            return;
        }
    }
}

/// The memory of an uncompressed source and the range of it to read, when it can be had without
/// copying: a block in memory, or a regular file that maps. `None` sends the source to [`open`].
fn map_plain(source: &Source) -> Option<(Arc<dyn Backing>, Range<usize>)> {
    let (path, start, end) = match source {
        Source::Path(path) => (path, 0, u64::MAX),
        Source::Range { path, start, end } => (path, *start, *end),
        Source::Memory { data, .. } => return Some((Arc::new(data.clone()), 0..data.len())),
        Source::Stdin => return None,
    };
    // Pipes and devices are read; so are empty files, which cannot be mapped. The path is not opened
    // to find out: opening a named pipe would wait for its writer, and closing it could lose data.
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() || metadata.len() == 0 {
        return None;
    }
    let file = File::open(path).ok()?;
    // SAFETY: the map is only read. A file changed while it is read gives mixed old and new bytes,
    // as with read(2); one truncated under the map ends the process with SIGBUS, a risk that every
    // reader that maps files takes (ripgrep maps by default too).
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    // A part of a plain file may start with bytes that look like a magic number.
    if matches!(source, Source::Path(_)) && Compression::detect(&map) != Compression::None {
        return None;
    }
    let _ = map.advise(memmap2::Advice::Sequential);
    let len = map.len() as u64;
    let range = start.min(len) as usize..end.min(len) as usize;
    Some((Arc::new(MappedFile(map)), range))
}

/// Reads `range` of a source held in memory; returns false when `emit` asked to stop.
fn read_mapped(
    file: usize,
    start: u64,
    backing: Arc<dyn Backing>,
    range: Range<usize>,
    options: &ReadOptions,
    progress: &Progress,
    emit: &mut impl FnMut(Item) -> bool,
) -> bool {
    let bytes = backing.bytes();
    let chunk_size = options.chunk_size.max(1);
    let mut line = 1u64;
    let mut offset = start;
    let mut at = range.start;
    while at < range.end {
        // A chunk ends after the last newline of its window; the last window takes all that is left.
        let window_end = range.end.min(at + chunk_size);
        let end = if window_end == range.end {
            range.end
        } else if let Some(i) = memchr::memrchr(b'\n', &bytes[at..window_end]) {
            at + i + 1
        } else {
            // The line at `at` is longer than a chunk.
            let end = long_line_end(&backing, at, window_end, range.end, chunk_size, options.max_line_bytes);
            let len = content_len(&bytes[at..end]);
            if len > options.max_line_bytes {
                backing.release(at..end);
                if !emit(Item::LineTooLong { file, line, offset, len }) {
                    return false;
                }
                line += 1;
                offset += (end - at) as u64;
                progress.bytes_read.fetch_add((end - at) as u64, Ordering::Relaxed);
                at = end;
                continue;
            }
            end
        };
        if !emit_lines(file, &mut line, &mut offset, &backing, at..end, options.max_line_bytes, emit) {
            return false;
        }
        progress.bytes_read.fetch_add((end - at) as u64, Ordering::Relaxed);
        at = end;
    }
    emit(Item::FileEnd { file, lines: line - 1, bytes: offset - start, error: None })
}

/// The length of a line without its terminator (`\n` or `\r\n`): what the line limit applies to.
fn content_len(line: &[u8]) -> u64 {
    let content = line.strip_suffix(b"\n").unwrap_or(line);
    content.strip_suffix(b"\r").unwrap_or(content).len() as u64
}

/// The end (after its newline, if any) of the line at `start`, which has no newline before
/// `searched`. It is looked for a chunk at a time; pages past the line limit are given back as soon
/// as they are searched, so a huge line does not stay resident.
fn long_line_end(
    backing: &Arc<dyn Backing>,
    start: usize,
    mut searched: usize,
    end: usize,
    chunk_size: usize,
    max_line_bytes: u64,
) -> usize {
    while searched < end {
        let step_end = end.min(searched + chunk_size);
        if let Some(i) = memchr::memchr(b'\n', &backing.bytes()[searched..step_end]) {
            return searched + i + 1;
        }
        if (step_end - start) as u64 > max_line_bytes {
            backing.release(searched..step_end);
        }
        searched = step_end;
    }
    end
}

/// Streams one file; returns false when `emit` asked to stop.
fn read_file(
    file: usize,
    start: u64,
    mut reader: Box<dyn Read + Send>,
    compression: Compression,
    options: &ReadOptions,
    emit: &mut impl FnMut(Item) -> bool,
) -> bool {
    let mut buf: Vec<u8> = Vec::with_capacity(options.chunk_size + 4096);
    let mut line = 1u64; // number of the first line in `buf`
    let mut offset = start; // stream offset of `buf[0]`
    let mut searched = 0; // bytes of `buf` known to hold no newline
                          // An over-long line being skipped: its offset, and its bytes so far and last byte.
    let mut long_line: Option<(u64, u64, u8)> = None;
    let mut error = None;
    loop {
        // Fill the buffer up to the chunk size, or to the end of the stream.
        let filled = buf.len();
        let want = options.chunk_size.max(filled + 4096);
        buf.resize(want, 0);
        let mut len = filled;
        let mut eof = false;
        while len < want {
            match reader.read(&mut buf[len..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let what = match compression {
                        Compression::None => "read error".to_string(),
                        c => format!("truncated or corrupt {} stream", c.name()),
                    };
                    // The last complete line: those emitted, plus the complete ones still in `buf`.
                    let last_good = line - 1 + memchr::memchr_iter(b'\n', &buf[..len]).count() as u64;
                    error = Some(format!("{what} after line {last_good}: {e}"));
                    eof = true;
                    break;
                }
            }
        }
        buf.truncate(len);

        if let Some((start, skipped, last)) = long_line {
            // Drop the rest of an over-long line without keeping it; report it once its length is known.
            let end = memchr::memchr(b'\n', &buf);
            let part = &buf[..end.unwrap_or(buf.len())];
            let (skipped, last) = (skipped + part.len() as u64, part.last().copied().unwrap_or(last));
            if end.is_none() && !eof {
                offset += buf.len() as u64;
                buf.clear();
                long_line = Some((start, skipped, last));
                continue;
            }
            // The length of the content, without the `\r` of a `\r\n` terminator.
            let len = skipped - u64::from(end.is_some() && last == b'\r');
            if !emit(Item::LineTooLong { file, line, offset: start, len }) {
                return false;
            }
            long_line = None;
            line += 1;
            searched = 0;
            let consumed = end.map_or(buf.len(), |i| i + 1);
            offset += consumed as u64;
            buf.drain(..consumed);
            if eof && buf.is_empty() {
                break;
            }
        }

        let last_newline = memchr::memrchr(b'\n', &buf[searched..]).map(|i| searched + i);
        let cut = match (last_newline, eof) {
            (_, true) => buf.len(),
            (Some(i), false) => i + 1,
            (None, false) => {
                searched = buf.len();
                if buf.len() as u64 > options.max_line_bytes {
                    long_line = Some((offset, buf.len() as u64, buf.last().copied().unwrap_or(0)));
                    offset += buf.len() as u64;
                    buf.clear();
                    searched = 0;
                }
                continue;
            }
        };
        if cut > 0 {
            let rest = buf[cut..].to_vec();
            buf.truncate(cut);
            let data: Arc<dyn Backing> = Arc::new(std::mem::replace(&mut buf, rest));
            if !emit_lines(file, &mut line, &mut offset, &data, 0..cut, options.max_line_bytes, emit) {
                return false;
            }
            buf.reserve(options.chunk_size);
            searched = 0;
        }
        if eof {
            break;
        }
    }
    emit(Item::FileEnd { file, lines: line - 1, bytes: offset - start, error })
}

/// Emits bytes `range` of `backing` (whole lines) as one chunk, or as several around lines longer
/// than the limit. Advances `line` and `offset` past it.
fn emit_lines(
    file: usize,
    line: &mut u64,
    offset: &mut u64,
    backing: &Arc<dyn Backing>,
    range: Range<usize>,
    max_line_bytes: u64,
    emit: &mut impl FnMut(Item) -> bool,
) -> bool {
    let data = &backing.bytes()[range.clone()];
    // Bytes `part` of `data`, as a chunk's bytes.
    let bytes_of = |part: Range<usize>| ChunkBytes {
        backing: backing.clone(),
        range: range.start + part.start..range.start + part.end,
    };
    let base = *offset;
    *offset += data.len() as u64;
    if data.len() as u64 <= max_line_bytes {
        // No line can be over the limit: count the lines without splitting them.
        let lines = memchr::memchr_iter(b'\n', data).count() as u64
            + u64::from(data.last().is_some_and(|&b| b != b'\n'));
        let chunk =
            LinesChunk { file, first_line: *line, offset: base, lines, data: bytes_of(0..data.len()) };
        *line += lines;
        return emit(Item::Lines(chunk));
    }
    // Lines not yet emitted start at `pending` (byte) and `pending_line` (number).
    let mut pending = 0;
    let mut pending_line = *line;
    let mut line_start = 0;
    while line_start < data.len() {
        let line_end = memchr::memchr(b'\n', &data[line_start..]).map_or(data.len(), |i| line_start + i + 1);
        let len = content_len(&data[line_start..line_end]);
        if len > max_line_bytes {
            if line_start > pending {
                let chunk = LinesChunk {
                    file,
                    first_line: pending_line,
                    offset: base + pending as u64,
                    lines: *line - pending_line,
                    data: bytes_of(pending..line_start),
                };
                if !emit(Item::Lines(chunk)) {
                    return false;
                }
            }
            backing.release(range.start + line_start..range.start + line_end);
            if !emit(Item::LineTooLong { file, line: *line, offset: base + line_start as u64, len }) {
                return false;
            }
            pending = line_end;
            pending_line = *line + 1;
        }
        *line += 1;
        line_start = line_end;
    }
    if pending == data.len() {
        return true;
    }
    let lines = *line - pending_line;
    emit(Item::Lines(LinesChunk {
        file,
        first_line: pending_line,
        offset: base + pending as u64,
        lines,
        data: bytes_of(pending..data.len()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn wanted_lines_are_picked_by_number() {
        let chunk = LinesChunk {
            file: 0,
            first_line: 10,
            offset: 0,
            lines: 4,
            data: b"a\nb\r\nc\nd\n".to_vec().into(),
        };
        let mut seen = Vec::new();
        chunk.for_each_wanted_line(&[3, 11, 13, 20], |line, bytes| seen.push((line, bytes.to_vec())));
        assert_eq!(seen, [(11, b"b".to_vec()), (13, b"d".to_vec())]);
        chunk.for_each_wanted_line(&[1, 9, 14], |line, _| panic!("line {line} is not wanted here"));
    }

    fn collect(path: &std::path::Path, options: &ReadOptions) -> Vec<Item> {
        let mut items = Vec::new();
        read_all(&[Source::Path(path.into())], options, &Arc::new(Progress::default()), |i| {
            items.push(i);
            true
        });
        items
    }

    /// A line's number, offset and bytes.
    type NumberedLine = (u64, u64, Vec<u8>);

    fn lines_of(items: &[Item]) -> Vec<NumberedLine> {
        let mut out = Vec::new();
        for item in items {
            if let Item::Lines(chunk) = item {
                let before = out.len();
                chunk.for_each_line(|n, off, l| out.push((n, off, l.to_vec())));
                assert_eq!(chunk.lines, (out.len() - before) as u64, "the chunk's line count");
            }
        }
        out
    }

    fn write_temp(name: &str, data: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tokenlens-reader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    #[test]
    fn lines_numbers_and_offsets_survive_any_chunk_size() {
        let text = b"{\"a\":1}\r\n\n{\"b\":22}\nlast-without-newline";
        let path = write_temp("plain.jsonl", text);
        for chunk_size in [1, 2, 3, 7, 64, 1 << 20] {
            let items = collect(&path, &ReadOptions { chunk_size, max_line_bytes: 1000 });
            let lines = lines_of(&items);
            assert_eq!(
                lines,
                vec![
                    (1, 0, b"{\"a\":1}".to_vec()),
                    (2, 9, b"".to_vec()),
                    (3, 10, b"{\"b\":22}".to_vec()),
                    (4, 19, b"last-without-newline".to_vec()),
                ],
                "chunk size {chunk_size}"
            );
            assert!(matches!(items.last(), Some(Item::FileEnd { lines: 4, error: None, .. })));
        }
    }

    #[test]
    fn line_ranges_cover_the_file_at_line_starts() {
        // Some lines start with gzip's magic number: a range starting there is still plain text.
        let mut text = Vec::new();
        for i in 0..500 {
            text.extend(format!("{{\"i\": {}}}\r\n", "x".repeat(i % 37)).as_bytes());
            if i % 10 == 0 {
                text.extend(b"\x1f\x8b not gzip\n");
            }
        }
        text.extend(b"\n\nno newline at the end");
        let path = write_temp("ranges.jsonl", &text);
        let whole = lines_of(&collect(&path, &ReadOptions::default()));
        for parts in [1, 2, 3, 7, 64, 10_000] {
            let ranges = line_ranges(&path, parts).unwrap().unwrap();
            assert!(
                ranges.len() <= parts && ranges[0].0 == 0 && ranges.last().unwrap().1 == text.len() as u64
            );
            let mut lines = Vec::new();
            for (start, end) in ranges {
                assert!(start == 0 || text[start as usize - 1] == b'\n', "{parts} parts");
                let source = Source::Range { path: path.clone(), start, end };
                let mut items = Vec::new();
                let options = ReadOptions { chunk_size: 100, max_line_bytes: 1000 };
                read_all(&[source], &options, &Arc::new(Progress::default()), |i| {
                    items.push(i);
                    true
                });
                assert!(matches!(items[0], Item::FileStart { compression: Compression::None, .. }));
                let base = lines.len() as u64;
                lines.extend(lines_of(&items).into_iter().map(|(n, off, l)| (n + base, off, l)));
            }
            assert_eq!(lines, whole, "{parts} parts");
        }
        let gz = write_temp("ranges.jsonl.gz", &{
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&text).unwrap();
            enc.finish().unwrap()
        });
        assert_eq!(line_ranges(&gz, 4).unwrap(), None);
    }

    #[test]
    fn gzip_multi_member_and_zstd_are_detected_by_content() {
        let mut gz = Vec::new();
        for part in [&b"one\n"[..], b"two\n"] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(part).unwrap();
            gz.extend(enc.finish().unwrap());
        }
        let path = write_temp("misnamed.txt", &gz);
        let items = collect(&path, &ReadOptions::default());
        assert!(matches!(items[0], Item::FileStart { compression: Compression::Gzip, .. }));
        assert_eq!(lines_of(&items).len(), 2);

        let zst = zstd::encode_all(&b"x\ny\nz\n"[..], 3).unwrap();
        let path = write_temp("data.jsonl", &zst);
        let items = collect(&path, &ReadOptions::default());
        assert!(matches!(items[0], Item::FileStart { compression: Compression::Zstd, .. }));
        assert_eq!(lines_of(&items).len(), 3);
    }

    #[test]
    fn truncated_gzip_keeps_what_was_read_and_reports_the_end() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..20000 {
            writeln!(enc, "{{\"i\": {i}}}").unwrap();
        }
        let gz = enc.finish().unwrap();
        let path = write_temp("truncated.gz", &gz[..gz.len() / 2]);
        let items = collect(&path, &ReadOptions { chunk_size: 4096, max_line_bytes: 1 << 20 });
        let lines = lines_of(&items);
        assert!(lines.len() > 1000);
        match items.last() {
            Some(Item::FileEnd { error: Some(msg), lines: n, .. }) => {
                assert!(msg.contains("truncated or corrupt gzip"), "{msg}");
                assert_eq!(*n as usize, lines.len());
            }
            other => panic!("expected an error at the end, got {other:?}"),
        }
    }

    #[test]
    fn over_long_lines_are_reported_and_skipped() {
        let mut text = b"short\n".to_vec();
        text.extend(vec![b'x'; 5000]);
        text.extend(b"\nafter\n");
        text.extend(vec![b'y'; 3000]);
        let path = write_temp("long.jsonl", &text);
        for chunk_size in [16, 1000, 1 << 20] {
            let items = collect(&path, &ReadOptions { chunk_size, max_line_bytes: 1024 });
            let long: Vec<_> = items
                .iter()
                .filter_map(|i| match i {
                    Item::LineTooLong { line, len, .. } => Some((*line, *len)),
                    _ => None,
                })
                .collect();
            assert_eq!(long.first().map(|l| l.0), Some(2), "chunk size {chunk_size}");
            assert_eq!(long.last().map(|l| l.0), Some(4), "chunk size {chunk_size}");
            let lines: Vec<_> = lines_of(&items).into_iter().map(|l| (l.0, l.2)).collect();
            assert_eq!(lines, vec![(1, b"short".to_vec()), (3, b"after".to_vec())]);
            assert!(matches!(items.last(), Some(Item::FileEnd { lines: 4, .. })), "chunk size {chunk_size}");
        }
    }

    /// Lines, over-long lines and the file's end, whatever the chunks were.
    fn outline(items: &[Item]) -> (Vec<NumberedLine>, Vec<String>) {
        let others = items
            .iter()
            .filter(|item| !matches!(item, Item::Lines(_) | Item::FileStart { .. }))
            .map(|item| format!("{item:?}"))
            .collect();
        (lines_of(items), others)
    }

    #[test]
    fn mapped_files_read_as_streams_do() {
        let mut random = crate::testing::xorshift(7);
        for round in 0..300 {
            let mut text = Vec::new();
            for _ in 0..random(12) {
                let len = [0, 1, 5, 40, 300][random(5)] + random(3);
                text.extend((0..len).map(|_| b"ab\r\n{}"[random(6)]));
                text.extend([&b"\n"[..], b"\r\n", b""][random(3)]);
            }
            let path = write_temp("mapped.jsonl", &text);
            let options = ReadOptions { chunk_size: 1 + random(64), max_line_bytes: 1 + random(100) as u64 };
            let mapped = collect(&path, &options);
            let mut streamed = Vec::new();
            read_file(
                0,
                0,
                Box::new(io::Cursor::new(text.clone())),
                Compression::None,
                &options,
                &mut |item| {
                    streamed.push(item);
                    true
                },
            );
            assert_eq!(
                outline(&mapped),
                outline(&streamed),
                "round {round}: {options:?} {:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn pipes_and_empty_files_are_read_without_a_map() {
        let empty = write_temp("empty.jsonl", b"");
        let items = collect(&empty, &ReadOptions::default());
        assert!(matches!(
            items[..],
            [Item::FileStart { .. }, Item::FileEnd { lines: 0, bytes: 0, error: None, .. }]
        ));

        let fifo = std::env::temp_dir().join(format!("tokenlens-reader-{}", std::process::id())).join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|status| status.success()) {
            return; // no mkfifo here (not a Unix system)
        }
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, b"{\"a\":1}\n\n{\"b\":2}").unwrap())
        };
        let items = collect(&fifo, &ReadOptions { chunk_size: 4, max_line_bytes: 100 });
        writer.join().unwrap();
        let lines: Vec<_> = lines_of(&items).into_iter().map(|(n, _, l)| (n, l)).collect();
        assert_eq!(lines, [(1, b"{\"a\":1}".to_vec()), (2, b"".to_vec()), (3, b"{\"b\":2}".to_vec())]);
        assert!(matches!(items.last(), Some(Item::FileEnd { lines: 3, bytes: 16, error: None, .. })));
    }

    #[test]
    fn missing_file_is_named() {
        let mut items = Vec::new();
        let sources = [Source::Path("/nonexistent/x.jsonl".into())];
        read_all(&sources, &ReadOptions::default(), &Arc::new(Progress::default()), |i| {
            items.push(i);
            true
        });
        match &items[..] {
            [Item::FileEnd { error: Some(msg), .. }] => {
                assert!(msg.contains("/nonexistent/x.jsonl"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
    }
}
