/**
 * Runs a TerminalDevice on a real serial device (one end of a socat pseudo-terminal pair,
 * or a USB adapter wired to the gateway) with real time.
 *
 * A pseudo-terminal ignores the baud rate and never corrupts a bit, so the runner can add
 * what a real line does, each off by default:
 * - `pace`: bytes leave no faster than the line rate (UART 8N1, 10 bits a byte: a 30-byte
 *   frame at 9600 baud takes 31 ms). They are written in small chunks, each once the line
 *   would have finished sending it, so the gateway sees them arrive as from a real UART.
 * - `noise`: each data bit written or read is flipped with probability `noise` (the bit
 *   error rate of a long or badly shielded cable).
 * - `unplug(ms)`: the port is closed as if the cable were pulled, and cannot be opened
 *   again for `ms`; SerialLine notices, and reopens it by itself afterwards, as it does
 *   when a real device vanishes and comes back.
 */

import { existsSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { SerialLine, openSerialPort, type OpenPort, type PortLike, type SerialEvent } from '../io/serial-line.js'
import { BITS_PER_BYTE } from '../protocol/timing.js'

/** What the runner drives: the sans-I/O interface of TerminalDevice (and of a link end). */
export interface SerialDevice {
  receive(bytes: Uint8Array, now: number): void
  transmit(): Uint8Array | null
  /** Advances time; returns the next deadline (ms), or null if nothing waits on time. */
  tick(now: number): number | null
}

export interface RunOnSerialOptions {
  /** The device path, e.g. one end of a socat pair. */
  path: string
  /** Line rate in baud (8N1). Default 9600. */
  baud?: number
  /** Opens, losses and errors of the port. Default: ignored. */
  onSerialEvent?: (e: SerialEvent) => void
  /**
   * Write no faster than the line rate (10 bits a byte), in chunks, each written once the
   * line would have finished sending it. Default false: bytes are written as soon as the
   * device has them.
   */
  pace?: boolean
  /** Length of one paced chunk, ms of line time (at least one byte). Default 4. */
  chunkMs?: number
  /**
   * Bit error rate, 0 to 1: each of the 8 data bits of every byte written and every byte
   * read is flipped with this probability. Default 0.
   */
  noise?: number
  /** Uniform random in [0, 1) for the noise. Default Math.random. */
  random?: () => number
  /** Reopen backoff after a loss, passed to SerialLine. Default SerialLine's (0.5 s to 30 s). */
  backoff?: { initialMs?: number; maxMs?: number }
  /** Opens the device; default the serialport package (an in-memory line where socat is missing). */
  openPort?: OpenPort
}

export interface RunnerStats {
  /** Bytes handed to the port (after noise). */
  bytesOut: number
  /** Bytes the port would not take (not open: unplugged, or not yet reopened). */
  bytesLost: number
  /** Bytes read from the port. */
  bytesIn: number
  /** Bits flipped by the noise in bytes written / in bytes read. */
  bitsFlippedOut: number
  bitsFlippedIn: number
  /** Bytes waiting for their time on the line (pacing). */
  queuedOut: number
}

export interface RunningTerminal {
  /** The port; the same object for the whole run, across unplugs. */
  line: SerialLine
  /** Stops the timers and closes the port; resolves once the device is released. */
  stop(): Promise<void>
  /**
   * Tells the device the time now and writes what it has at once. Call it after press()
   * or readDisplay(): otherwise the bytes wait for the next timer (up to a second).
   */
  wake(): void
  /**
   * Pulls the cable for `ms`: the port is closed now and cannot be opened again until `ms`
   * have passed; SerialLine reopens it by itself after that (within its backoff).
   */
  unplug(ms: number): void
  /** True while a simulated unplug lasts. */
  readonly unplugged: boolean
  stats(): RunnerStats
}

/**
 * Flips each bit with probability `ber`. The gap to the next flip is drawn from the
 * geometric distribution, so the cost is per flip rather than per bit, and the gap carries
 * over from one chunk to the next: the bit stream, not each chunk, has the error rate.
 */
export class BitNoise {
  /** Bits seen and bits flipped so far. */
  bits = 0
  flipped = 0
  #gap: number

  constructor(
    readonly ber: number,
    readonly random: () => number = Math.random,
  ) {
    if (!(ber >= 0 && ber <= 1)) throw new RangeError(`BitNoise: bit error rate must be from 0 to 1, got ${ber}`)
    this.#gap = this.#draw()
  }

  /** Returns the bytes with their bits flipped: a copy if any flipped, else the input. */
  apply(bytes: Uint8Array): Uint8Array {
    const total = bytes.length * 8
    this.bits += total
    if (this.#gap >= total) {
      this.#gap -= total
      return bytes
    }
    const out = bytes.slice()
    let pos = this.#gap
    while (pos < total) {
      out[pos >> 3]! ^= 1 << (pos & 7)
      this.flipped++
      pos += 1 + this.#draw()
    }
    this.#gap = pos - total
    return out
  }

  /** Bits left untouched before the next flip. */
  #draw(): number {
    if (this.ber === 0) return Infinity
    if (this.ber === 1) return 0
    return Math.floor(Math.log(1 - this.random()) / Math.log1p(-this.ber))
  }
}

/**
 * Writes bytes at the line rate: chunk k of a burst is written when the line, started at
 * the burst's first byte, would have sent its last bit. Never ahead of that schedule; a
 * late timer catches up, never overtakes.
 */
class Pacer {
  readonly #byteMs: number
  readonly #chunkBytes: number
  #queue: Uint8Array[] = []
  #queued = 0
  /** When the line has sent everything written so far, ms (performance.now()). */
  #wireFreeAt = 0
  #timer: NodeJS.Timeout | null = null

