//! Promises settled by the thread that did the work. A napi `AsyncTask` parks a libuv pool thread
//! for as long as its work takes; work queued on the libtorch thread (see
//! dcgan_core::executor) would park one for the whole queue, and with four pool threads a few
//! concurrent calls would starve Node's own fs and dns work. Here the call returns a promise at
//! once and the libtorch thread (or a thread of the call's own) settles it.
use crate::errors::Failure;
use dcgan_core::executor;
use napi::bindgen_prelude::*;
use napi::JsDeferred;
use std::panic::{catch_unwind, AssertUnwindSafe};

type Resolver<J> = Box<dyn FnOnce(Env) -> Result<J> + Send>;

/// The settling half of a promise; it can be sent to any thread.
pub struct Settle<J: ToNapiValue + 'static>(JsDeferred<J, Resolver<J>>);

impl<J: ToNapiValue + 'static> Settle<J> {
    pub fn new(env: &Env) -> Result<(Settle<J>, Object<'_>)> {
        let (deferred, promise) = env.create_deferred::<J, Resolver<J>>()?;
        Ok((Settle(deferred), promise))
    }

    /// Resolves with `to_js(value)` or rejects with the failure; the conversion runs on the
    /// JavaScript thread.
    pub fn settle<T: Send + 'static>(self, outcome: std::result::Result<T, Failure>, to_js: impl FnOnce(Env, T) -> Result<J> + Send + 'static) {
        self.0.resolve(Box::new(move |env| match outcome {
            Ok(value) => to_js(env, value),
            Err(failure) => Err(failure.into_napi(&env)),
        }))
    }
}

/// Runs `work`, turning its error or panic into a `Failure`.
pub fn guarded<T>(what: &str, work: impl FnOnce() -> dcgan_core::Result<T>) -> std::result::Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(r) => r.map_err(Failure::from),
        Err(payload) => Err(Failure::panic(what, payload)),
    }
}

/// A promise of `work`'s result, run on the libtorch thread after everything queued before it.
pub fn on_torch_thread<'e, T: Send + 'static, J: ToNapiValue + 'static>(
    env: &'e Env,
    what: &'static str,
    work: impl FnOnce() -> dcgan_core::Result<T> + Send + 'static,
    to_js: impl FnOnce(Env, T) -> Result<J> + Send + 'static,
) -> Result<Object<'e>> {
    settled_by(env, what, work, to_js, executor::spawn)
}

/// A promise of `work`'s result, run on a thread of its own: for waiting and file work that
/// involves no libtorch (reading a dataset, writing a file).
pub fn on_own_thread<'e, T: Send + 'static, J: ToNapiValue + 'static>(
    env: &'e Env,
    what: &'static str,
    work: impl FnOnce() -> dcgan_core::Result<T> + Send + 'static,
    to_js: impl FnOnce(Env, T) -> Result<J> + Send + 'static,
) -> Result<Object<'e>> {
    settled_by(env, what, work, to_js, |job| {
        std::thread::Builder::new().name(format!("dcgan-{what}")).spawn(job).map(|_| ()).map_err(|e| format!("cannot start a thread for {what}: {e}"))
    })
}

type Job = Box<dyn FnOnce() + Send>;

/// A promise settled by the job that `start` runs: `work`, then the settling.
fn settled_by<'e, T: Send + 'static, J: ToNapiValue + 'static>(
    env: &'e Env,
    what: &'static str,
    work: impl FnOnce() -> dcgan_core::Result<T> + Send + 'static,
    to_js: impl FnOnce(Env, T) -> Result<J> + Send + 'static,
    start: impl FnOnce(Job) -> std::result::Result<(), String>,
) -> Result<Object<'e>> {
    let (settle, promise) = Settle::new(env)?;
    start(Box::new(move || settle.settle(guarded(what, work), to_js))).map_err(|e| Failure::internal(e).into_napi(env))?;
    Ok(promise)
}

/// `to_js` for values that convert as they are.
pub fn same<T: ToNapiValue>(_env: Env, value: T) -> Result<T> {
    Ok(value)
}
