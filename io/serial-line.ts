/**
 * The gateway's serial port, with the resilience a board in a center household needs:
 * the terminal's USB adapter gets pulled, kicked loose or re-enumerated after a power dip,
 * another program grabs the port, the user is not in the `dialout` group. None of that may
 * stop the gateway; it says what is wrong, in words a center-household member can act on,
 * and keeps trying until the port is back.
 *
 * Theory of operation
 * - {@link SerialLine} owns one path. It opens it, hands every byte read to `onData`, and
 *   writes what the link protocol gives it. It does no framing: bytes in, bytes out.
 * - When an open fails, or an open port closes or errs (cable pulled, pty gone), it reports
 *   an event and tries again after an exponential backoff with jitter. A successful open
 *   resets the backoff, so a replug is picked up within about `initialMs`.
 * - It reopens the path it was given, never the device the path resolved to: a
 *   `/dev/serial/by-id/...` link points at a new `/dev/ttyUSBn` after a replug, and that
 *   new device is the one we want.
 * - `write()` while the port is not open returns false and drops the bytes: the link
 *   protocol retransmits unacknowledged frames, and stale frames queued in a dead port are
 *   worse than none.
 *
 * States (a transition table, below):
 *
 *     stopped --start--> opening --opened--> open --lost--> waiting --timer--> opening
 *                        opening --failed--> waiting
 *     any --stop--> stopped (final)
 *
 * Invariants
 * 1. At most one port is current, and only in state `open`; events from any other port
 *    (one we already gave up on) are ignored.
 * 2. At most one reopen timer is pending, and only in state `waiting`.
 * 3. Nothing thrown by the port, by `openPort`, or by the caller's own callbacks leaves
 *    this class through an event-emitter callback: an exception there would be an
 *    uncaught exception, and an uncaught exception ends the gateway process.
 */
import { existsSync } from 'node:fs'
import { transition, type TransitionTable } from '../protocol/transition.js'
import { realTimers, type Timers } from './timers.js'

/**
 * The part of a serial port the gateway uses. Contract:
 * - `write()` queues bytes for the line and returns at once. It must not keep a reference
 *   to `data` after returning (the caller may reuse the buffer). Failures are reported
 *   through 'error' or 'close', not thrown (a throw is tolerated and treated as 'error').
 * - `close()` releases the device. It cancels pending reads: no 'data' is delivered after
 *   it is called. It resolves once the operating system has the device back (so the same
 *   path can be opened again), never rejects, and may be called more than once.
 * - 'data' carries bytes as they arrive, in order, in chunks of any size.
 * - 'close' is emitted when the port closed without `close()` being called (device gone);
 *   `reason` says why if known. An implementation may also emit it after `close()`.
 * - 'error' is emitted for a failure of an open port; the port is unusable afterwards.
 */
export interface PortLike {
  write(data: Uint8Array): void
  close(): Promise<void>
  on(event: 'data', listener: (data: Uint8Array) => void): void
  on(event: 'close', listener: (reason: Error | null) => void): void
  on(event: 'error', listener: (error: Error) => void): void
}

/**
 * Opens `path` at `baud` (8N1) and resolves once it is open; rejects with the operating
 * system's error (an `Error`, ideally with a Node-style `code` such as 'ENOENT').
 */
export type OpenPort = (path: string, baud: number) => Promise<PortLike>

/** Stable codes for what went wrong with the port. Never renamed, only added to. */
export type SerialErrorCode =
  /** The path does not exist: terminal unplugged, wrong path, adapter not enumerated. */
  | 'SERIAL_NOT_FOUND'
  /** The user running the gateway may not open the device. */
  | 'SERIAL_PERMISSION'
  /** Another program (or another gateway) has the port open. */
  | 'SERIAL_BUSY'
  /** Any other failure to open: not a serial device, driver error, ... */
  | 'SERIAL_IO'
  /** The gateway's own `onData` threw. A bug in the caller, reported instead of crashing. */
  | 'SERIAL_HANDLER'

