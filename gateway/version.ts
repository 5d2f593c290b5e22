/**
 * This program's version, from its package.json: the gateway's status and log, `steppelink
 * --version`, and `steppelink selftest`. Its own module, loading nothing else, so that the
 * command line's help and the self-test (whose point is to report a native module that
 * will not load) can ask without loading the gateway.
 */

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }
    return pkg.version
  } catch {
    return 'unknown'
  }
}
