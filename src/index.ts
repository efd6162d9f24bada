/**
 * dcgan: train and use DCGANs (Radford et al.) from Node.js. The training step runs in Rust on
 * libtorch; this package gives it a typed API.
 * @packageDocumentation
 */
export * from './config'
export * from './dcgan'
export * from './datasets'
export * from './train-config'
export * from './trainer'
export * from './callbacks'
export { findCheckpoint, listCheckpoints } from './checkpoints'
export * from './sampling'
export * from './report'
export * from './eval'