export type SerialEvent =
  /** The port is open; bytes flow. */
  | { kind: 'open'; path: string }
  /** An open port went away (unplugged, pty vanished, I/O error). Reopening in `retryInMs`. */
  | { kind: 'closed'; path: string; reason: string; retryInMs: number }
  /**
   * Something went wrong that a person may need to fix; `message` says what to do.
   * For open failures, `attempt` counts consecutive failures (1, 2, ...) so a logger can
   * thin out repeats, and `retryInMs` is when the next try is; both are null for
   * SERIAL_HANDLER.
   */
  | {
      kind: 'error'
      path: string
      code: SerialErrorCode
      message: string
      attempt: number | null
      retryInMs: number | null
      cause: unknown
    }

export type SerialState = 'opening' | 'open' | 'waiting' | 'stopped'

type SerialInput = 'start' | 'opened' | 'failed' | 'lost' | 'timer' | 'stop'

/** The legal moves; anything else is a bug in this file. */
const TRANSITIONS: TransitionTable<SerialState, SerialInput> = {
  stopped: { start: 'opening', stop: 'stopped' },
  opening: { opened: 'open', failed: 'waiting', stop: 'stopped' },
  open: { lost: 'waiting', stop: 'stopped' },
  waiting: { timer: 'opening', stop: 'stopped' },
}

export type { Timers } from './timers.js'

export interface SerialLineOptions {
  /**
   * The device path. Prefer the stable `/dev/serial/by-id/usb-...` link over
   * `/dev/ttyUSB0`: the number changes when the adapter is re-enumerated, the link does not.
   */
  path: string
  /** Line rate in baud (8N1, no flow control). Default 9600. */
  baud?: number
  /** How to open the port. Default: the `serialport` package. */
  openPort?: OpenPort
  /** Bytes read from the line, in order. Called from I/O callbacks: it should not block. */
  onData: (bytes: Uint8Array) => void
  /** Opens, losses and errors, for the log and the status the gateway reports. */
  onEvent: (event: SerialEvent) => void
  backoff?: {
    /** Wait before the first retry, ms. Default 500. */
    initialMs?: number
    /** Longest wait between retries, ms. Default 30,000. */
    maxMs?: number
  }
  /** Uniform random in [0, 1) for the jitter. Default Math.random. */
  random?: () => number
  /** Default: the global setTimeout/clearTimeout, looked up at each call (fake timers work). */
  timers?: Timers
  /**
   * Whether the device path still exists, checked every `presenceCheckMs` while open. A
   * pulled USB adapter takes its /dev node (and /dev/serial/by-id link) with it, and a
   * port that nobody reads from may never report the loss itself. Default: fs.existsSync
   * with the real serialport, always true with an injected `openPort`.
   */
  exists?: (path: string) => boolean
  /** How often the presence check runs while open, ms. Default 2000. */
  presenceCheckMs?: number
  /** The time, ms, for `since` (how long the line has been in its state). Default Date.now. */
  now?: () => number
}

export const DEFAULT_BAUD = 9600
export const DEFAULT_BACKOFF_INITIAL_MS = 500
export const DEFAULT_BACKOFF_MAX_MS = 30_000

/**
 * Wait before retry number `failures` (0 for the first retry after a loss or a failed
 * open): base = min(maxMs, initialMs * 2^failures), and the wait is uniform in
 * [base/2, base], in whole ms ("equal jitter"); random = 0 gives exactly base.
 * Why jitter on a local port: a device that comes and goes on a fixed period (a terminal
 * in a watchdog reset loop, a hub that browns out with the pump) must not phase-lock with
 * our retries so that every one lands in its dead window; and several lines on one USB
 * hub do not all reopen at the same instant. Keeping at least half the base keeps a
 * missing device from being polled hard.
 */
export function backoffMs(failures: number, initialMs: number, maxMs: number, random: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 52))
  return Math.max(1, Math.round(base * (1 - random / 2)))
}

/**
 * One serial line of the gateway. See the file comment for the theory of operation.
 *
 * ```ts
 * const line = new SerialLine({ path, onData: (b) => link.receive(b, now()), onEvent: log })
 * line.start()
 * // after every link.tick()/send(): for (let b; (b = link.transmit()); ) line.write(b)
 * await line.stop()
 * ```
 */
export class SerialLine {
  readonly path: string
  readonly baud: number
  readonly #openPort: OpenPort
  readonly #onData: (bytes: Uint8Array) => void
  readonly #onEvent: (event: SerialEvent) => void
  readonly #initialMs: number
  readonly #maxMs: number
  readonly #random: () => number
  readonly #timers: Timers
  readonly #exists: (path: string) => boolean
  readonly #presenceCheckMs: number
  #presenceTimer: unknown = null

