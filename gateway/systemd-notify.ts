/**
 * The gateway as a `Type=notify` service with a watchdog (issue 14,
 * deploy/systemd/steppelink-gateway.service): READY=1 once the store is open and the serial
 * line and the uplink are started, STATUS= lines in plain words, STOPPING=1 at stop, and
 * WATCHDOG=1 at half of WATCHDOG_USEC, only while service-health.ts finds it healthy.
 * Without NOTIFY_SOCKET (not under systemd: a terminal, the tests, the demo) it does nothing.
 *
 * How the messages get out, and why the `systemd-notify` binary:
 * - The notify socket is a unix DATAGRAM socket. Node's `dgram` speaks only UDP, and `net`
 *   only stream sockets, so Node cannot send to it by itself.
 * - A native module (sd-notify and the like) would be one more thing to build for every
 *   board's CPU and Node.js, the very thing the offline bundle of issue 14 must keep few.
 * - `systemd-notify` ships with systemd itself: wherever NOTIFY_SOCKET is set, it is there.
 *   Since systemd 246 it waits (a BARRIER=1 round trip) until PID 1 has read the message,
 *   so the message is attributed to this service even though its sender exits at once
 *   (`--no-block` would give that up; not used). Its cost is one short process per ping:
 *   at WatchdogSec=30 one every 15 s, a few ms of CPU on a Pi.
 * - Its sender is its own PID, not the gateway's (pretending to be the gateway's PID needs
 *   CAP_SYS_ADMIN, which the service does not have, and systemd-notify falls back to its
 *   own), so the unit needs NotifyAccess=all. `--pid` is not used: it only adds MAINPID=,
 *   and systemd already knows the main PID, as it started node itself.
 * - python3 or socat could send too, but neither is on every board image.
 *
 * At most one systemd-notify runs at a time: a ping due while one is still running is
 * skipped (the next comes half an interval later), while READY, STATUS and STOPPING wait
 * their turn. A failure is logged once; the gateway runs on.
 */

import { execFile } from 'node:child_process'
import type { Timers } from '../io/timers.js'
import { judgeHealth, type Health, type HealthInputs, type HealthPolicy, DEFAULT_SERIAL_GRACE_MS, DEFAULT_SERIAL_OPEN_TIMEOUT_MS } from './service-health.js'

/** Sends one notify message (lines such as 'READY=1'); resolves when sent, rejects if it could not be. */
export type NotifySend = (lines: string[]) => Promise<void>

/** How long one systemd-notify may take (its barrier waits up to 5 s for PID 1), ms. */
export const NOTIFY_TIMEOUT_MS = 10_000

/**
 * The sender through the `systemd-notify` binary, or null when NOTIFY_SOCKET is not set.
 * `command`: the binary (default 'systemd-notify' on the PATH).
 */
export function systemdNotifySender(env: NodeJS.ProcessEnv, command = 'systemd-notify'): NotifySend | null {
  const socket = env.NOTIFY_SOCKET
  if (socket === undefined || socket === '') return null
  return (lines) =>
    new Promise<void>((resolve, reject) => {
      execFile(command, lines, { env: { ...env, NOTIFY_SOCKET: socket }, timeout: NOTIFY_TIMEOUT_MS }, (err, _stdout, stderr) => {
        if (err) reject(new Error(`${command} ${lines.join(' ')} failed: ${String(stderr).trim() || err.message}`))
        else resolve()
      })
    })
}

/**
 * The watchdog interval systemd asks for, ms (WATCHDOG_USEC), or null for none: unset, not
 * a positive number, or meant for another process (WATCHDOG_PID is not ours), as
 * sd_watchdog_enabled(3) reads them.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number = process.pid): number | null {
  const usec = Number(env.WATCHDOG_USEC)
  if (!Number.isFinite(usec) || usec <= 0) return null
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && Number(env.WATCHDOG_PID) !== pid) return null
  return usec / 1000
}

export interface ServiceNotifierOptions {
  /** null: not under systemd, do nothing. */
  send: NotifySend | null
  /** systemd's watchdog interval, ms (watchdogIntervalMs); null: no pings. Pings go at half of it. */
  watchdogMs: number | null
  /** What the gateway reports now; `loopDelayMs` is the longest delay since the last call. */
  health: () => HealthInputs
  /** A tiny store write (SqliteStore.probe): when nothing wrote for `probeEveryMs`, and after a failed write, to see whether it healed. */
  probeStore: () => void
  /** How often the store is probed when nothing else writes, ms. Default 3,600,000 (an hour: about 100 kB a day on the SD card). */
  probeEveryMs?: number
  /** Commits the store has made so far (SqliteStore.writes(): durable + lazy): a write of the gateway's own makes the probe unneeded. Default: none known, probe every probeEveryMs. */
  storeWrites?: () => number
  policy?: Partial<HealthPolicy>
  timers: Timers
  now: () => number
  /** A message could not be sent (logged once by the caller); the first argument is the error's text. */
  onSendError?: (message: string) => void
  /** The judgement changed (healthy to not, or the other way): for the log. */
  onHealthChange?: (health: Health) => void
}

