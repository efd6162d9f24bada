/**
 * dcgan: train and use DCGANs (Radford et al.) from Node.js. The training step runs in Rust on
 * libtorch; this package gives it a typed API.
 * @packageDocumentation
 */
export * from './config'
export * from './dcgan'
export * from './datasets'
