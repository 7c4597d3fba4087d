//! The `angel-memory` binary: everything lives in the library; this only hands over to the CLI.

#[allow(unsafe_code)]
fn main() -> std::process::ExitCode {
    // SAFETY: the first statement of `main`: no other thread exists yet.
    unsafe { angel_memory::search::embed::local::settle_candle_threads() };
    angel_memory::cli::main()
}
