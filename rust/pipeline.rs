//! The parallel driver: one reader thread, `threads` workers, results handed back in input order.
//!
//! Every job (count, scan, ...) is a [`Kernel`] that turns a chunk of lines into an output; the
//! caller's `sink` sees the outputs in input order, so results never depend on the thread count.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, RecvTimeoutError};

use crate::error::Error;
use crate::reader::{read_all, Compression, Item, LinesChunk, Progress, ReadOptions, Source};

/// How often a run checks for an interruption (Ctrl-C).
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Says when the next interruption check is due: once per [`CHECK_INTERVAL`].
pub struct CheckClock(Instant);

impl CheckClock {
    pub fn start() -> CheckClock {
        CheckClock(Instant::now())
    }

    /// True once [`CHECK_INTERVAL`] has passed since the start or the last time it said true.
    pub fn due(&mut self) -> bool {
        let due = self.0.elapsed() >= CHECK_INTERVAL;
        if due {
            self.0 = Instant::now();
        }
        due
    }
}

/// The per-chunk work of a job.
pub trait Kernel: Sync {
    /// Per-thread state (tokenizer caches, scratch buffers).
    type Worker: Send;
    type Output: Send;
    fn worker(&self) -> Self::Worker;
    fn process(&self, worker: &mut Self::Worker, chunk: &LinesChunk) -> Self::Output;
}

/// What the sink sees, in input order.
pub enum Event<O> {
    FileStart { file: usize, compression: Compression },
    Lines { chunk: LinesChunk, output: O },
    LineTooLong { file: usize, line: u64, offset: u64, len: u64 },
    FileEnd { file: usize, lines: u64, bytes: u64, error: Option<String> },
}

/// How to run a job.
pub struct RunOptions<'a> {
    pub threads: usize,
    pub read: ReadOptions,
    pub progress: Arc<Progress>,
    /// Called about every 100 ms from the calling thread; an error stops the run (Ctrl-C).
    pub check_interrupt: Option<&'a (dyn Fn() -> Result<(), Error> + Sync)>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            threads: default_threads(),
            read: ReadOptions::default(),
            progress: Default::default(),
            check_interrupt: None,
        }
    }
}

/// All available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `kernel` over `sources`, calling `sink` with each event in input order.
pub fn run<K: Kernel>(
    sources: &[Source],
    options: &RunOptions,
    kernel: &K,
    mut sink: impl FnMut(Event<K::Output>) -> Result<(), Error>,
) -> Result<(), Error> {
    let threads = options.threads.max(1);
    let total: u64 = sources.iter().filter_map(Source::size).sum();
    options.progress.bytes_total.store(total, Ordering::Relaxed);
    // At most `window` items are between the reader and the sink: this bounds memory even when
    // one slow chunk holds up the ones behind it.
    let window = threads * 4;
    let (credit_tx, credit_rx) = bounded::<()>(window);
    for _ in 0..window {
        credit_tx.send(()).expect("channel has room");
    }
    let (work_tx, work_rx) = bounded::<(u64, Item)>(window);
    let (done_tx, done_rx) = unbounded::<(u64, Event<K::Output>)>();
    // Dropping `stop_tx` tells the workers to stop without waiting for more work.
    let (stop_tx, stop_rx) = bounded::<()>(0);

    // The reader is not joined: it may be blocked reading a pipe (stdin) when the run is interrupted.
    // It ends by itself at its next read, when it finds the credit channel closed.
    let reader_sources = sources.to_vec();
    let read_options = options.read.clone();
    let progress = options.progress.clone();
    std::thread::spawn(move || {
        let mut seq = 0u64;
        read_all(&reader_sources, &read_options, &progress, |item| {
            if credit_rx.recv().is_err() {
                return false;
            }
            seq += 1;
            work_tx.send((seq, item)).is_ok()
        });
    });

    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (work_rx, stop_rx, done_tx) = (work_rx.clone(), stop_rx.clone(), done_tx.clone());
            let progress = &options.progress;
            scope.spawn(move || {
                let mut worker = kernel.worker();
                loop {
                    let (seq, item) = select! {
                        recv(work_rx) -> msg => match msg { Ok(m) => m, Err(_) => break },
                        recv(stop_rx) -> _ => break,
                    };
                    let event = match item {
                        Item::Lines(chunk) => {
                            let output = kernel.process(&mut worker, &chunk);
                            progress.lines_done.fetch_add(chunk.lines, Ordering::Relaxed);
                            Event::Lines { chunk, output }
                        }
                        Item::FileStart { file, compression } => Event::FileStart { file, compression },
                        Item::LineTooLong { file, line, offset, len } => {
                            Event::LineTooLong { file, line, offset, len }
                        }
                        Item::FileEnd { file, lines, bytes, error } => {
                            Event::FileEnd { file, lines, bytes, error }
                        }
                    };
                    if done_tx.send((seq, event)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        drop(work_rx);

        let result = deliver_in_order(&done_rx, &credit_tx, options, &mut sink);
        // Stop the workers and, at its next item, the reader.
        drop(stop_tx);
        drop(credit_tx);
        drop(done_rx);
        result
    })
}

fn deliver_in_order<O>(
    done_rx: &crossbeam_channel::Receiver<(u64, Event<O>)>,
    credit_tx: &crossbeam_channel::Sender<()>,
    options: &RunOptions,
    sink: &mut impl FnMut(Event<O>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut pending = BTreeMap::new();
    let mut next = 1u64;
    let mut clock = CheckClock::start();
    loop {
        if let Some(check) = options.check_interrupt.filter(|_| clock.due()) {
            check()?;
        }
        match done_rx.recv_timeout(CHECK_INTERVAL) {
            Ok((seq, event)) => {
                pending.insert(seq, event);
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while let Some(event) = pending.remove(&next) {
            sink(event)?;
            next += 1;
            // The reader may be gone already; a missing receiver is fine.
            let _ = credit_tx.try_send(());
        }
    }
    debug_assert!(pending.is_empty(), "every item is delivered");
    Ok(())
}
