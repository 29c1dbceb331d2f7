//! `sque-host`: the binary. All of it lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    sque::cli::main()
}