  #state: SerialState = 'stopped'
  readonly #now: () => number
  #since: number
  #started = false
  /** Consecutive failures (failed opens and losses) since the last successful open. */
  #failures = 0
  #port: PortLike | null = null
  #timer: unknown = null
  #timerSet = false
  /** The open attempt in flight, so stop() can wait for it. */
  #opening: Promise<void> | null = null
  /** Ports being closed, so stop() can wait until the device is released. */
  readonly #closing = new Set<Promise<void>>()

  constructor(opts: SerialLineOptions) {
    this.path = opts.path
    this.baud = opts.baud ?? DEFAULT_BAUD
    this.#openPort = opts.openPort ?? openSerialPort
    this.#onData = opts.onData
    this.#onEvent = opts.onEvent
    this.#initialMs = opts.backoff?.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS
    this.#maxMs = opts.backoff?.maxMs ?? DEFAULT_BACKOFF_MAX_MS
    this.#random = opts.random ?? Math.random
    this.#exists = opts.exists ?? (opts.openPort ? () => true : existsSync)
    this.#presenceCheckMs = opts.presenceCheckMs ?? 2_000
    this.#timers = opts.timers ?? realTimers
    this.#now = opts.now ?? Date.now
    this.#since = this.#now()
    // Misconfiguration is our bug, found at start-up rather than at the first unplug.
    if (typeof this.path !== 'string' || this.path === '') throw new TypeError('SerialLine: path must be a non-empty string')
    if (!Number.isInteger(this.baud) || this.baud <= 0) throw new RangeError(`SerialLine: baud must be a positive integer, got ${this.baud}`)
    if (!(this.#initialMs > 0) || !(this.#maxMs >= this.#initialMs)) {
      throw new RangeError(`SerialLine: backoff needs 0 < initialMs <= maxMs, got ${this.#initialMs} and ${this.#maxMs}`)
    }
  }

  get state(): SerialState {
    return this.#state
  }

  /** When the line entered its state, ms: the service watchdog tells a reopen in progress from one that hangs. */
  get since(): number {
    return this.#since
  }

  /** The longest wait between reopen attempts, ms. */
  get maxBackoffMs(): number {
    return this.#maxMs
  }

  /** Opens the port, and keeps it open until stop(). Call once. */
  start(): void {
    if (this.#started) throw new Error('SerialLine.start() may be called once; a stopped line stays stopped, make a new one')
    this.#started = true
    this.#move('start')
    this.#attempt()
  }

  /**
   * Queues bytes for the line. Returns false, and drops them, if the port is not open:
   * the link protocol retransmits what the peer did not acknowledge.
   */
  write(bytes: Uint8Array): boolean {
    const port = this.#port
    if (this.#state !== 'open' || port === null) return false
    try {
      port.write(bytes)
      return true
    } catch (err) {
      this.#lost(port, `write failed: ${describeCause(err, 'no detail')}`)
      return false
    }
  }

  /**
   * Stops for good: cancels a pending reopen, closes the port, and resolves once the device
   * is released (an open in flight is waited for and closed). Never rejects.
   */
  async stop(): Promise<void> {
    this.#started = true
    if (this.#state !== 'stopped') this.#move('stop')
    this.#cancelTimer()
    this.#stopWatching()
    const port = this.#port
    this.#port = null
    if (port !== null) this.#release(port)
    if (this.#opening !== null) await this.#opening
    await Promise.all([...this.#closing])
  }

  #move(input: SerialInput): void {
    const next = transition(TRANSITIONS, this.#state, input, 'SerialLine')
    if (next !== this.#state) this.#since = this.#now()
    this.#state = next
  }

  #attempt(): void {
    const attempt = this.#openOnce()
    this.#opening = attempt
    void attempt.finally(() => {
      if (this.#opening === attempt) this.#opening = null
    })
  }

  /** One open attempt. Never rejects: every outcome becomes a state change and an event. */
  async #openOnce(): Promise<void> {
    let port: PortLike
    try {
      port = await this.#openPort(this.path, this.baud)
    } catch (err) {
      if (this.#state !== 'opening') return
      const { code, message } = describeOpenError(err, this.path)
      this.#move('failed')
      const attempt = this.#failures + 1
      const retryInMs = this.#scheduleReopen()
      this.#emit({ kind: 'error', path: this.path, code, message, attempt, retryInMs, cause: err })
      return
    }
    if (this.#state !== 'opening') {
      // stop() came while the open was in flight: give the device straight back.
      this.#release(port)
      return
    }
    this.#move('opened')
    this.#port = port
    this.#failures = 0
    try {
      port.on('data', (data) => {
        if (this.#port !== port) return
        try {
          this.#onData(data)
        } catch (err) {
          this.#emit({
            kind: 'error',
            path: this.path,
            code: 'SERIAL_HANDLER',
            message: `the gateway's serial data handler threw (a bug; the bytes are lost, the link retransmits): ${describeCause(err, 'unknown error')}`,
            attempt: null,
            retryInMs: null,
            cause: err,
          })
        }
      })
      port.on('close', (reason) => this.#lost(port, reason === null ? 'port closed' : `port closed: ${describeCause(reason, 'no reason given')}`))
      port.on('error', (err) => this.#lost(port, `port error: ${describeCause(err, 'no detail')}`))
    } catch (err) {
      this.#lost(port, describeCause(err, 'could not listen on the port'))
      return
    }
    this.#emit({ kind: 'open', path: this.path })
    this.#watchPresence(port)
  }

  #watchPresence(port: PortLike): void {
    const check = () => {
      this.#presenceTimer = null
      if (this.#port !== port) return
      if (!this.#exists(this.path)) {
        this.#lost(port, 'the device vanished (unplugged?)')
        return
      }
      this.#presenceTimer = this.#timers.setTimeout(check, this.#presenceCheckMs)
    }
    this.#presenceTimer = this.#timers.setTimeout(check, this.#presenceCheckMs)
  }

  #stopWatching(): void {
    if (this.#presenceTimer !== null) this.#timers.clearTimeout(this.#presenceTimer)
    this.#presenceTimer = null
  }

  /** The current port failed or vanished: let it go and try again after a wait. */
  #lost(port: PortLike, reason: string): void {
    if (this.#port !== port) return
    this.#port = null
    this.#stopWatching()
    this.#move('lost')
    this.#release(port)
    const retryInMs = this.#scheduleReopen()
    this.#emit({ kind: 'closed', path: this.path, reason, retryInMs })
  }

  /** Sets the reopen timer before the event goes out, so an onEvent that calls stop() cancels it. */
  #scheduleReopen(): number {
    const ms = backoffMs(this.#failures, this.#initialMs, this.#maxMs, this.#random())
    this.#failures += 1
    this.#timerSet = true
    this.#timer = this.#timers.setTimeout(() => {
      this.#timerSet = false
      this.#timer = null
      if (this.#state !== 'waiting') return
      this.#move('timer')
      this.#attempt()
    }, ms)
    return ms
  }

  #cancelTimer(): void {
    if (!this.#timerSet) return
    this.#timerSet = false
    this.#timers.clearTimeout(this.#timer)
    this.#timer = null
  }

  /** Closes a port we no longer use; stop() waits for these. */
  #release(port: PortLike): void {
    let closing: Promise<void>
    try {
      closing = Promise.resolve(port.close()).catch(() => undefined)
    } catch {
      return
    }
    const tracked = closing.then(() => {
      this.#closing.delete(tracked)
    })
    this.#closing.add(tracked)
  }

  #emit(event: SerialEvent): void {
    try {
      this.#onEvent(event)
    } catch (err) {
      // Nowhere left to report it through: a warning on stderr rather than a dead gateway.
      process.emitWarning(`SerialLine onEvent threw on a '${event.kind}' event: ${describeCause(err, 'unknown error')}`, {
        code: 'SERIAL_HANDLER',
      })
    }
  }
}

/**
 * Turns an open failure into a stable code and a message a center-household member can act
 * on. `serialport` rejects with a bare `Error` whose text carries strerror() (no `code`),
 * e.g. "Error: No such file or directory, cannot open /dev/ttyUSB0" or
 * "Error Resource temporarily unavailable Cannot lock port" (another process holds the
 * port's flock), so the text is matched when there is no errno code.
 */
export function describeOpenError(err: unknown, path: string): { code: Exclude<SerialErrorCode, 'SERIAL_HANDLER'>; message: string } {
  const detail = describeCause(err, 'unknown error')
  const errno = typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : ''
  const has = (...needles: string[]): boolean => needles.some((n) => detail.toLowerCase().includes(n.toLowerCase()))

  if (['ENOENT', 'ENODEV', 'ENXIO'].includes(errno) || has('No such file or directory', 'No such device', 'File not found')) {
    return {
      code: 'SERIAL_NOT_FOUND',
      message:
        `serial port ${path} not found (${detail}): check that the terminal's cable is plugged in and the adapter is ` +
        `powered; list ports with "ls -l /dev/serial/by-id/" and use that stable path. Retrying until it appears.`,
    }
  }
  if (['EACCES', 'EPERM'].includes(errno) || has('Permission denied', 'Operation not permitted')) {
    return {
      code: 'SERIAL_PERMISSION',
      message: `no permission to open ${path} (${detail}): add the user to the dialout group ("sudo usermod -aG dialout $USER", then log in again or restart the service).`,
    }
  }
  if (['EBUSY', 'EAGAIN', 'EWOULDBLOCK'].includes(errno) || has('busy', 'Cannot lock port', 'Resource temporarily unavailable')) {
    return {
      code: 'SERIAL_BUSY',
      message:
        `serial port ${path} is in use by another program (${detail}): stop it (find it with "fuser -v ${path}"; ` +
        `a second gateway, ModemManager or a serial console are the usual ones). Retrying.`,
    }
  }
  const hint = has('Inappropriate ioctl')
    ? ' it does not look like a serial device; check the path.'
    : has('No native build', 'compiled against a different Node.js version')
      ? // The package was installed for another CPU or Node.js (copied from a PC to the board).
        ' the serialport native module does not load here: run "npm rebuild @serialport/bindings-cpp" on the board.'
      : ' check the adapter and the kernel log ("dmesg").'
  return { code: 'SERIAL_IO', message: `cannot open serial port ${path} (${detail}):${hint} Retrying.` }
}

function describeCause(err: unknown, fallback: string): string {
  if (err instanceof Error) return err.message.replace(/^Error:?\s*/, '') || fallback
  if (typeof err === 'string' && err !== '') return err
  return fallback
}

/**
 * The default {@link OpenPort}: the `serialport` package, 8N1, no flow control (neither
 * RTS/CTS nor XON/XOFF: the link is binary and 0x11/0x13 are ordinary bytes in it).
 *
 * `serialport` is imported when a port is first opened, not when this module loads: its
 * native binding then fails as an 'error' event the gateway reports, and code that only
 * uses a fake port (tests, the simulator) never loads it.
 *
 * A new SerialPort object per open: a closed serialport stream keeps reads and writes
 * queued "for after open", which must not leak into the next session.
 */
export const openSerialPort: OpenPort = async (path, baud) => {
  const { SerialPort } = await import('serialport')
  const sp = new SerialPort({
    path,
    baudRate: baud,
    dataBits: 8,
    parity: 'none',
    stopBits: 1,
    rtscts: false,
    xon: false,
    xoff: false,
    autoOpen: false,
  })
  // Until our own listeners are on, an 'error' with no listener would be thrown by the
  // emitter and end the process; failures before open arrive through the callback anyway.
  sp.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    sp.open((err) => (err ? reject(err) : resolve()))
  })
  const port: PortLike = {
    write(data) {
      // A copy: the stream may hold the chunk until the line takes it, and the caller may
      // reuse its buffer.
      sp.write(Buffer.from(data))
    },
    close() {
      return new Promise<void>((resolve) => {
        if (sp.isOpen) sp.close(() => resolve())
        else if (sp.closing) sp.once('close', () => resolve())
        else resolve()
      })
    },
    on(event: 'data' | 'close' | 'error', listener: (arg: never) => void) {
      // serialport emits 'close' with a DisconnectedError when the device goes away, and
      // with nothing after close(); a Node stream also emits a bare 'close' when destroyed.
      sp.on(event, (arg: unknown) => (listener as (a: unknown) => void)(event === 'close' ? (arg ?? null) : arg))
    },
  }
  return port
}
