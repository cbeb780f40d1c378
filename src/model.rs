//! The model language: RON files under `models/` parsed into [`ModelSpec`].
//!
//! Owns the serde schema (the `*Spec` types), parsing, and parse errors with line:column and
//! the offending text. It checks only syntax and field names; every semantic check (sizes,
//! shapes, names, references) happens once, in lowering (`crate::ir::lower`).
//!
//! Must not depend on `ir`, `runtime` or `tui`.

mod error;
mod spec;

pub use error::{ModelError, nearest, suggest};

/// ` (did you mean `x`?)` for the nearest of `candidates` to `found`, or empty.
pub fn suggest_name<'a>(found: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    nearest(found, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}
pub use spec::*;

use std::path::{Path, PathBuf};

/// A parsed model file and where it came from (relative paths inside it resolve against
/// `dir`).
#[derive(Clone, Debug)]
pub struct ModelFile {
    pub path: PathBuf,
    pub source: String,
    pub spec: ModelSpec,
}

impl ModelFile {
    /// The directory relative paths in this file are resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Resolves a path written in this file: absolute paths stay, relative ones are tried
    /// against the file's directory first and then the current directory (so `data/mnist`
    /// works from the repository root and `../data` works from `models/`).
    pub fn resolve(&self, written: &str) -> PathBuf {
        let p = Path::new(written);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        let beside = self.dir().join(p);
        if beside.exists() {
            beside
        } else {
            p.to_path_buf()
        }
    }
}

fn ron_options() -> ron::Options {
    use ron::extensions::Extensions;
    ron::Options::default()
        .with_default_extension(Extensions::UNWRAP_VARIANT_NEWTYPES | Extensions::IMPLICIT_SOME)
}

/// Parses model source text; `path` is used for error messages only.
///
/// # Errors
/// [`ModelError::Syntax`] with line:column, the message and the offending line.
pub fn parse_str(path: &Path, source: &str) -> Result<ModelSpec, ModelError> {
    ron_options()
        .from_str::<ModelSpec>(source)
        .map_err(|e| ModelError::syntax(path, source, &e))
}

impl ModelFile {
    /// Parses model source that did not come from disk (tests, generated models); `path` is
    /// used for messages and to resolve relative paths.
    ///
    /// # Errors
    /// [`ModelError::Syntax`].
    pub fn from_source(path: &Path, source: &str) -> Result<Self, ModelError> {
        let spec = parse_str(path, source)?;
        Ok(ModelFile {
            path: path.to_path_buf(),
            source: source.to_string(),
            spec,
        })
    }
}

/// Reads and parses a model file.
///
/// # Errors
/// [`ModelError::Read`] when the file cannot be read, [`ModelError::Syntax`] when it does not
/// parse.
pub fn load(path: &Path) -> Result<ModelFile, ModelError> {
    let source = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    ModelFile::from_source(path, &source)
}
