fn main() -> std::process::ExitCode {
    // SAFETY: first thing in `main`, before any other thread exists.
    unsafe { ferrotune::runtime::configure() };
    ferrotune::cli::main()
}
