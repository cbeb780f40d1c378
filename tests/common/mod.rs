//! What the command-line tests share: running the `cnntui` binary as a person would (from the
//! repository root, without `RUST_BACKTRACE` or `NO_COLOR`), asserting how it ended, and
//! scratch directories. A test file includes it with `mod common;`; checks that only one file
//! makes stay in that file.

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

/// Runs `cnntui ARGS...` in the repository root. Without `RUST_BACKTRACE` a panic prints its
/// one-line hint, which the assertions look for; without `NO_COLOR` output off a terminal is
/// plain because the binary sees no terminal, not because colour was switched off.
pub fn cnntui(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_cnntui"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_BACKTRACE")
        .env_remove("NO_COLOR")
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
    pub fn assert_bad_input(&self, needles: &[&str]) -> &Self {
        self.assert_exit(2, needles)
    }

    /// Exit status `code`, no panic (neither `panicked` nor the `RUST_BACKTRACE` hint in
    /// stderr), and every needle in stderr. All problems are reported at once, with the whole
    /// output, so a failing case shows what a person sees.
    #[track_caller]
    pub fn assert_exit(&self, code: i32, needles: &[&str]) -> &Self {
        let mut problems = Vec::new();
        if self.code != Some(code) {
            problems.push(format!(
                "exit status {:?}, expected Some({code})",
                self.code
            ));
        }
        for forbidden in ["panicked", "RUST_BACKTRACE"] {
            if self.stderr.contains(forbidden) {
                problems.push(format!("stderr contains `{forbidden}`"));
            }
        }
        for needle in needles {
            if !self.stderr.contains(needle) {
                problems.push(format!("stderr lacks `{needle}`"));
            }
        }
        self.report(&problems);
        self
    }

    /// Exit status 0.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Fails with `problems` (if there are any), the command and its whole output.
    #[track_caller]
    pub fn report(&self, problems: &[String]) {
        assert!(
            problems.is_empty(),
            "{}\n  {}\n--- stderr ---\n{}--- stdout ---\n{}",
            self.what,
            problems.join("\n  "),
            self.stderr,
            self.stdout
        );
    }
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty `cnntui-TAG-PID` under the system temp dir; `tag` names the test file and
    /// the case (`"predict-evil"`), so that no two tests share a directory.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("cnntui-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    /// Writes `bytes` to `name` inside; returns the path as a string.
    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.join(name);
        std::fs::write(&p, bytes).expect("writes");
        Self::string(&p)
    }

    /// `name` inside, as a string.
    pub fn path(&self, name: &str) -> String {
        Self::string(&self.join(name))
    }

    /// `name` inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
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
