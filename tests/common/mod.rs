//! What the command-line tests share: running the `cnntui` binary as a person would (from the
//! repository root, without `RUST_BACKTRACE`), asserting how it ended, and scratch directories.
//! Each test file that runs the binary includes it with `mod common;`.

#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;

/// How one run of the binary ended.
pub struct Run {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cnntui ARGS...` in the repository root.
pub fn cnntui(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_cnntui"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the cnntui binary runs");
    Run {
        what: format!("cnntui {}", args.join(" ")),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    /// Exit status 2 (bad input), no panic, and every needle in stderr.
    #[track_caller]
    pub fn assert_bad_input(&self, needles: &[&str]) {
        let mut problems = Vec::new();
        if self.code != Some(2) {
            problems.push(format!("exit status {:?}, expected Some(2)", self.code));
        }
        if self.stderr.contains("panicked") {
            problems.push("it panicked".to_string());
        }
        for n in needles {
            if !self.stderr.contains(n) {
                problems.push(format!("stderr lacks {n:?}"));
            }
        }
        assert!(
            problems.is_empty(),
            "{}: {}\n--- stderr ---\n{}",
            self.what,
            problems.join("; "),
            self.stderr
        );
    }

    /// Exit status 0.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
    }
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after the test file's `tag`.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("cnntui-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    /// Writes `bytes` to `name` inside; returns the path as a string.
    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("writes");
        Self::string(&p)
    }

    /// `name` inside, as a string.
    pub fn path(&self, name: &str) -> String {
        Self::string(&self.0.join(name))
    }

    fn string(p: &Path) -> String {
        p.to_str().expect("UTF-8 temp path").to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `rel` under the repository root, absolute, as a string (for model files written to a
/// scratch directory that point back at the repository's data).
pub fn repo(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .to_str()
        .expect("UTF-8 path")
        .to_string()
}
