//! Writing selected input lines to a new file, byte for byte and in input order, atomically: the
//! lines go to a temporary file beside the destination, which the caller renames onto it (with the
//! other outputs of the same job) only once everything has succeeded.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;
use crate::pipeline::{run, Event, Kernel, RunOptions};
use crate::reader::{LinesChunk, Source};

/// Output compression, chosen by the destination's extension (`.gz`, `.zst`, else none).
fn encoder(path: &Path, file: File) -> Result<Box<dyn FinishWrite>, Error> {
    let name = path.to_string_lossy();
    let buffered = BufWriter::with_capacity(1 << 20, file);
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::write::GzEncoder::new(buffered, flate2::Compression::default()))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::write::Encoder::new(buffered, 3).map_err(|e| Error::io(name.to_string(), e))?)
    } else {
        Box::new(buffered)
    })
}

/// A writer that must be finished (compressed streams write their trailer) and synced.
trait FinishWrite: Write {
    fn finish_file(self: Box<Self>) -> std::io::Result<File>;
}

impl FinishWrite for BufWriter<File> {
    fn finish_file(self: Box<Self>) -> std::io::Result<File> {
        self.into_inner().map_err(|e| e.into_error())
    }
}

impl FinishWrite for flate2::write::GzEncoder<BufWriter<File>> {
    fn finish_file(self: Box<Self>) -> std::io::Result<File> {
        Box::new((*self).finish()?).finish_file()
    }
}

impl FinishWrite for zstd::stream::write::Encoder<'static, BufWriter<File>> {
    fn finish_file(self: Box<Self>) -> std::io::Result<File> {
        Box::new((*self).finish()?).finish_file()
    }
}

/// A temporary file beside its destination, renamed onto it by [`AtomicFile::commit`]; dropped
/// uncommitted (an error, Ctrl-C), it is removed.
#[derive(Debug)]
pub struct AtomicFile {
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Refuses to replace an existing file unless `force`.
    pub fn create(dest: &Path, force: bool) -> Result<(AtomicFile, File), Error> {
        if dest.exists() && !force {
            return Err(Error::InvalidInput(format!("{} exists; use --force to replace it", dest.display())));
        }
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .ok_or_else(|| Error::InvalidInput(format!("{}: not a file name", dest.display())))?;
        // Unique within the process too: two outputs of one job never share a temporary file.
        static CREATED: AtomicU64 = AtomicU64::new(0);
        let n = CREATED.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{}.{}-{n}.tmp", name.to_string_lossy(), std::process::id()));
        let file = File::create(&temp).map_err(|e| Error::io(temp.display().to_string(), e))?;
        Ok((AtomicFile { temp, dest: dest.to_path_buf(), committed: false }, file))
    }

    pub fn temp(&self) -> &Path {
        &self.temp
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    pub fn commit(mut self) -> Result<(), Error> {
        std::fs::rename(&self.temp, &self.dest).map_err(|e| Error::io(self.dest.display().to_string(), e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Refuses an output that is one of the inputs (the input is never modified).
pub fn check_not_an_input(dest: &Path, sources: &[Source]) -> Result<(), Error> {
    let dest_real = dest.canonicalize().ok();
    for source in sources {
        if let Source::Path(p) = source {
            if p == dest || (dest_real.is_some() && p.canonicalize().ok() == dest_real) {
                return Err(Error::InvalidInput(format!(
                    "output {} is also an input; choose another path",
                    dest.display()
                )));
            }
        }
    }
    Ok(())
}

/// A new output file of lines: refused when it is an input or exists (unless `force`), compressed
/// by its extension, written to a temporary file that [`OutputFile::finish`] completes and syncs.
/// Dropped unfinished (an error, Ctrl-C), it leaves nothing behind.
pub(crate) struct OutputFile {
    atomic: AtomicFile,
    writer: Box<dyn FinishWrite>,
    name: String,
}

impl OutputFile {
    pub(crate) fn create(dest: &Path, sources: &[Source], force: bool) -> Result<OutputFile, Error> {
        check_not_an_input(dest, sources)?;
        let (atomic, file) = AtomicFile::create(dest, force)?;
        Ok(OutputFile { atomic, writer: encoder(dest, file)?, name: dest.display().to_string() })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.writer.write_all(bytes).map_err(|e| Error::io(self.name.clone(), e))
    }

    /// The complete file, on disk but not yet in place: the caller commits it.
    pub(crate) fn finish(self) -> Result<AtomicFile, Error> {
        let file = self.writer.finish_file().map_err(|e| Error::io(self.name.clone(), e))?;
        file.sync_all().map_err(|e| Error::io(self.name, e))?;
        Ok(self.atomic)
    }
}

/// An input that could not be read to its end stops a writing job: its output would miss lines.
pub(crate) fn require_whole_input(
    sources: &[Source],
    file: usize,
    error: Option<String>,
) -> Result<(), Error> {
    match error {
        None => Ok(()),
        Some(error) => Err(Error::InvalidInput(format!("{}: {error}", sources[file].name()))),
    }
}

struct SelectKernel<'a> {
    /// Per file, the line numbers to drop, ascending.
    drop: &'a [Vec<u64>],
}

impl Kernel for SelectKernel<'_> {
    type Worker = ();
    type Output = (Vec<u8>, u64);

    fn worker(&self) {}

    /// The kept lines of the chunk, each with its original terminator (a final line without one
    /// gets `\n`, so that the lines of the next file do not join it), and how many there are.
    fn process(&self, _: &mut (), chunk: &LinesChunk) -> (Vec<u8>, u64) {
        let drop = &self.drop[chunk.file];
        let mut next_drop = drop.partition_point(|&l| l < chunk.first_line);
        let mut out = Vec::with_capacity(chunk.data.len());
        let mut kept = 0;
        let mut line = chunk.first_line;
        let mut start = 0;
        let data = &chunk.data;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i + 1);
            if drop.get(next_drop) == Some(&line) {
                next_drop += 1;
            } else {
                out.extend_from_slice(&data[start..end]);
                if !data[start..end].ends_with(b"\n") {
                    out.push(b'\n');
                }
                kept += 1;
            }
            line += 1;
            start = end;
        }
        (out, kept)
    }
}

/// What a write did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    pub lines_read: u64,
    pub lines_written: u64,
}

