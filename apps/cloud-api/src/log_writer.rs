//! The log's writer: requests never wait for stderr, and lines leave in
//! batches.
//!
//! A log line is appended to a shared buffer (a lock and a copy) and a
//! writer thread writes whatever has gathered with one `write(2)`. Under
//! load the thread writes at most once per [`PAUSE`], so hundreds of lines
//! leave in one system call and the thread is woken at most that often; at
//! rest it waits, and the first line wakes it at once. Measured against
//! `tracing_appender::non_blocking` (a channel message, an allocation and
//! possibly a wake-up per line, and one write per line), which moved the
//! write off the request's thread without lowering the CPU a logged
//! request costs (bench/README.md, "The default configuration").
//!
//! Lossless: when [`LIMIT`] bytes are waiting, the logging thread waits
//! for the writer instead of dropping lines, so the access log is complete
//! (and a server that outruns its log that far is slowed to the log's
//! pace, as a synchronous writer always slows it). [`FlushGuard`] writes
//! what is left when dropped: keep it until exit.
//!
//! ```
//! use std::io::Write;
//!
//! let (log, guard) = cloud_api::log_writer::LogWriter::new(Vec::<u8>::new());
//! (&log).write_all(b"one line\n").unwrap();
//! drop(guard); // everything written so far has reached the Vec
//! ```

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes that may wait for the writer before a logging thread waits too.
pub const LIMIT: usize = 4 << 20;

/// How long the writer lets lines gather after a write.
pub const PAUSE: Duration = Duration::from_millis(5);

struct State {
    pending: Vec<u8>,
    /// The writer thread waits for a first line.
    idle: bool,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: a first line, or closing.
    work: Condvar,
    /// Wakes loggers waiting for room.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only bytes behind: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where log lines go: cheap to clone, shared by every thread that logs.
/// `&LogWriter` implements [`Write`] (one call per line, as
/// `tracing_subscriber::fmt` writes) and [`LogWriter`] is its `MakeWriter`.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Stops the writer thread once it has written everything (on drop).
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// A writer for `out` (stderr, in `cloud-api`) and the guard that
    /// flushes it; starts the writer thread.
    pub fn new<W: Write + Send + 'static>(out: W) -> (LogWriter, FlushGuard) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(64 * 1024),
                idle: false,
                closed: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("cloud-api-log".into())
            .spawn({
                let shared = shared.clone();
                move || write_loop(&shared, out)
            })
            .ok();
        (
            LogWriter {
                shared: shared.clone(),
            },
            FlushGuard { shared, thread },
        )
    }
}

fn write_loop<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        {
            let mut state = shared.lock();
            while state.pending.is_empty() && !state.closed {
                state.idle = true;
                state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            state.idle = false;
            if state.pending.is_empty() {
                return; // closed, and everything written
            }
            std::mem::swap(&mut state.pending, &mut batch);
            shared.room.notify_all();
        }
        // A log that cannot be written is not a reason to stop serving.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if !shared.lock().closed {
            std::thread::sleep(PAUSE);
        }
    }
}

impl Write for &LogWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let shared = &self.shared;
        let mut state = shared.lock();
        while state.pending.len() >= LIMIT && !state.closed {
            state = shared.room.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.pending.extend_from_slice(bytes);
        if state.idle {
            state.idle = false;
            shared.work.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = &'a LogWriter;

    fn make_writer(&'a self) -> &'a LogWriter {
        self
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{Sender, channel};

    /// Counts what reaches the output: each `write` call as one message.
    struct Sink(Sender<Vec<u8>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_reaches_the_output_while_running() {
        let (send, received) = channel();
        let (log, _guard) = LogWriter::new(Sink(send));
        (&log).write_all(b"first\n").unwrap();
        let got = received.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, b"first\n");
    }

    #[test]
    fn every_line_of_every_thread_is_written_in_order_by_the_guard() {
        let (send, received) = channel();
        let (log, guard) = LogWriter::new(Sink(send));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for n in 0..5_000 {
                        (&log).write_all(format!("{t} {n}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let writes: Vec<Vec<u8>> = received.try_iter().collect();
        let text = String::from_utf8(writes.concat()).unwrap();
        let mut next = [0u32; 4];
        for line in text.lines() {
            let (t, n) = line.split_once(' ').unwrap();
            let (t, n): (usize, u32) = (t.parse().unwrap(), n.parse().unwrap());
            assert_eq!(n, next[t], "thread {t}'s lines in order");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
        // Batched: far fewer writes than lines.
        assert!(writes.len() < 20_000, "{} writes", writes.len());
    }
}
