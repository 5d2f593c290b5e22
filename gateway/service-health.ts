/**
 * Whether the gateway is healthy enough to feed systemd's watchdog (issue 14): a pure
 * judgement over what the gateway reports, told the time; no I/O, no timers. The notifier
 * (systemd-notify.ts) asks it at every watchdog ping and withholds the ping when it says no,
 * so that systemd restarts a wedged gateway, not only a dead one.
 *
 * The three rules, and why each restarts rather than waits:
 * 1. The store takes writes: the last write the gateway made (or the notifier's small probe)
 *    succeeded. A store that fails writes cannot keep the promise "stored before the
 *    terminal hears got it"; a restart reopens the file (a USB disk re-enumerated, a handle
 *    SQLite gave up on). A disk that stays broken keeps the gateway from starting, which
 *    systemd shows (`systemctl status`), and the terminal says "call 110 by phone".
 * 2. The serial reader is alive: the port is open, or it is being reopened within its own
 *    retry policy (io/serial-line.ts: waiting at most its longest backoff, an open that
 *    returns within `serialOpenTimeoutMs`). An unplugged terminal is NOT a reason to
 *    restart: the line reopens it by itself, and a restart would only drop the uplink.
 *    A line stuck in one state longer than its policy allows (an open that never returns
 *    in a wedged USB driver, a reopen timer that never fired) is.
 * 3. The event loop is not stalled: the longest delay measured since the last look is
 *    under `stallMs` (half the watchdog interval). A loop that hangs for good sends no ping
 *    anyway; this catches one that hangs for long stretches and comes back between them.
 */

import type { SerialState } from '../io/serial-line.js'

export interface HealthInputs {
  /** The store's last write failure, or null if its last write succeeded. */
  storeError: { at: number; message: string } | null
  /** The serial line's state and since when (ms), and its longest wait between reopens. */
  serial: { path: string; state: SerialState; since: number; maxBackoffMs: number }
  /** The longest event-loop delay measured since the last look, ms. */
  loopDelayMs: number
  /** Whether the uplink is online: said in the status, never a reason to restart (the uplink reconnects by itself). */
  uplinkOnline: boolean
}

export interface HealthPolicy {
  /** A loop delay longer than this withholds the ping, ms. Default: half the watchdog interval. */
  stallMs: number
  /** An open of the serial port taking longer than this is a wedged driver, ms. Default 30,000. */
  serialOpenTimeoutMs: number
  /** Slack on top of the serial line's longest backoff before a waiting line counts as stuck, ms. Default 10,000. */
  serialGraceMs: number
}

export const DEFAULT_SERIAL_OPEN_TIMEOUT_MS = 30_000
export const DEFAULT_SERIAL_GRACE_MS = 10_000

export type HealthProblem = 'STORE_WRITE_FAILED' | 'SERIAL_STUCK' | 'SERIAL_STOPPED' | 'LOOP_STALLED'

export type Health = { healthy: true; status: string } | { healthy: false; problems: { code: HealthProblem; text: string }[]; status: string }

const seconds = (ms: number) => `${Math.round(ms / 1000)} s`

/** The judgement at `now`, with a status line in plain words for `systemctl status`. */
export function judgeHealth(inputs: HealthInputs, now: number, policy: HealthPolicy): Health {
  const problems: { code: HealthProblem; text: string }[] = []
  const { storeError, serial, loopDelayMs } = inputs
  if (storeError !== null) {
    problems.push({ code: 'STORE_WRITE_FAILED', text: `the store's last write failed ${seconds(now - storeError.at)} ago (${storeError.message}): check the disk (steppelink doctor)` })
  }
  const inState = now - serial.since
  switch (serial.state) {
    case 'open':
      break
    case 'opening':
      if (inState > policy.serialOpenTimeoutMs) problems.push({ code: 'SERIAL_STUCK', text: `opening the serial port ${serial.path} has not returned for ${seconds(inState)} (a wedged USB driver?)` })
      break
    case 'waiting':
      if (inState > serial.maxBackoffMs + policy.serialGraceMs) problems.push({ code: 'SERIAL_STUCK', text: `the serial port ${serial.path} has not been retried for ${seconds(inState)}` })
      break
    case 'stopped':
      problems.push({ code: 'SERIAL_STOPPED', text: `the serial reader of ${serial.path} has stopped` })
      break
  }
  if (loopDelayMs > policy.stallMs) problems.push({ code: 'LOOP_STALLED', text: `the gateway did not run for ${seconds(loopDelayMs)} (its event loop stalled)` })
  if (problems.length > 0) return { healthy: false, problems, status: `UNHEALTHY, watchdog not fed: ${problems.map((p) => p.text).join('; ')}` }
  const line = serial.state === 'open' ? `serial port ${serial.path} open` : `serial port ${serial.path} not open, retrying (terminal unplugged?)`
  return { healthy: true, status: `running: store writable, ${line}, uplink ${inputs.uplinkOnline ? 'online' : 'offline (reconnecting)'}` }
}
