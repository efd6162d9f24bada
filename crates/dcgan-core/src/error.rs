//! The one error type of the core: every failure says what was wrong and, where it can, how to fix it.

/// Errors of the DCGAN core. `Config` and `Input` come from the caller's values; `Torch` wraps a
/// libtorch exception; `File` names the file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {field}: {message}")]
    Config { field: String, message: String },
    #[error("{0}")]
    Input(String),
    /// Options that cannot be read at all: not JSON, not an object, unknown or missing fields.
    #[error("{0}")]
    Options(String),
    #[error("libtorch error: {}", first_lines(.0))]
    Torch(#[from] tch::TchError),
    /// Weights or losses became NaN or infinite.
    #[error("{0}")]
    NonFinite(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// A process group could not be joined, or a collective failed (a peer died, hung or left).
    #[error("{0}")]
    Distributed(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn config(field: &str, message: impl Into<String>) -> Self {
        Error::Config { field: field.to_string(), message: message.into() }
    }

    /// A stable code for each kind of error, which the binding puts on the JavaScript error
    /// (`error.code`) so that callers branch on it instead of on message text.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } | Error::Options(_) => "ERR_DCGAN_INVALID_OPTION",
            Error::Input(_) => "ERR_DCGAN_INVALID_INPUT",
            Error::Torch(_) => "ERR_DCGAN_TORCH",
            Error::NonFinite(_) => "ERR_DCGAN_NON_FINITE",
            Error::File { .. } => "ERR_DCGAN_FILE",
            Error::Distributed(_) => "ERR_DCGAN_DISTRIBUTED",
        }
    }

    pub fn file(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        Error::File { path: path.display().to_string(), message: message.to_string() }
    }
}

/// A libtorch message without the C++ backtrace that follows it.
fn first_lines(e: &tch::TchError) -> String {
    let text = e.to_string();
    let cut = ["\nException raised from", "\nframe #"].iter().filter_map(|m| text.find(m)).min().unwrap_or(text.len());
    text[..cut].trim_end().to_string()
}
