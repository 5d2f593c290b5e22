/**
 * What the end-to-end tests need from the machine: external tools, and a way to wait for
 * real I/O without guessing how long it takes.
 *
 * A missing tool fails the test with the one line that installs it. Tests never skip
 * themselves: a suite that passes because nothing ran is worse than a red one.
 */

import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

export type Tool = 'socat' | 'mosquitto'

/** Debian/Ubuntu package that provides each tool. */
const PACKAGE: Record<Tool, string> = {
  socat: 'socat',
  mosquitto: 'mosquitto',
}

/**
 * Directories searched after $PATH: Debian installs mosquitto in /usr/sbin, which is not on
 * an ordinary user's PATH.
 */
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin', '/bin']

/**
 * The absolute path of `name`, or an Error whose message is exactly the line that
 * installs it, e.g. `apt-get update && apt-get install -y socat`.
 * `dirs` replaces the search path (tests of this function).
 */
export function requireTool(name: Tool, opts: { dirs?: readonly string[] } = {}): string {
  const dirs = opts.dirs ?? [...(process.env['PATH'] ?? '').split(delimiter), ...EXTRA_DIRS]
  for (const dir of dirs) {
    if (dir === '') continue
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // Not in this directory; try the next.
    }
  }
  throw new Error(`apt-get update && apt-get install -y ${PACKAGE[name]}`)
}

export interface WaitOptions {
  /** Give up after this long, ms. Default 5,000. */
  timeoutMs?: number
  /** Check this often, ms. Default 5. */
  intervalMs?: number
  /** What is awaited, for the timeout message. */
  what?: string
}

/**
 * Resolves as soon as `condition()` is true; rejects after `timeoutMs`. For waiting on real
 * processes and devices, whose timing is not ours: the test takes as long as the I/O does,
 * no fixed sleep. Uses real timers: do not call it under vi.useFakeTimers().
 */
export async function waitUntil(condition: () => boolean, opts: WaitOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 5000
  const intervalMs = opts.intervalMs ?? 5
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (condition()) return
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'a condition'}`)
    }
    await new Promise<void>((resolve) => setTimeout(resolve, intervalMs))
  }
}
