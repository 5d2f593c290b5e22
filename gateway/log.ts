/**
 * The gateway's log: one JSON object per line on standard output, for journald
 * (`journalctl -u steppelink-gateway -o cat | jq`), e.g.
 *
 *   {"level":"info","time":"2025-01-15T08:30:00.123Z","terminal":3,"event":17,"msg":"alert stored"}
 *
 * - `level` is the label ("info"), not pino's number (30): readable with `grep` and `jq`
 *   by the center household or whoever is helping on the phone.
 * - `time` is ISO 8601 UTC. journald stamps each line too, but a line copied out of the
 *   journal (or read from a file when journald is not there) keeps its own time.
 * - No `pid` and `hostname`: journald records both (`_PID`, `_HOSTNAME`) for every line,
 *   and a board runs one gateway, so on each line they are only bytes on an SD card.
 * - Writes are synchronous: a line that was logged is in the kernel's hands even if the
 *   process is killed (SIGKILL, watchdog) right after. The gateway logs a few lines a
 *   minute, so the cost does not matter.
 * - Passwords are redacted wherever they appear in the fields (`password`, `*.password`,
 *   `*.*.password`, so a logged `{ config }` or `{ mqtt }` is safe too). Callers still
 *   pass `redact(config)`; this is the second line of defence.
 */

import pino from 'pino'
import type { LogLevel } from './config.js'

/** What the rest of the gateway logs with; a fake is easy to write for tests. */
export interface Logger {
  error(fields: object, msg: string): void
  warn(fields: object, msg: string): void
  info(fields: object, msg: string): void
  debug(fields: object, msg: string): void
  /** A logger that adds `bindings` to every line, e.g. `log.child({ terminal: 3 })`. */
  child(bindings: object): Logger
}

/** Where lines go: anything with a `write` taking one line (JSON and a newline). */
export interface LogDestination {
  write(line: string): void
}

export const REDACTED = '***'

/** Field paths whose values never reach the log. */
export const REDACT_PATHS = ['password', '*.password', '*.*.password', 'mqtt.password', 'config.mqtt.password', 'config.household.pin']

/**
 * A logger writing JSON lines at `level` and above to `destination` (default: standard
 * output, written synchronously).
 */
export function createLogger(level: LogLevel, destination: LogDestination = pino.destination({ dest: 1, sync: true })): Logger {
  return pino(
    {
      level,
      base: null, // no pid or hostname: journald has them
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    destination,
  )
}