/// Copies every line of `sources` except those in `drop` (per file, ascending line numbers) to a
/// temporary file beside `dest`, returned complete for the caller to commit. Lines over the length
/// limit cannot be copied (they were never held in memory): they are an error unless they are dropped.
pub fn write_lines(
    sources: &[Source],
    drop: &[Vec<u64>],
    dest: &Path,
    force: bool,
    run_options: &RunOptions,
) -> Result<(WriteSummary, AtomicFile), Error> {
    let mut output = OutputFile::create(dest, sources, force)?;
    let mut summary = WriteSummary::default();
    run(sources, run_options, &SelectKernel { drop }, |event| {
        match event {
            Event::Lines { output: (bytes, kept), .. } => {
                output.write(&bytes)?;
                summary.lines_written += kept;
            }
            Event::LineTooLong { file, line, .. } if drop[file].binary_search(&line).is_err() => {
                return Err(Error::InvalidInput(format!(
                    "{}:{line}: the line is over --max-line-bytes and cannot be copied; raise the limit or drop it",
                    sources[file].name()
                )));
            }
            Event::FileEnd { file, lines, error, .. } => {
                summary.lines_read += lines;
                require_whole_input(sources, file, error)?;
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok((summary, output.finish()?))
}

struct PickKernel<'a> {
    /// Per file, the line numbers wanted, ascending.
    wanted: &'a [Vec<u64>],
}

impl Kernel for PickKernel<'_> {
    type Worker = ();
    type Output = Vec<(u64, Vec<u8>)>;

    fn worker(&self) {}

    fn process(&self, _: &mut (), chunk: &LinesChunk) -> Self::Output {
        let mut out = Vec::new();
        chunk.for_each_wanted_line(&self.wanted[chunk.file], |line, bytes| out.push((line, bytes.to_vec())));
        out
    }
}

/// The content of the `wanted` lines (per file, ascending line numbers) as (file, line, bytes), in
/// input order; for showing records to people (reports), not for copying them.
pub fn read_lines(
    sources: &[Source],
    wanted: &[Vec<u64>],
    run_options: &RunOptions,
) -> Result<Vec<(usize, u64, Vec<u8>)>, Error> {
    let mut found = Vec::new();
    run(sources, run_options, &PickKernel { wanted }, |event| {
        if let Event::Lines { chunk, output } = event {
            found.extend(output.into_iter().map(|(line, bytes)| (chunk.file, line, bytes)));
        }
        Ok(())
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_byte_for_byte_and_refuses_to_overwrite() {
        let dir = std::env::temp_dir().join(format!("tokenlens-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("in.jsonl");
        std::fs::write(&input, b"a\r\nb\n\nc\nlast").unwrap();
        let sources = [Source::Path(input.clone())];
        for (chunk_size, out) in [(1, "out1.jsonl"), (1 << 20, "out2.jsonl")] {
            let run = RunOptions {
                read: crate::reader::ReadOptions { chunk_size, ..Default::default() },
                ..Default::default()
            };
            let dest = dir.join(out);
            let _ = std::fs::remove_file(&dest);
            let (summary, file) = write_lines(&sources, &[vec![2, 4]], &dest, false, &run).unwrap();
            assert_eq!(summary, WriteSummary { lines_read: 5, lines_written: 3 });
            assert!(!dest.exists(), "in place only once committed");
            file.commit().unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), b"a\r\n\nlast\n");
            assert!(write_lines(&sources, &[vec![]], &dest, false, &run).is_err());
        }
        let err = write_lines(&sources, &[vec![]], &input, true, &RunOptions::default()).unwrap_err();
        assert!(err.to_string().contains("also an input"), "{err}");
        assert_eq!(std::fs::read(&input).unwrap(), b"a\r\nb\n\nc\nlast");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
