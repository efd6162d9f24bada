// The generated napi-rs binding (index.js / index.d.ts at the package root), loaded once.
// Everything else in src/ goes through this module.
export * from '../index'
