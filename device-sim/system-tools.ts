/**
 * External tools the simulators need from the machine (socat for pseudo-terminal pairs,
 * mosquitto as a second broker, openssl for the TLS tests' certificates). A missing tool is reported with the one line that
 * installs it.
 */

import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

export type Tool = 'socat' | 'mosquitto' | 'openssl'

/** Debian/Ubuntu package that provides each tool. */
const PACKAGE: Record<Tool, string> = {
  socat: 'socat',
  mosquitto: 'mosquitto',
  openssl: 'openssl',
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
  const dirs = opts.dirs ?? [...(process.env.PATH ?? '').split(delimiter), ...EXTRA_DIRS]
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
