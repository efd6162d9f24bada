/**
 * The stable codes on errors thrown by dcgan (`error.code`). The native layer sets them; branch on
 * them, never on message text.
 */
export const ErrorCode = Object.freeze({
  /** An option, config field or argument (a count, a seed, a flag) is unknown, of the wrong type or out of range. */
  INVALID_OPTION: 'ERR_DCGAN_INVALID_OPTION',
  /** Data given to a call is wrong: a batch's shape or type, a non-finite value, a latent vector of the wrong length. */
  INVALID_INPUT: 'ERR_DCGAN_INVALID_INPUT',
  /** Weights or losses stopped being finite: training diverged. */
  NON_FINITE: 'ERR_DCGAN_NON_FINITE',
  /** A file could not be read or written, or is not what it should be (checkpoints included). */
  FILE: 'ERR_DCGAN_FILE',
  /** libtorch reported an error. */
  TORCH: 'ERR_DCGAN_TORCH',
  /** Distributed training: a process group could not be joined, or a rank died, hung or left. */
  DISTRIBUTED: 'ERR_DCGAN_DISTRIBUTED',
  /** A new run was asked to write into a folder that holds another run (resume it, or overwrite it). */
  RUN_EXISTS: 'ERR_DCGAN_RUN_EXISTS',
  /** Another trainer is writing to the same run folder. */
  RUN_LOCKED: 'ERR_DCGAN_RUN_LOCKED',
  /** The native addon or libtorch is missing or does not load (install scripts skipped, cache deleted): run `npm rebuild dcgan`. Set by src/native.ts. */
  NOT_INSTALLED: 'ERR_DCGAN_NOT_INSTALLED',
  /** A bug in dcgan caught before it could crash the process; please report it. */
  INTERNAL: 'ERR_DCGAN_INTERNAL',
})

/** One of the {@link ErrorCode} values. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode]

/** An error that carries one of dcgan's codes. */
export interface CodedError extends Error {
  /** One of {@link ErrorCode}. */
  code: ErrorCodeValue
}

/** Whether `e` is an error with dcgan's `code`. */
export function hasErrorCode(e: unknown, code: ErrorCodeValue): e is CodedError {
  return e instanceof Error && (e as Error & { code?: unknown }).code === code
}

/** A RangeError or TypeError (the class kept for callers that test it) with one of dcgan's codes. */
export function codedError(kind: typeof RangeError | typeof TypeError, code: ErrorCodeValue, message: string): CodedError {
  return Object.assign(new kind(message), { code })
}

/** An error with a dcgan code, for failures detected in TypeScript. */
export class DcganError extends Error {
  /** One of {@link ErrorCode}. */
  readonly code: ErrorCodeValue

  constructor(code: ErrorCodeValue, message: string) {
    super(message)
    this.name = 'DcganError'
    this.code = code
  }
}
