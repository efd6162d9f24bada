//! One thread for all libtorch work of the process.
//!
//! libgomp gives each thread that starts a parallel region its own team of workers; once the
//! workers of all teams outnumber the cores it stops spinning between regions and sleeps instead,
//! and every one of a training step's hundreds of small parallel ops then pays a futex wake-up.
//! Measured on 2 cores (32px, 8 features, batch 32): 11.9 ms per step from one thread, 28 ms when
//! steps ran on whichever libuv pool thread was free. So callers hand their work to this thread.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, sync_channel, Sender};
use std::sync::{Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// Keeps freed memory in the heap for reuse instead of handing it back to the kernel.
///
/// libtorch frees and reallocates every activation each step; with glibc's defaults the large ones
/// are mmapped (or the heap is trimmed) and every step page-faults them in again: 12% of the time
/// of a 32×32, batch-128 step went to the kernel. Measured on 2 cores: 185 → 151 ms per step there,
/// 10.6 → 9.9 ms at 32×32, batch 32. The cost is that the process keeps its peak heap. Process-wide,
/// so `DCGAN_MALLOC_TUNING=0` turns it off.
/// The data loader calls it too: its batches are fresh multi-megabyte buffers every time.
pub fn tune_malloc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if !crate::env_switch("DCGAN_MALLOC_TUNING", true) {
            return;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    });
}

fn sender() -> Result<&'static Mutex<Sender<Job>>, String> {
    static SENDER: OnceLock<Result<Mutex<Sender<Job>>, String>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            tune_malloc();
            let (tx, rx) = channel::<Job>();
            std::thread::Builder::new()
                .name("dcgan-torch".into())
                .spawn(move || {
                    for job in rx {
                        // A job catches its own panics (see `run`); this only keeps the thread alive.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                })
                .map_err(|e| format!("cannot start the libtorch thread: {e}"))?;
            Ok(Mutex::new(tx))
        })
        .as_ref()
        .map_err(|e| e.clone())
}

/// Queues `f` on the libtorch thread without waiting. Jobs run in the order they were queued.
pub fn spawn(f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    sender()?
        .lock()
        .map_err(|_| "the libtorch thread is unavailable".to_string())?
        .send(Box::new(f))
        .map_err(|_| "the libtorch thread has stopped".to_string())
}

/// Runs `f` on the libtorch thread and waits for its result. A panic in `f` comes back as `Err`
/// with its message instead of unwinding.
pub fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = sync_channel(1);
    let job: Job = Box::new(move || {
        let result = catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into())
        });
        let _ = tx.send(result);
    });
    sender()?
        .lock()
        .map_err(|_| "the libtorch thread is unavailable".to_string())?
        .send(job)
        .map_err(|_| "the libtorch thread has stopped".to_string())?;
    rx.recv().map_err(|_| "the libtorch thread has stopped".to_string())?
}
