//! Errors on their way to JavaScript. Each carries a stable `code` (set as `error.code` on the
//! JavaScript error) so that the TypeScript layer branches on the kind of failure, not on text.
use dcgan_core::Error as CoreError;
use napi::bindgen_prelude::*;

/// The code of a panic caught before it reached Node: a bug in this library, not in the input.
pub const INTERNAL: &str = "ERR_DCGAN_INTERNAL";

/// An error with its code, built anywhere and turned into a JavaScript error on the JS thread.
#[derive(Debug)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        Failure { code: e.code(), message: e.to_string() }
    }
}

impl Failure {
    /// A caller's value that is wrong (the same code as the core's input errors).
    pub fn input(message: impl Into<String>) -> Self {
        CoreError::Input(message.into()).into()
    }

    /// A thread of this library that could not be started or has stopped: not the caller's fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Failure { code: INTERNAL, message: message.into() }
    }

    /// A panic in `what`, caught: reported with its message instead of aborting Node.
    pub fn panic(what: &str, payload: Box<dyn std::any::Any + Send>) -> Self {
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Failure { code: INTERNAL, message: format!("internal error in {what}: {text}") }
    }

    /// The JavaScript `Error` with `message` and `code`; must run on the JavaScript thread.
    pub fn into_napi(self, env: &Env) -> Error {
        let build = || -> Result<Error> {
            let mut error = env.create_error(Error::from_reason(self.message.clone()))?;
            error.set_named_property("code", self.code)?;
            Ok(Error::from(error.to_unknown()))
        };
        build().unwrap_or_else(|_| Error::new(Status::GenericFailure, self.message))
    }
}

/// Converts a core result for a synchronous call, on the JavaScript thread.
pub fn sync<T>(env: &Env, r: dcgan_core::Result<T>) -> Result<T> {
    r.map_err(|e| Failure::from(e).into_napi(env))
}
