fn main() -> std::process::ExitCode {
    configure_threads();
    ferrotune::cli::main()
}

/// candle runs large elementwise CPU ops on its own spinning thread pool beside rayon's, and
/// looks up the CPU count on every matrix product. With both pools on the same cores the
/// spinning costs a quarter of a training step, so elementwise ops stay on the calling thread
/// (the trainer's own kernels parallelise with rayon) and the thread count is fixed once.
/// Values the user set are kept.
fn configure_threads() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (key, value) in [
        ("CANDLE_NUM_THREADS", "1".to_string()),
        ("RAYON_NUM_THREADS", threads.to_string()),
    ] {
        if std::env::var_os(key).is_none() {
            // SAFETY: runs first in `main`, before any other thread exists.
            unsafe { std::env::set_var(key, value) };
        }
    }
}
