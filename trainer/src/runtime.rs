//! Process-wide settings a training process needs before it does any work: how candle and rayon
//! share the cores, how the heap keeps the large tensor buffers each step allocates, and that
//! errors stay one line.

/// Applies the settings. Values the user set in the environment are kept.
///
/// # Safety
/// Sets environment variables: call it first in `main`, before any other thread exists.
pub unsafe fn configure() {
    configure_threads();
    keep_freed_buffers();
    quiet_error_backtraces();
}

/// candle attaches a backtrace to each of its errors whenever RUST_BACKTRACE is set, and prints
/// it as part of the message: a truncated model file would answer with dozens of stack frames
/// after its one line. RUST_LIB_BACKTRACE=0 stops errors capturing backtraces while panics still
/// print theirs under RUST_BACKTRACE.
fn quiet_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the caller of `configure` guarantees no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

/// candle runs large elementwise CPU ops on its own spinning thread pool beside rayon's, and
/// looks up the CPU count on every matrix product. With both pools on the same cores the
/// spinning costs a quarter of a training step, so elementwise ops stay on the calling thread
/// (the trainer's own kernels parallelise with rayon) and the thread count is fixed once.
fn configure_threads() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (key, value) in [
        ("CANDLE_NUM_THREADS", "1".to_string()),
        ("RAYON_NUM_THREADS", threads.to_string()),
    ] {
        if std::env::var_os(key).is_none() {
            // SAFETY: the caller of `configure` guarantees no other thread exists yet.
            unsafe { std::env::set_var(key, value) };
        }
    }
}

/// glibc returns large freed blocks to the kernel (unmapped, or trimmed off the heap top), so the
/// next step's activations land on fresh pages that the kernel must zero first: a sixth of a
/// CPU training step went to page faults. Buffers up to glibc's largest mmap threshold (32 MiB)
/// now come from the heap, and the heap is never trimmed, so each step reuses the last one's
/// pages; the peak resident memory stays what it was.
fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const LARGEST_MMAP_THRESHOLD: libc::c_int = 32 << 20;
        // SAFETY: mallopt only changes allocator parameters; it is called before any allocation
        // of note, and glibc rejects out-of-range values by returning 0.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LARGEST_MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}
