/**
 * dcgan: train and use DCGANs (Radford et al.) from Node.js. The training step runs in Rust on
 * libtorch; this package gives it a typed API.
 * @packageDocumentation
 */
export * from './config'
export * from './dcgan'
export * from './datasets'
export { distributedFromEnv, DistributedRun, launchLocal, PeerFailedError, type DistributedOptions, type LaunchOptions, type LaunchResult } from './distributed'
export * from './train-config'
export * from './trainer'
export * from './callbacks'
export { findCheckpoint, listCheckpoints, readCheckpointInfo, RunDir, type CheckpointInfo, type CheckpointTrainerState, type StepFile } from './run-dir'
export * from './errors'
export type { StepStats, TensorData } from './native'
export * from './sampling'
export * from './report'
export * from './eval'
export { exportOnnx, exportWeb, readOnnxInfo, type ExportOnnxOptions, type ExportWebOptions, type OnnxInfo, type OnnxTensorInfo, type SiteFile } from './export'
