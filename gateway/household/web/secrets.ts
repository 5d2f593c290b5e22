/**
 * The page's PIN and the local API's token, each in a file of the data directory, mode
 * 0600: only the gateway's user (and root) can read them, and the command line on the box
 * reads them from there. Made at first start; written to a temporary file, synced and
 * renamed, so a power cut leaves the old file, the new one, or none, never half of one.
 */

import { randomBytes, randomInt } from 'node:crypto'
import { chmodSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'

/** The PIN the gateway made (when `household.pin` is not set). */
export const PIN_FILE = 'household-pin'
/** The bearer token of the local API (`steppelink status | relay | inbox`). */
export const TOKEN_FILE = 'household-api-token'

export const pinPath = (data: string) => join(data, PIN_FILE)
export const tokenPath = (data: string) => join(data, TOKEN_FILE)

export interface Secret {
  value: string
  /** Made just now (the first start), rather than read. */
  made: boolean
  /** A warning to log, e.g. the file was readable by others and was made 0600. */
  warning: string | null
}

/** A 6-digit PIN, uniformly random (leading zeros kept). */
export function makePin(): string {
  return String(randomInt(0, 1_000_000)).padStart(6, '0')
}

export function makeToken(): string {
  return randomBytes(32).toString('base64url')
}

/**
 * The secret in `path` if it is there and looks right (`valid`), else a new one made by
 * `make` and written 0600. Throws (with the file system's code) if the file can be
 * neither read nor written.
 */
export function readOrMakeSecret(path: string, valid: (s: string) => boolean, make: () => string): Secret {
  let warning: string | null = null
  try {
    const text = readFileSync(path, 'utf8').trim()
    if (valid(text)) {
      const mode = statSync(path).mode & 0o777
      if ((mode & 0o077) !== 0) {
        chmodSync(path, 0o600)
        warning = `${path} was readable by other users (mode ${mode.toString(8)}); made it 0600`
      }
      return { value: text, made: false, warning }
    }
    warning = `${path} did not hold a valid secret (a power cut during the first start?); made a new one`
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const value = make()
  writeSecret(path, value)
  return { value, made: true, warning }
}

export function writeSecret(path: string, value: string): void {
  const tmp = `${path}.tmp`
  const fd = openSync(tmp, 'w', 0o600)
  try {
    writeSync(fd, `${value}\n`)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  // The mode of openSync is masked by the umask; say it once more.
  chmodSync(tmp, 0o600)
  renameSync(tmp, path)
}

export const isPin = (s: string) => /^[0-9]{6,12}$/.test(s)
export const isToken = (s: string) => /^[A-Za-z0-9_-]{43}$/.test(s)
