//! The `cnntui` binary: parses the command line, runs it, prints the error chain and sets the
//! exit code (2 for bad input, 1 for anything else).

fn main() {
    std::process::exit(cnntui_cli::run());
}

#[path = "cli.rs"]
mod cnntui_cli;
