fn main() -> std::process::ExitCode {
    rollbook_cli::main()
}
