/**
 * An in-memory serial line for tests and the line-only demo (`steppelink demo
 * --line-only`): link ends against each other with a fake clock, over a channel that can
 * drop, duplicate, corrupt and reorder bytes. After h11's ConnectionPair. Deterministic:
 * all randomness comes from a seeded generator (protocol/random.ts).
 */

import type { LinkEvent } from '../protocol/link.js'
import { seededRandom } from '../protocol/random.js'
import { wireTimeMs } from '../protocol/timing.js'

export interface Impairments {
  /** Probability that a chunk loses a random run of bytes. */
  drop?: number
  /** Probability that a chunk is delivered twice. */
  duplicate?: number
  /** Probability that a chunk has a random bit flipped (per chunk; several flips possible). */
  corrupt?: number
  /** Probability that a chunk is swapped with the one after it. */
  reorder?: number
  /** Probability that a chunk is replaced by random garbage of similar length. */
  garbage?: number
  /** Extra latency per chunk, ms. */
  latencyMs?: number
}

/** Anything that speaks the link end's sans-I/O interface. */
export interface Endpoint {
  receive(bytes: Uint8Array, now?: number): void
  transmit(): Uint8Array | null
  tick(now: number): number | null
}

interface InTransit {
  at: number
  to: number
  bytes: Uint8Array
}

/**
 * A shared line (RS-485 multi-drop, or a point-to-point pair): every byte an endpoint
 * sends reaches every other endpoint, through its own impaired path, at the line rate.
 */
export class SimLine {
  now = 0
  readonly #endpoints: Endpoint[] = []
  #transit: InTransit[] = []
  /** When each path (from, to) is free again, so chunks on a path never overlap. */
  readonly #busyUntil = new Map<string, number>()
  readonly #rand: () => number

  constructor(
    readonly baud: number,
    readonly impairments: Impairments = {},
    seed = 1,
  ) {
    this.#rand = seededRandom(seed)
  }

  add(endpoint: Endpoint): number {
    this.#endpoints.push(endpoint)
    return this.#endpoints.length - 1
  }

  /** Collects output, delivers what is due, and ticks every endpoint at the current time. */
  #pump(): void {
    for (let i = 0; i < this.#endpoints.length; i++) {
      const out = this.#endpoints[i]!.transmit()
      if (out) this.#send(i, out)
    }
  }

  #send(from: number, bytes: Uint8Array): void {
    const imp = this.impairments
    for (let to = 0; to < this.#endpoints.length; to++) {
      if (to === from) continue
      const key = `${from}>${to}`
      const start = Math.max(this.now, this.#busyUntil.get(key) ?? 0)
      const at = start + wireTimeMs(bytes.length, this.baud) + (imp.latencyMs ?? 0)
      this.#busyUntil.set(key, at)
      const chunks = [this.#mangle(bytes)]
      if (this.#rand() < (imp.duplicate ?? 0)) chunks.push(this.#mangle(bytes))
      for (const c of chunks) this.#transit.push({ at, to, bytes: c })
      if (this.#rand() < (imp.reorder ?? 0) && this.#transit.length >= 2) {
        const n = this.#transit.length
        const a = this.#transit[n - 1]!
        const b = this.#transit[n - 2]!
        if (a.to === b.to) [a.bytes, b.bytes] = [b.bytes, a.bytes]
      }
    }
  }

  #mangle(input: Uint8Array): Uint8Array {
    const imp = this.impairments
    let bytes = input.slice()
    if (this.#rand() < (imp.garbage ?? 0)) {
      bytes = bytes.map(() => Math.floor(this.#rand() * 256))
    }
    if (this.#rand() < (imp.drop ?? 0) && bytes.length > 0) {
      const s = Math.floor(this.#rand() * bytes.length)
      const n = 1 + Math.floor(this.#rand() * Math.min(8, bytes.length - s))
      bytes = new Uint8Array([...bytes.subarray(0, s), ...bytes.subarray(s + n)])
    }
    while (this.#rand() < (imp.corrupt ?? 0) && bytes.length > 0) {
      const i = Math.floor(this.#rand() * bytes.length)
      bytes[i]! ^= 1 << Math.floor(this.#rand() * 8)
    }
    return bytes
  }

  /**
   * Runs the line until `until` ms or until `done()` holds, jumping the fake clock from
   * one deadline or delivery to the next. Returns the time reached.
   */
  run(until: number, done: () => boolean = () => false): number {
    for (let guard = 0; guard < 10_000_000; guard++) {
      this.#pump()
      let next = Infinity
      for (const e of this.#endpoints) {
        const d = e.tick(this.now)
        if (d !== null) next = Math.min(next, d)
      }
      this.#pump()
      if (done()) return this.now
      for (const t of this.#transit) next = Math.min(next, t.at)
      if (next === Infinity || next > until) {
        this.now = until
        for (const e of this.#endpoints) e.tick(this.now)
        this.#pump()
        return this.now
      }
      this.now = Math.max(this.now, next)
      const due = this.#transit.filter((t) => t.at <= this.now)
      this.#transit = this.#transit.filter((t) => t.at > this.now)
      for (const t of due) this.#endpoints[t.to]!.receive(t.bytes, this.now)
    }
    throw new Error('SimLine.run: no progress after 10 million steps')
  }

  /** Drops everything on the wire (a cable pulled, or a device power-cycled). */
  clear(): void {
    this.#transit = []
  }

  /** Replaces an endpoint (a restarted device) in place. */
  replace(index: number, endpoint: Endpoint): void {
    this.#endpoints[index] = endpoint
  }
}

/** A link end as it sits on a SimLine: every event it produces goes to `onEvent` at once. */
export function onLine(end: Endpoint & { nextEvent(): LinkEvent | null }, onEvent: (e: LinkEvent) => void): Endpoint {
  const drain = () => {
    for (let e = end.nextEvent(); e; e = end.nextEvent()) onEvent(e)
  }
  return {
    receive: (bytes, now) => {
      end.receive(bytes, now)
      drain()
    },
    transmit: () => end.transmit(),
    tick: (now) => {
      const d = end.tick(now)
      drain()
      return d
    },
  }
}