/** Tells systemd the gateway's state and feeds its watchdog while healthy. */
export class ServiceNotifier {
  readonly #o: ServiceNotifierOptions
  readonly #policy: HealthPolicy
  readonly #probeEveryMs: number
  #timer: unknown = null
  #lastProbe: number
  #writesAtProbe = -1
  #lastStatus: string | null = null
  #lastHealthy: boolean | null = null
  #queue: Promise<void> = Promise.resolve()
  #pinging = false
  #stopped = false
  #errorSaid = false

  constructor(o: ServiceNotifierOptions) {
    this.#o = o
    const half = o.watchdogMs === null ? 30_000 : o.watchdogMs / 2
    this.#policy = { stallMs: half, serialOpenTimeoutMs: DEFAULT_SERIAL_OPEN_TIMEOUT_MS, serialGraceMs: DEFAULT_SERIAL_GRACE_MS, ...o.policy }
    this.#probeEveryMs = o.probeEveryMs ?? 3_600_000
    this.#lastProbe = o.now()
    this.#writesAtProbe = o.storeWrites?.() ?? -1
  }

  /** Whether anything is sent at all (under systemd). */
  get active(): boolean {
    return this.#o.send !== null
  }

  /** READY=1 with a status line; starts the pings. Call once the gateway is ready. */
  ready(): void {
    if (this.#o.send === null || this.#stopped) return
    const health = this.#judge()
    this.#lastStatus = health.status
    this.#enqueue(['READY=1', `STATUS=${oneLine(health.status)}`, ...(health.healthy && this.#o.watchdogMs !== null ? ['WATCHDOG=1'] : [])])
    this.#schedule()
  }

  /** STOPPING=1 and a last status; no more pings. Resolves once sent (or failed). */
  stopping(why: string): Promise<void> {
    if (this.#o.send === null) return Promise.resolve()
    this.#stopped = true
    this.#cancel()
    return this.#enqueue(['STOPPING=1', `STATUS=${oneLine(`stopping (${why}): death message, then close the port and the store`)}`])
  }

  /** One look, as the timer does every half interval: exported for tests with a fake clock. */
  tick(): void {
    if (this.#o.send === null || this.#stopped) return
    const health = this.#judge()
    const lines: string[] = []
    if (health.status !== this.#lastStatus) lines.push(`STATUS=${oneLine(health.status)}`)
    this.#lastStatus = health.status
    if (health.healthy && this.#o.watchdogMs !== null) {
      // A ping due while the last one is still being sent is skipped, not queued: a queue
      // of stale pings would feed the watchdog for a gateway that has since wedged.
      if (!this.#pinging) {
        this.#pinging = true
        void this.#enqueue([...lines, 'WATCHDOG=1']).finally(() => {
          this.#pinging = false
        })
      } else if (lines.length > 0) void this.#enqueue(lines)
    } else if (lines.length > 0) void this.#enqueue(lines)
    this.#schedule()
  }

  #judge(): Health {
    const now = this.#o.now()
    let inputs = this.#o.health()
    // After a failed write, and when nothing wrote for an hour, a tiny write says whether
    // the store takes writes now: a passing fault heals without a restart.
    if (inputs.storeError !== null || now - this.#lastProbe >= this.#probeEveryMs) {
      this.#lastProbe = now
      const writes = this.#o.storeWrites?.() ?? -1
      if (inputs.storeError !== null || writes === -1 || writes === this.#writesAtProbe) {
        this.#o.probeStore()
        inputs = { ...inputs, storeError: this.#o.health().storeError }
      }
      this.#writesAtProbe = this.#o.storeWrites?.() ?? -1
    }
    const health = judgeHealth(inputs, now, this.#policy)
    if (this.#lastHealthy !== null && health.healthy !== this.#lastHealthy) this.#o.onHealthChange?.(health)
    this.#lastHealthy = health.healthy
    return health
  }

  #schedule(): void {
    this.#cancel()
    if (this.#stopped) return
    // Without a watchdog the status is still kept fresh, once a minute.
    const every = this.#o.watchdogMs === null ? 60_000 : this.#o.watchdogMs / 2
    this.#timer = this.#o.timers.setTimeout(() => {
      this.#timer = null
      this.tick()
    }, every)
  }

  #cancel(): void {
    if (this.#timer !== null) this.#o.timers.clearTimeout(this.#timer)
    this.#timer = null
  }

  #enqueue(lines: string[]): Promise<void> {
    const send = this.#o.send
    if (send === null) return Promise.resolve()
    const next = this.#queue.then(() =>
      send(lines).catch((err: unknown) => {
        if (this.#errorSaid) return
        this.#errorSaid = true
        this.#o.onSendError?.((err as Error)?.message ?? String(err))
      }),
    )
    this.#queue = next
    return next
  }
}

/** A notify message is lines of KEY=VALUE: a status must not carry a newline. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ')
}
