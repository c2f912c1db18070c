fn main() -> std::process::ExitCode {
    ferrotune::cli::main()
}