  constructor(
    baud: number,
    chunkMs: number,
    readonly write: (bytes: Uint8Array) => void,
  ) {
    this.#byteMs = (BITS_PER_BYTE * 1000) / baud
    this.#chunkBytes = Math.max(1, Math.floor(chunkMs / this.#byteMs))
  }

  get queued(): number {
    return this.#queued
  }

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return
    const now = performance.now()
    if (this.#queued === 0 && this.#wireFreeAt < now) this.#wireFreeAt = now
    this.#queue.push(bytes)
    this.#queued += bytes.length
    if (this.#timer === null) this.#run()
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#queue = []
    this.#queued = 0
  }

  #run = (): void => {
    this.#timer = null
    while (this.#queued > 0) {
      const n = Math.min(this.#chunkBytes, this.#queued)
      const due = this.#wireFreeAt + n * this.#byteMs
      const now = performance.now()
      if (now < due) {
        this.#timer = setTimeout(this.#run, Math.max(1, Math.ceil(due - now)))
        return
      }
      this.#wireFreeAt = due
      this.write(this.#take(n))
    }
  }

  #take(n: number): Uint8Array {
    const out = new Uint8Array(n)
    let o = 0
    while (o < n) {
      const head = this.#queue[0]!
      const k = Math.min(n - o, head.length)
      out.set(head.subarray(0, k), o)
      o += k
      if (k === head.length) this.#queue.shift()
      else this.#queue[0] = head.subarray(k)
    }
    this.#queued -= n
    return out
  }
}

/** A port whose 'close' the runner can raise itself, to pull the cable. */
interface PluggablePort extends PortLike {
  pull(reason: Error): void
}

function pluggable(port: PortLike): PluggablePort {
  const onClose: ((reason: Error | null) => void)[] = []
  return {
    write: (data) => port.write(data),
    close: () => port.close(),
    on(event: 'data' | 'close' | 'error', listener: (arg: never) => void) {
      if (event === 'close') onClose.push(listener as (reason: Error | null) => void)
      port.on(event as 'data', listener as (data: Uint8Array) => void)
    },
    pull(reason) {
      for (const l of onClose) l(reason)
    },
  }
}

export function runOnSerial(device: SerialDevice, options: RunOnSerialOptions): RunningTerminal {
  const baud = options.baud ?? 9600
  const random = options.random ?? Math.random
  const ber = options.noise ?? 0
  const noiseOut = new BitNoise(ber, random)
  const noiseIn = new BitNoise(ber, random)
  let timer: NodeJS.Timeout | null = null
  let stopped = false
  let unpluggedUntil = 0
  let port: PluggablePort | null = null
  const counts = { bytesOut: 0, bytesLost: 0, bytesIn: 0 }

  const writeNow = (bytes: Uint8Array) => {
    if (line.write(bytes)) counts.bytesOut += bytes.length
    else counts.bytesLost += bytes.length
  }
  const pacer = options.pace ? new Pacer(baud, options.chunkMs ?? 4, writeNow) : null
  // Until the port first opens, output waits in the device (a real terminal's UART is
  // wired from boot: its first HELLO is not lost to our own start-up). After that, what is
  // written while the port is closed is lost, as on a pulled cable.
  let opened = false
  const flush = () => {
    if (!opened) return
    for (let out = device.transmit(); out; out = device.transmit()) {
      const noisy = ber > 0 ? noiseOut.apply(out) : out
      if (pacer) pacer.push(noisy)
      else writeNow(noisy)
    }
  }

  const openPort: OpenPort = async (path, rate) => {
    if (Date.now() < unpluggedUntil) {
      throw Object.assign(new Error(`No such file or directory, cannot open ${path} (cable pulled by the simulator)`), { code: 'ENOENT' })
    }
    const p = pluggable(await (options.openPort ?? openSerialPort)(path, rate))
    port = p
    return p
  }
  const line: SerialLine = new SerialLine({
    path: options.path,
    baud,
    openPort,
    // An injected openPort turns SerialLine's presence check off; a real device can still vanish.
    exists: (path) => Date.now() >= unpluggedUntil && (options.openPort !== undefined || existsSync(path)),
    ...(options.backoff ? { backoff: options.backoff } : {}),
    onData: (bytes) => {
      counts.bytesIn += bytes.length
      device.receive(ber > 0 ? noiseIn.apply(bytes) : bytes, Date.now())
      flush()
      schedule()
    },
    onEvent: (e) => {
      options.onSerialEvent?.(e)
      if (e.kind === 'open') {
        opened = true
        schedule()
      }
    },
  })
  const schedule = () => {
    if (stopped) return
    if (timer) clearTimeout(timer)
    const next = device.tick(Date.now()) ?? Infinity
    flush()
    timer = setTimeout(schedule, Math.max(5, Math.min(1_000, next - Date.now())))
  }
  line.start()
  schedule()
  return {
    line,
    stop: async () => {
      stopped = true
      if (timer) clearTimeout(timer)
      pacer?.stop()
      await line.stop()
    },
    wake: schedule,
    unplug: (ms) => {
      unpluggedUntil = Math.max(unpluggedUntil, Date.now() + ms)
      // Bytes still in the UART's buffer go nowhere.
      pacer?.stop()
      const p = port
      port = null
      p?.pull(new Error('cable pulled by the simulator'))
    },
    get unplugged() {
      return Date.now() < unpluggedUntil
    },
    stats: () => ({
      ...counts,
      bitsFlippedOut: noiseOut.flipped,
      bitsFlippedIn: noiseIn.flipped,
      queuedOut: pacer?.queued ?? 0,
    }),
  }
}
