/**
 * The gateway as a real child process (`node dist/cli/main.js gateway ...`), as it runs on
 * a board: its JSON log lines collected, killed with the signal a test asks for. Used by the
 * loop harness (loop/), the end-to-end tests and the benchmarks.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { basename, dirname, join } from 'node:path'
import { waitUntil } from './wait.js'

// Compiled, this file is dist/device-sim/gateway-process.js; under vitest it runs from the
// source, device-sim/. The gateway is dist/cli/main.js either way.
const compiled = basename(dirname(import.meta.dirname)) === 'dist'
const BIN = join(import.meta.dirname, '..', ...(compiled ? [] : ['dist']), 'cli', 'main.js')

export interface LogLine {
  level: string
  msg: string
  [k: string]: unknown
}

export interface GatewayProcess {
  /** Its log lines, in order (only the last `keepLines` of them when that is set). */
  readonly logs: LogLine[]
  readonly child: ChildProcess
  /** The last 16 kB it wrote on stderr. */
  readonly stderr: string
  /** Resolves with the exit code (or the signal name). */
  readonly exited: Promise<number | string>
  waitForLog(pred: (l: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>
  kill(signal?: NodeJS.Signals): Promise<number | string>
}

export interface GatewayOutput {
  /** Everything it writes, stdout and stderr, as it comes (a log file of a long run). */
  onOutput?: (text: string) => void
  /**
   * Keep only the last this many log lines in `logs` (a run of hours). Default: all of
   * them, so that a test can find a line and its place among the others.
   */
  keepLines?: number
  /**
   * The command that runs `steppelink` instead of this node on dist/cli/main.js (then
   * `nodeArgs` are not used): an installed bundle's bin/steppelink, behind `ip netns exec`.
   */
  launcher?: readonly string[]
}

/** How much of its stderr a GatewayProcess keeps, characters. */
const STDERR_TAIL = 16_000

/**
 * `nodeArgs` go to node itself, before the script: V8 flags such as `--lite-mode`, which
 * NODE_OPTIONS refuses.
 */
export function startGateway(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: readonly string[] = [], output: GatewayOutput = {}): GatewayProcess {
  const [cmd, ...pre] = output.launcher ?? [process.execPath, ...nodeArgs, BIN]
  const child = spawn(cmd!, [...pre, 'gateway', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: LogLine[] = []
  const keep = output.keepLines ?? Infinity
  let partial = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    output.onOutput?.(chunk)
    partial += chunk
    const lines = partial.split('\n')
    partial = lines.pop()!
    for (const l of lines) {
      if (!l.trim()) continue
      try {
        logs.push(JSON.parse(l) as LogLine)
      } catch {
        logs.push({ level: 'raw', msg: l })
      }
    }
    // Dropped in chunks, so that a long run does not shift the array at every line.
    if (logs.length > 2 * keep) logs.splice(0, logs.length - keep)
  })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    output.onOutput?.(c)
    stderr = (stderr + c).slice(-STDERR_TAIL)
  })
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  return {
    logs,
    child,
    get stderr() {
      return stderr
    },
    exited,
    async waitForLog(pred, what, timeoutMs = 15_000) {
      await waitUntil(() => logs.some(pred) || child.exitCode !== null, { timeoutMs, what: `gateway log: ${what}` })
      const found = logs.find(pred)
      if (!found) throw new Error(`gateway exited (${child.exitCode}) before ${what}; stderr: ${stderr}; last logs: ${JSON.stringify(logs.slice(-5))}`)
      return found
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}
