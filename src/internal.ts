// Links between this package's modules that are not part of its API (index.ts does not export this).
import type { DCGAN } from './dcgan'
import type * as native from './native'

export const internals: {
  /** The native model behind a DCGAN; set by the DCGAN class. */
  nativeOf?: (gan: DCGAN) => native.NativeGan
} = {}
