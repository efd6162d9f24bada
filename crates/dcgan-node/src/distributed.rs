//! Data-parallel training: joining a process group, copying rank 0's state, leaving
//! (dcgan_core::distributed does the work; every call runs on the libtorch thread).
use crate::errors::sync;
use crate::model::NativeGan;
use crate::promise::{on_torch_thread, same};
use dcgan_core::distributed::{self, DistributedOptions};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Joins the process group that `optionsJson` describes (`{ rank, worldSize, masterAddr,
/// masterPort, timeout }`, torchrun's variables; rank 0 hosts the store): resolves once every
/// rank has joined, rejects with `ERR_DCGAN_DISTRIBUTED` after `timeout` seconds.
#[napi(ts_return_type = "Promise<void>")]
pub fn init_distributed<'e>(env: &'e Env, options_json: String) -> Result<Object<'e>> {
    let options = sync(env, DistributedOptions::from_json(&options_json))?;
    on_torch_thread(env, "initDistributed", move || distributed::init(&options), same)
}

/// Copies rank 0's weights, buffers, optimiser state and random generator to every rank.
#[napi(ts_return_type = "Promise<void>")]
pub fn distributed_sync<'e>(env: &'e Env, gan: &NativeGan) -> Result<Object<'e>> {
    gan.call(env, "distributedSync", same, distributed::sync_from_rank0)
}

/// What the ranks decided together at the start of a step.
#[napi(object)]
pub struct DistributedVerdict {
    /// Some rank asked to stop: every rank stops after the same step.
    pub stop: bool,
    /// Ranks that failed outside a step.
    pub failed: Vec<u32>,
    /// Ranks that refused their shard of the batch.
    pub refused: Vec<u32>,
}

/// This rank's vote at the start of a step when it has no batch to train on (its dataset ran
/// out: `stop`; it failed: `failed`), paired with the others' `trainStepInGroup`; this rank's own
/// without a group. Rejects with `ERR_DCGAN_DISTRIBUTED` when a rank is gone.
#[napi(ts_return_type = "Promise<DistributedVerdict>")]
pub fn distributed_vote<'e>(env: &'e Env, gan: &NativeGan, stop: bool, failed: bool) -> Result<Object<'e>> {
    let ballot = distributed::Ballot { stop, failed, refused: false };
    gan.call(
        env,
        "distributedVote",
        |_env, v: distributed::Verdict| {
            let ranks = |r: Vec<i64>| r.into_iter().map(|r| r as u32).collect();
            Ok(DistributedVerdict { stop: v.stop, failed: ranks(v.failed), refused: ranks(v.refused) })
        },
        move |g| distributed::step_vote(g, ballot),
    )
}

/// Waits for every rank, then leaves the group (a no-op when none was joined).
#[napi(ts_return_type = "Promise<void>")]
pub fn shutdown_distributed<'e>(env: &'e Env) -> Result<Object<'e>> {
    on_torch_thread(env, "shutdownDistributed", distributed::shutdown, same)
}
