//! The engine's error type. Problems with single lines are not errors: they become line verdicts.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// An input file or tokenizer file does not exist.
    NotFound(PathBuf),
    /// Reading or writing failed.
    Io { path: String, source: std::io::Error },
    /// A tokenizer could not be loaded or failed on a text.
    Tokenizer(String),
    /// The caller asked for something that cannot be done (bad option values).
    InvalidInput(String),
    /// The run was interrupted (Ctrl-C) before it finished.
    Interrupted,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound(path) => write!(f, "{}: no such file", path.display()),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::Tokenizer(msg) | Error::InvalidInput(msg) => f.write_str(msg),
            Error::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}
