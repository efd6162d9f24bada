import { existsSync, readdirSync, rmSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'

/** Checkpoint files are `step-00001234.safetensors` in a run's `checkpoints/` folder. */
const NAME = /^step-(\d+)\.safetensors$/

/** The folder a run keeps its checkpoints in: `runDir/checkpoints`. */
export function checkpointDir(runDir: string): string {
  return join(runDir, 'checkpoints')
}

/** The file of the checkpoint at `step`; the zero padding makes names sort by step. */
export function checkpointPath(runDir: string, step: number): string {
  return join(checkpointDir(runDir), `step-${String(step).padStart(8, '0')}.safetensors`)
}

/** The checkpoints of a run, oldest first. Unfinished temporary files (dot files) are not listed. */
export function listCheckpoints(runDir: string): Array<{
  /** The training step it was written at, read from the file name. */
  step: number;
  /** The checkpoint file, under `runDir`. */
  path: string
}> {
  const dir = checkpointDir(runDir)
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .map((f) => ({ m: NAME.exec(f), f }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number(x.m![1]), path: join(dir, x.f) }))
    .sort((a, b) => a.step - b.step)
}

/**
 * A checkpoint file from a run folder (its latest checkpoint) or a checkpoint file itself.
 * Throws naming the path when there is none.
 */
export function findCheckpoint(pathOrRun: string): string {
  if (!existsSync(pathOrRun)) throw new Error(`${pathOrRun}: no such file or folder`)
  if (statSync(pathOrRun).isFile()) return pathOrRun
  const all = listCheckpoints(pathOrRun)
  if (all.length === 0) throw new Error(`${pathOrRun}: holds no checkpoints (expected ${join(checkpointDir(pathOrRun), 'step-*.safetensors')})`)
  return all[all.length - 1].path
}

/** Deletes all but the newest `keep` checkpoints, and temporary files left by an interrupted write. */
export function pruneCheckpoints(runDir: string, keep: number): void {
  const all = listCheckpoints(runDir)
  for (const c of all.slice(0, Math.max(0, all.length - keep))) rmSync(c.path, { force: true })
  const dir = checkpointDir(runDir)
  if (!existsSync(dir)) return
  for (const f of readdirSync(dir)) {
    const m = /^\.(.+)\.tmp-(\d+)$/.exec(f)
    if (m && !isAlive(Number(m[2]))) rmSync(join(dir, f), { force: true })
  }
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The step in a checkpoint file's name, or null when the name is not a checkpoint's. */
export function stepOf(path: string): number | null {
  const m = NAME.exec(basename(path))
  return m ? Number(m[1]) : null
}
