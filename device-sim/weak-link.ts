/**
 * The weak link: a TCP proxy that makes a good link bad. It sits between the gateway and
 * the platform's MQTT broker (the gateway connects to it as if it were the broker) and
 * does to the bytes what a rural cellular or satellite uplink does to them:
 *
 * - latency: a one-way delay in each direction, with jitter drawn uniformly from
 *   [-jitter, +jitter] (clamped at zero delay). Bytes of one connection are never
 *   reordered: a segment is never delivered before the one sent ahead of it (TCP does not
 *   reorder, it waits), so jitter can only add to a segment's delay, never take it ahead
 *   of an earlier one.
 * - bandwidth: a serialisation delay per direction, shared by all the connections over
 *   the link (one radio bearer): a segment of N bytes occupies the link for N * 8 / kbps
 *   ms after the one before it, then travels for the latency. So a 10 kB burst at
 *   40 kbit/s arrives over about 2 s. Segments are at most 1460 bytes (an Ethernet MSS).
 * - drops: every `dropEveryMs` (counted from start, not per connection) each open
 *   connection is reset: both sockets are destroyed with an RST, so each end sees
 *   ECONNRESET at once (what a carrier's NAT or a PDP-context loss gives when the next
 *   packet arrives). A drop that falls while the link is down (blackout or stall) is
 *   skipped and logged as such: nothing would reach either end then.
 * - blackouts: for a while no bytes pass. Existing connections stall half-open: bytes stop
 *   both ways, no FIN and no RST reach either end, even when one end gives up and closes;
 *   what was sent meanwhile is delivered after the blackout (TCP retransmits it) and the
 *   closes that happened are passed on then. New connections hang: the proxy accepts them
 *   (the client sees its connect succeed, as if a middlebox answered the SYN) but connects
 *   to the target only when the blackout ends, and not at all if the client has given up
 *   by then. A client's own connect or keepalive timeout is what finds this out.
 * - stall: the same half-open stall as a blackout, but for as long as it lasts (`stall`
 *   option: from the start, forever; `stall()` / `resume()` from code); new connections
 *   during a stall do reach the target (TCP is up, bytes stop).
 *
 * While the link is down the proxy keeps reading from each socket up to a 64 KiB window
 * per direction and connection, then stops reading, so the sender's own buffers fill up as
 * they would behind a real dead link.
 *
 * The timing (`LinkSchedule`) is pure: told the time, it answers when each segment
 * arrives, so it is tested with made-up times. The proxy itself uses real sockets and real
 * time. Every action is an event `{ t, time, event, conn, ... }` (t: ms since start;
 * time: epoch ms, as in the gateway's log lines) kept in `events` and passed to listeners.
 */

import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { seededRandom } from '../protocol/random.js'

// ---------------------------------------------------------------------------------------
// Shape of the link

export type Direction = 'up' | 'down'

/** A blackout: no bytes for `durationMs`, starting `atMs` after start, repeated every `everyMs` if given. */
export interface Blackout {
  /** When the (first) blackout starts, ms after the link starts. */
  atMs: number
  /** How long each blackout lasts, ms. */
  durationMs: number
  /** If given, the blackout comes back this long after each start, ms (must exceed durationMs). */
  everyMs?: number
}

/** What the link does; every field has the `perfect` profile's value as default. */
export interface LinkShape {
  /** One-way delay added in each direction, ms (perfect: 0). */
  latencyMs: number
  /** The delay varies uniformly within ± this, ms; never reorders bytes (perfect: 0). */
  jitterMs: number
  /** Bandwidth from the target (broker) to the client (gateway), kbit/s; null: no cap (perfect: null). */
  downKbps: number | null
  /** Bandwidth from the client (gateway) to the target (broker), kbit/s; null: no cap (perfect: null). */
  upKbps: number | null
  /** Every connection open is reset this often, counted from start, ms; null: never (perfect: null). */
  dropEveryMs: number | null
  /** Blackouts, in ms from start (perfect: none). */
  blackouts: Blackout[]
  /** Stalled from the start, for ever: connections open, bytes never pass (perfect: false). */
  stall: boolean
}

export const PROFILE_NAMES = ['perfect', 'gprs', 'edge', 'satellite', 'storm'] as const
export type ProfileName = (typeof PROFILE_NAMES)[number]

/**
 * Where the numbers come from (orders of magnitude: real links vary by the hour):
 * - gprs: 3GPP TS 43.064 coding scheme CS-2 carries 13.4 kbit/s per timeslot; a multislot
 *   class 10 handset gets 3-4 slots down and 1-2 up, so 40-54 kbit/s down and 13-27 up at
 *   best; shared cells in the field give less. We take 40 down, 20 up. Round trips of
 *   about 1 s and more, with large variation, are what measurements of TCP over GPRS found
 *   (Chakravorty, Cartwright, Pratt, "Practical experience with TCP over GPRS", IEEE
 *   Globecom 2002): 500 ms ± 200 one way. (The Android emulator's -netspeed gprs is
 *   57.6/28.8 kbit/s, a class-10 best case.)
 * - edge: EGPRS (3GPP TS 43.064) MCS-5..7 at 22.4-44.8 kbit/s per slot, 4 slots down and
 *   2 up in practice: about 200 down and 100 up; round trips of 500-700 ms: 300 ms ± 100.
 * - satellite: a geostationary hop is 2 x 35,786 km, 240-280 ms one way at the speed of
 *   light, plus the hub and the shared-carrier access, so about 300 ms ± 50 one way and
 *   the 600 ms round trip VSAT operators quote. A rural VSAT terminal's forward carrier
 *   gives about 1 Mbit/s, its return carrier about half of that.
 * - storm: gprs, and the link is lost every minute (a drop at 60 s, 120 s, ...) and goes
 *   dark for 20 s every 5 minutes (at 90 s, 390 s, ...): the weather of a white disaster,
 *   when the cell tower runs on batteries and handsets fall back and forth between cells.
 *   The blackouts are placed between drops (a drop never falls in one).
 * - perfect: nothing added; the proxy only forwards.
 */
export const PROFILES: Readonly<Record<ProfileName, Readonly<LinkShape>>> = {
  perfect: { latencyMs: 0, jitterMs: 0, downKbps: null, upKbps: null, dropEveryMs: null, blackouts: [], stall: false },
  gprs: { latencyMs: 500, jitterMs: 200, downKbps: 40, upKbps: 20, dropEveryMs: null, blackouts: [], stall: false },
  edge: { latencyMs: 300, jitterMs: 100, downKbps: 200, upKbps: 100, dropEveryMs: null, blackouts: [], stall: false },
  satellite: { latencyMs: 300, jitterMs: 50, downKbps: 1000, upKbps: 500, dropEveryMs: null, blackouts: [], stall: false },
  storm: {
    latencyMs: 500,
    jitterMs: 200,
    downKbps: 40,
    upKbps: 20,
    dropEveryMs: 60_000,
    blackouts: [{ atMs: 90_000, durationMs: 20_000, everyMs: 300_000 }],
    stall: false,
  },
}

/** The profile's shape with the given fields (those not undefined) put over it. */
/** Settings that change a profile; a key that is absent or undefined keeps the profile's value. */
export type LinkOverrides = { [K in keyof LinkShape]?: LinkShape[K] | undefined }

export function shapeOf(profile: ProfileName, overrides: LinkOverrides = {}): LinkShape {
  const base = PROFILES[profile]
  const shape: LinkShape = { ...base, blackouts: base.blackouts.map((b) => ({ ...b })) }
  for (const key of Object.keys(overrides) as (keyof LinkShape)[]) {
    if (overrides[key] !== undefined) (shape as unknown as Record<string, unknown>)[key] = overrides[key]
  }
  return shape
}

/** Throws (a bug in the caller: the CLI checks its input first) if the shape makes no sense. */
function checkShape(shape: LinkShape): void {
  const bad = (what: string) => {
    throw new WeakLinkArgumentError(`weak link: ${what}`)
  }
  if (!(shape.latencyMs >= 0) || !Number.isFinite(shape.latencyMs)) bad(`latencyMs must be a finite number >= 0, got ${shape.latencyMs}`)
  if (!(shape.jitterMs >= 0) || !Number.isFinite(shape.jitterMs)) bad(`jitterMs must be a finite number >= 0, got ${shape.jitterMs}`)
  for (const key of ['upKbps', 'downKbps', 'dropEveryMs'] as const) {
    const v = shape[key]
    if (v !== null && !(v > 0 && Number.isFinite(v))) bad(`${key} must be null or a finite number > 0, got ${v}`)
  }
  for (const b of shape.blackouts) {
    if (!(b.atMs >= 0 && b.durationMs > 0 && Number.isFinite(b.atMs + b.durationMs))) bad(`blackout ${JSON.stringify(b)}: atMs >= 0 and durationMs > 0 needed`)
    if (b.everyMs !== undefined && !(b.everyMs > b.durationMs && Number.isFinite(b.everyMs))) bad(`blackout ${JSON.stringify(b)}: everyMs must exceed durationMs`)
  }
}

// ---------------------------------------------------------------------------------------
// Timing, without I/O: when does each segment arrive?

/** Largest segment put on the link at once, bytes (an Ethernet TCP MSS). */
export const SEGMENT_BYTES = 1460

/** One direction of one connection: its last delivery time, so nothing overtakes. */
export interface StreamClock {
  lastAtMs: number
}

export function streamClock(): StreamClock {
  return { lastAtMs: -Infinity }
}

export interface Segment {
  /** When the segment arrives at the far end, ms (same clock as `nowMs`). */
  at: number
  /** Bytes in it; 0 for a FIN. */
  length: number
}

/**
 * The link's timing. `plan()` is told the time a chunk was sent and answers when each of
 * its segments arrives: after waiting for the link (earlier segments in that direction,
 * of any connection), its own serialisation time, and the latency with jitter; never
 * before the segment ahead of it on the same stream.
 */
export class LinkSchedule {
  private busyUntil: Record<Direction, number> = { up: -Infinity, down: -Infinity }

  constructor(
    private readonly shape: Pick<LinkShape, 'latencyMs' | 'jitterMs' | 'upKbps' | 'downKbps'>,
    private readonly random: () => number,
  ) {}

  plan(dir: Direction, stream: StreamClock, nowMs: number, length: number): Segment[] {
    const kbps = dir === 'up' ? this.shape.upKbps : this.shape.downKbps
    const sizes: number[] = []
    if (kbps === null || length === 0) sizes.push(length)
    else for (let left = length; left > 0; left -= SEGMENT_BYTES) sizes.push(Math.min(SEGMENT_BYTES, left))
    return sizes.map((size) => {
      let sent = nowMs
      if (kbps !== null && size > 0) {
        // bytes * 8 bits / (kbps * 1000 bits/s) = bytes * 8 / kbps ms
        sent = Math.max(nowMs, this.busyUntil[dir]) + (size * 8) / kbps
        this.busyUntil[dir] = sent
      }
      const delay = Math.max(0, this.shape.latencyMs + this.shape.jitterMs * (2 * this.random() - 1))
      const at = Math.max(sent + delay, stream.lastAtMs)
      stream.lastAtMs = at
      return { at, length: size }
    })
  }

  /** The link went down: what was on it is lost (and will be sent again), so it is idle now. */
  reset(): void {
    this.busyUntil = { up: -Infinity, down: -Infinity }
  }
}

// ---------------------------------------------------------------------------------------
// Parsing, for the CLI (and anyone who takes these as strings)

/** A value given to the weak link (flag or option) is wrong; `message` says what and how. */
export class WeakLinkArgumentError extends Error {
  readonly code = 'WEAKLINK_BAD_ARGUMENT'
  override name = 'WeakLinkArgumentError'
}

function fail(message: string): never {
  throw new WeakLinkArgumentError(message)
}

const DECIMAL = /^\d+(\.\d+)?$/

/** A non-negative decimal number ("30", "2.5"); `what` names it in the error. */
function decimal(raw: string, what: string): number {
  if (!DECIMAL.test(raw)) fail(`${what} must be a number like 30 or 2.5, got '${raw}'`)
  return Number(raw)
}

/**
 * `host:port` or `[ipv6]:port`. Port 1-65535, or 0 too if `allowAnyPort` (listen on a free
 * port). Examples: `127.0.0.1:1883`, `localhost:1883`, `[::1]:1883`.
 */
export function parseHostPort(raw: string, allowAnyPort = false): { host: string; port: number } {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(raw) ?? /^([A-Za-z0-9.-]+):(\d+)$/.exec(raw)
  if (!m) fail(`expected HOST:PORT such as 127.0.0.1:1883 (or [::1]:1883), got '${raw}'`)
  const host = m[1]!
  const port = Number(m[2])
  const min = allowAnyPort ? 0 : 1
  if (!(port >= min && port <= 65535)) fail(`port must be ${min} to 65535, got ${m[2]} in '${raw}'`)
  return { host, port }
}

/**
 * `D@T` or `D@T/P`, all in seconds: dark for D seconds starting T seconds after start,
 * and again every P seconds after that if P is given. `60@30` -> { durationMs: 60000, atMs: 30000 }.
 */
export function parseBlackout(raw: string): Blackout {
  const m = /^([^@/]+)@([^@/]+)(?:\/([^@/]+))?$/.exec(raw)
  if (!m) fail(`blackout must be DURATION@START or DURATION@START/EVERY in seconds, e.g. 60@30 (60 s, 30 s after start), got '${raw}'`)
  const durationMs = decimal(m[1]!, `blackout duration in '${raw}'`) * 1000
  const atMs = decimal(m[2]!, `blackout start in '${raw}'`) * 1000
  if (durationMs <= 0) fail(`blackout duration must be more than 0 s, got '${raw}'`)
  if (m[3] === undefined) return { atMs, durationMs }
  const everyMs = decimal(m[3], `blackout period in '${raw}'`) * 1000
  if (everyMs <= durationMs) fail(`blackout period must be longer than its duration (they would overlap), got '${raw}'`)
  return { atMs, durationMs, everyMs }
}

/** `N` (both directions) or `DOWN/UP`, kbit/s; 0 means no cap. */
export function parseKbps(raw: string): { downKbps: number | null; upKbps: number | null } {
  const parts = raw.split('/')
  if (parts.length > 2) fail(`kbps must be N or DOWN/UP in kbit/s, e.g. 40 or 40/20, got '${raw}'`)
  const [down, up] = parts.map((p) => decimal(p, `kbps (N or DOWN/UP, kbit/s) '${raw}'`)) as [number, number | undefined]
  const cap = (n: number) => (n === 0 ? null : n)
  return { downKbps: cap(down), upKbps: cap(up ?? down) }
}

/** A duration in ms (`--latency`, `--jitter`): a number >= 0. */
export function parseMs(raw: string, what: string): number {
  return decimal(raw, `${what} (ms)`)
}

/** `--drop-every S`: seconds > 0, or 0 for never; answers ms or null. */
export function parseDropEvery(raw: string): number | null {
  const s = decimal(raw, 'drop interval (seconds; 0 for never)')
  return s === 0 ? null : s * 1000
}

export function parseProfile(raw: string): ProfileName {
  if (!(PROFILE_NAMES as readonly string[]).includes(raw)) fail(`unknown profile '${raw}'; known profiles: ${PROFILE_NAMES.join(', ')}`)
  return raw as ProfileName
}

// ---------------------------------------------------------------------------------------
// Events

/** Who closed a connection first: one of its ends, a drop by the link, or the proxy stopping. */
export type CloseBy = 'client' | 'target' | 'drop' | 'stop'

interface Stamp {
  /** ms since the link started */
  t: number
  /** epoch ms, as `time` in the gateway's log lines */
  time: number
}

export type WeakLinkEvent = Stamp &
  (
    | { event: 'listening'; conn: null; address: string; port: number; target: string; shape: LinkShape }
    /** A client connected. held: why no bytes pass yet (blackout: the target is not connected yet). */
    | { event: 'open'; conn: number; from: string; held: 'blackout' | 'stall' | null }
    /** Both sockets of a connection are closed. how: FIN (orderly) or RST; up/down: bytes delivered. */
    | { event: 'close'; conn: number; by: CloseBy; how: 'fin' | 'rst'; reason?: string; up: number; down: number }
    /** Connections reset by the link; skipped: the drop was due but the link was down. */
    | { event: 'drop'; conn: null; conns: number[]; skipped?: 'blackout' | 'stall' }
    | { event: 'blackout-start'; conn: null; durationMs: number; conns: number[] }
    | { event: 'blackout-end'; conn: null; conns: number[] }
    | { event: 'stall-start'; conn: null; conns: number[] }
    | { event: 'stall-end'; conn: null; conns: number[] }
    | { event: 'stopped'; conn: null; up: number; down: number }
  )

export type WeakLinkEventName = WeakLinkEvent['event']

function assertNever(x: never): never {
  throw new Error(`unexpected ${JSON.stringify(x)}`)
}

const fmtKbps = (n: number | null) => (n === null ? 'no cap' : `${n} kbit/s`)
const fmtS = (ms: number) => `${+(ms / 1000).toFixed(3)} s`
const fmtConns = (conns: number[]) => (conns.length === 0 ? 'no connections open' : `connection${conns.length > 1 ? 's' : ''} ${conns.join(', ')}`)

/** One line saying what the shape does, e.g. for the log and the help. */
export function describeShape(s: LinkShape): string {
  const parts = [
    s.latencyMs === 0 && s.jitterMs === 0 ? 'no added latency' : `latency ${s.latencyMs} ± ${s.jitterMs} ms one way`,
    s.downKbps === null && s.upKbps === null ? 'no bandwidth cap' : `${fmtKbps(s.downKbps)} down, ${fmtKbps(s.upKbps)} up`,
    s.dropEveryMs === null ? 'no drops' : `a drop every ${fmtS(s.dropEveryMs)}`,
    s.blackouts.length === 0
      ? 'no blackouts'
      : `blackouts ${s.blackouts.map((b) => `${fmtS(b.durationMs)} at ${fmtS(b.atMs)}${b.everyMs === undefined ? '' : ` and every ${fmtS(b.everyMs)}`}`).join(', ')}`,
  ]
  if (s.stall) parts.push('stalled from the start')
  return parts.join('; ')
}

/** The event as one line of text for people (the CLI's default log). */
export function describeEvent(e: WeakLinkEvent): string {
  switch (e.event) {
    case 'listening':
      return `listening on ${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}, forwarding to ${e.target}; ${describeShape(e.shape)}`
    case 'open':
      return `conn ${e.conn} opened from ${e.from}${
        e.held === 'blackout'
          ? ' during a blackout: accepted, but the target is connected only when the blackout ends'
          : e.held === 'stall'
            ? ' while stalled: connected, no bytes pass until resumed'
            : ''
      }`
    case 'close': {
      const by = { client: 'by the client', target: 'by the target', drop: 'by the link (drop)', stop: 'because the link stopped' }[e.by]
      return `conn ${e.conn} closed ${by}: ${e.how.toUpperCase()}${e.reason ? ` (${e.reason})` : ''}; ${e.up} B up, ${e.down} B down`
    }
    case 'drop':
      if (e.skipped) return `drop due but skipped: the link is down (${e.skipped}), nothing would reach either end`
      return e.conns.length === 0 ? 'drop: no connections open' : `drop: ${fmtConns(e.conns)} reset (RST to both ends)`
    case 'blackout-start':
      return `blackout for ${fmtS(e.durationMs)} starts: ${
        e.conns.length === 0 ? 'no connections open' : `${fmtConns(e.conns)} stall${e.conns.length === 1 ? 's' : ''} (no bytes, no FIN)`
      }; new connections hang`
    case 'blackout-end':
      return `blackout ends: held bytes and closes flow again (${fmtConns(e.conns)})`
    case 'stall-start':
      return `stall: bytes stop both ways, no FIN or RST (${fmtConns(e.conns)}, and any new one)`
    case 'stall-end':
      return `resume: held bytes and closes flow again (${fmtConns(e.conns)})`
    case 'stopped':
      return `stopped; ${e.up} B up, ${e.down} B down in all`
    default:
      return assertNever(e)
  }
}

// ---------------------------------------------------------------------------------------
// The proxy

export interface WeakLinkOptions extends LinkOverrides {
  /** Where connections go: the MQTT broker. host defaults to 127.0.0.1. */
  target: { host?: string; port: number }
  /** Where the gateway connects (default 127.0.0.1, port 0: a free port, see `port`). */
  listen?: { host?: string; port?: number }
  /** The starting point; the LinkShape fields given override it (default 'perfect'). */
  profile?: ProfileName
  /** Seed for the jitter (default 1); ignored if `random` is given. */
  seed?: number
  /** Uniform numbers in [0, 1) for the jitter (default: seeded from `seed`). */
  random?: () => number
  /** Called with every event as it happens (also kept in `events`). */
  onEvent?: (e: WeakLinkEvent) => void
}

export interface WeakLinkStats {
  /** Bytes delivered from the client (gateway) to the target (broker). */
  bytesUp: number
  /** Bytes delivered from the target (broker) to the client (gateway). */
  bytesDown: number
  /** Connections accepted since start. */
  connections: number
  /** Connections with a socket still open. */
  open: number
  /** Connections reset by drops (scheduled or `dropAll()`). */
  dropped: number
}

export interface WeakLink {
  /** The address and port the proxy listens on (the gateway's broker URL: mqtt://address:port). */
  readonly address: string
  readonly port: number
  /** The shape in force (profile with overrides). */
  readonly shape: Readonly<LinkShape>
  /** Every event so far (the last 10,000). */
  readonly events: readonly WeakLinkEvent[]
  readonly stats: WeakLinkStats
  /** True while no bytes pass (a stall or a blackout). */
  readonly down: boolean
  /** Bytes stop both ways on every connection, new ones included; no FIN or RST. Until resume(). */
  stall(): void
  /** Ends a stall (a blackout in progress goes on). */
  resume(): void
  /** A blackout of `ms` from now; overlapping blackouts last until the last one ends. */
  blackout(ms: number): void
  /** Resets every open connection now (RST to both ends), link down or not. */
  dropAll(): void
  /** Calls `listener` with each new event; answers a function that stops it. */
  on(type: 'event', listener: (e: WeakLinkEvent) => void): () => void
  /** The first event, already seen or to come, that `match` accepts; rejects after timeoutMs (default 10 s). */
  waitForEvent(match: (e: WeakLinkEvent) => boolean, timeoutMs?: number): Promise<WeakLinkEvent>
  /** Closes the listener, resets every connection, cancels every timer. Idempotent. */
  stop(): Promise<void>
}

/** Per connection and direction, bytes the link holds before stopping to read, bytes. */
const WINDOW_BYTES = 64 * 1024
const MAX_EVENTS = 10_000

type Side = 'client' | 'target'

interface Pipe {
  dir: Direction
  /** Read and not yet on the link (the link is down); null is a FIN. */
  held: (Buffer | null)[]
  /** On the link: delivery times in order. */
  queue: { at: number; bytes: Buffer | null }[]
  clock: StreamClock
  timer: NodeJS.Timeout | null
  /** Bytes in held and queue. */
  pending: number
  delivered: number
}

interface Conn {
  id: number
  from: string
  client: net.Socket
  target: net.Socket | null
  closed: Record<Side, boolean>
  up: Pipe
  down: Pipe
  /** How the connection started to end, first cause wins. */
  ending: { by: CloseBy; how: 'fin' | 'rst'; reason?: string } | null
  /** A side reset while the link was down: pass the reset on when it comes back. */
  resetFrom: Side | null
  /** We reset or destroyed the sockets ourselves: their 'close' needs no passing on. */
  killed: boolean
}

/** A setTimeout delay for `ms`: whole ms, at most a day (longer ones overflow Node's timers; callers re-arm). */
const timerDelay = (ms: number) => Math.min(86_400_000, Math.max(0, Math.ceil(ms)))

const pipe = (dir: Direction): Pipe => ({ dir, held: [], queue: [], clock: streamClock(), timer: null, pending: 0, delivered: 0 })

function endpoint(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** Starts the proxy; resolves once it listens. Throws WeakLinkArgumentError on a shape that makes no sense. */
export async function startWeakLink(opts: WeakLinkOptions): Promise<WeakLink> {
  const { target: targetOpt, listen, profile, seed, random: randomOpt, onEvent, ...overrides } = opts
  const shape = shapeOf(profile ?? 'perfect', overrides)
  checkShape(shape)
  const targetHost = targetOpt.host ?? '127.0.0.1'
  const targetPort = targetOpt.port
  const random = randomOpt ?? seededRandom(seed ?? 1)
  const schedule = new LinkSchedule(shape, random)

  const t0 = performance.now()
  const now = () => performance.now()
  const events: WeakLinkEvent[] = []
  const listeners = new Set<(e: WeakLinkEvent) => void>()
  if (onEvent) listeners.add(onEvent)
  const emit = (e: DistributiveOmit<WeakLinkEvent, 't' | 'time'>) => {
    const full = { t: Math.round(now() - t0), time: Date.now(), ...e } as WeakLinkEvent
    events.push(full)
    if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS)
    for (const l of [...listeners]) l(full)
  }

  const conns = new Map<number, Conn>()
  const openIds = () => [...conns.keys()]
  let nextId = 1
  let stalled = shape.stall
  const blackouts = new Set<number>()
  let nextBlackoutId = 1
  let wasDown = false
  const linkTimers = new Set<NodeJS.Timeout>()
  const stats = { bytesUp: 0, bytesDown: 0, connections: 0, dropped: 0 }
  let stopping = false
  let allClosed: (() => void) | null = null

  const isDown = () => stalled || blackouts.size > 0
  /** Calls fn at `deadline` (performance.now() time), not before: Node's timers may fire up to 1 ms early. */
  const at = (deadline: number, fn: () => void) => {
    const timer = setTimeout(
      () => {
        linkTimers.delete(timer)
        if (now() < deadline) at(deadline, fn)
        else fn()
      },
      timerDelay(deadline - now()),
    )
    linkTimers.add(timer)
  }

  // --- moving bytes -------------------------------------------------------------------

  const source = (c: Conn, p: Pipe) => (p.dir === 'up' ? c.client : c.target)
  const sink = (c: Conn, p: Pipe) => (p.dir === 'up' ? c.target : c.client)

  /** Stop reading a socket while its bytes pile up in the link (and resume when they drain). */
  const flow = (c: Conn, p: Pipe) => {
    const src = source(c, p)
    if (!src || src.destroyed) return
    const load = p.pending + (sink(c, p)?.writableLength ?? 0)
    if (load > WINDOW_BYTES && !src.isPaused()) src.pause()
    else if (load <= WINDOW_BYTES / 2 && src.isPaused()) src.resume()
  }

  const arm = (c: Conn, p: Pipe) => {
    const head = p.queue[0]
    if (p.timer || !head) return
    p.timer = setTimeout(
      () => {
        p.timer = null
        deliver(c, p)
      },
      timerDelay(head.at - now()),
    )
  }

  const deliver = (c: Conn, p: Pipe) => {
    const t = now()
    const dest = sink(c, p)
    for (let head = p.queue[0]; head && head.at <= t; head = p.queue[0]) {
      p.queue.shift()
      if (head.bytes === null) {
        if (dest && !dest.destroyed) dest.end()
        continue
      }
      p.pending -= head.bytes.length
      if (!dest || dest.destroyed || !dest.writable) continue
      dest.write(head.bytes)
      p.delivered += head.bytes.length
      if (p.dir === 'up') stats.bytesUp += head.bytes.length
      else stats.bytesDown += head.bytes.length
    }
    arm(c, p)
    flow(c, p)
  }

  const send = (c: Conn, p: Pipe, chunks: (Buffer | null)[]) => {
    const t = now()
    for (const chunk of chunks) {
      let offset = 0
      for (const seg of schedule.plan(p.dir, p.clock, t, chunk?.length ?? 0)) {
        p.queue.push({ at: seg.at, bytes: chunk === null ? null : chunk.subarray(offset, offset + seg.length) })
        offset += seg.length
      }
    }
    arm(c, p)
  }

  const ingest = (c: Conn, p: Pipe, chunk: Buffer | null) => {
    if (chunk) p.pending += chunk.length
    if (isDown()) p.held.push(chunk)
    else send(c, p, [chunk])
    flow(c, p)
  }

  const clearPipe = (p: Pipe) => {
    if (p.timer) clearTimeout(p.timer)
    p.timer = null
    p.held = []
    p.queue = []
    p.pending = 0
  }

  // --- ends of connections ------------------------------------------------------------

  const kill = (s: net.Socket | null) => {
    if (!s || s.destroyed) return
    if (s.connecting) s.destroy()
    else s.resetAndDestroy()
  }

  const killConn = (c: Conn, ending: NonNullable<Conn['ending']>) => {
    c.ending ??= ending
    c.killed = true
    clearPipe(c.up)
    clearPipe(c.down)
    kill(c.client)
    kill(c.target)
  }

  const finishIfClosed = (c: Conn) => {
    if (!conns.has(c.id) || !c.closed.client || !(c.target === null || c.closed.target)) return
    conns.delete(c.id)
    if (c.up.timer) clearTimeout(c.up.timer)
    if (c.down.timer) clearTimeout(c.down.timer)
    const ending = c.ending ?? { by: 'client', how: 'fin' }
    emit({ event: 'close', conn: c.id, ...ending, up: c.up.delivered, down: c.down.delivered })
    if (conns.size === 0 && allClosed) allClosed()
  }

  /** A side was reset by its peer (or its connect failed): reset the other side too, once the link carries it. */
  const passReset = (c: Conn, from: Side) => {
    if (isDown()) {
      c.resetFrom ??= from
      return
    }
    c.killed = true
    clearPipe(c.up)
    clearPipe(c.down)
    kill(from === 'client' ? c.target : c.client)
  }

  const wire = (c: Conn, side: Side, socket: net.Socket) => {
    const p = side === 'client' ? c.up : c.down
    let errorCode: string | undefined
    socket.on('data', (chunk: Buffer) => ingest(c, p, chunk))
    socket.on('end', () => {
      c.ending ??= { by: side, how: 'fin' }
      ingest(c, p, null)
    })
    socket.on('drain', () => flow(c, side === 'client' ? c.down : c.up))
    socket.on('error', (err: NodeJS.ErrnoException) => {
      errorCode = err.code ?? err.message
    })
    socket.on('close', (hadError) => {
      c.closed[side] = true
      if (!c.killed && hadError) {
        c.ending ??= { by: side, how: 'rst', ...(errorCode ? { reason: errorCode } : {}) }
        passReset(c, side)
      }
      finishIfClosed(c)
    })
  }

  const connectTarget = (c: Conn) => {
    const socket = net.connect({ host: targetHost, port: targetPort, allowHalfOpen: true, noDelay: true })
    c.target = socket
    wire(c, 'target', socket)
  }

  // --- link state ---------------------------------------------------------------------

  /** Applies the link's state after a stall, resume, blackout start or end. */
  const update = () => {
    const down = isDown()
    if (down && !wasDown) {
      // What was on the link is lost with it; TCP sends it again once the link is back.
      schedule.reset()
      for (const c of conns.values()) {
        for (const p of [c.up, c.down]) {
          if (p.timer) clearTimeout(p.timer)
          p.timer = null
          p.held = [...p.queue.map((q) => q.bytes), ...p.held]
          p.queue = []
          p.clock = streamClock()
        }
      }
    }
    if (blackouts.size === 0) {
      for (const c of conns.values()) {
        if (c.target !== null || c.killed) continue
        // Hung during a blackout: connect now, unless the client gave up meanwhile.
        if (c.closed.client || c.client.readableEnded) {
          c.killed = true
          c.ending ??= { by: 'client', how: 'fin' }
          c.client.destroy()
        } else connectTarget(c)
      }
    }
    if (!down && wasDown) {
      for (const c of [...conns.values()]) {
        if (c.resetFrom) {
          passReset(c, c.resetFrom)
          continue
        }
        for (const p of [c.up, c.down]) {
          const held = p.held
          p.held = []
          if (held.length > 0) send(c, p, held)
          flow(c, p)
        }
      }
    }
    wasDown = down
  }

  const startBlackout = (durationMs: number) => {
    const id = nextBlackoutId++
    blackouts.add(id)
    emit({ event: 'blackout-start', conn: null, durationMs, conns: openIds() })
    update()
    at(now() + durationMs, () => {
      blackouts.delete(id)
      if (blackouts.size === 0) emit({ event: 'blackout-end', conn: null, conns: openIds() })
      update()
    })
  }

  const dropAll = () => {
    const ids = openIds()
    emit({ event: 'drop', conn: null, conns: ids })
    for (const c of [...conns.values()]) {
      if (!c.killed) stats.dropped++
      killConn(c, { by: 'drop', how: 'rst' })
    }
  }

  // --- the listener -------------------------------------------------------------------

  // noDelay: the link's own timing is the only delay; Nagle would add up to 40 ms of its own.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    if (stopping) {
      client.destroy()
      return
    }
    const c: Conn = {
      id: nextId++,
      from: endpoint(client.remoteAddress ?? '?', client.remotePort ?? 0),
      client,
      target: null,
      closed: { client: false, target: false },
      up: pipe('up'),
      down: pipe('down'),
      ending: null,
      resetFrom: null,
      killed: false,
    }
    conns.set(c.id, c)
    stats.connections++
    emit({ event: 'open', conn: c.id, from: c.from, held: blackouts.size > 0 ? 'blackout' : stalled ? 'stall' : null })
    wire(c, 'client', client)
    if (blackouts.size === 0) connectTarget(c)
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(listen?.port ?? 0, listen?.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.on('error', () => {
    // After listening, errors are per connection (accept failures): nothing to do here.
  })
  const info = server.address() as net.AddressInfo
  emit({ event: 'listening', conn: null, address: info.address, port: info.port, target: endpoint(targetHost, targetPort), shape })

  if (stalled) {
    emit({ event: 'stall-start', conn: null, conns: [] })
    wasDown = true
  }
  if (shape.dropEveryMs !== null) {
    const every = shape.dropEveryMs
    const dropAt = (k: number) =>
      at(t0 + k * every, () => {
        if (isDown()) emit({ event: 'drop', conn: null, conns: openIds(), skipped: blackouts.size > 0 ? 'blackout' : 'stall' })
        else dropAll()
        dropAt(k + 1)
      })
    dropAt(1)
  }
  for (const b of shape.blackouts) {
    const blackoutAt = (startMs: number) =>
      at(t0 + startMs, () => {
        startBlackout(b.durationMs)
        if (b.everyMs !== undefined) blackoutAt(startMs + b.everyMs)
      })
    blackoutAt(b.atMs)
  }

  let stopped: Promise<void> | undefined
  const link: WeakLink = {
    address: info.address,
    port: info.port,
    shape,
    events,
    get stats() {
      return { ...stats, open: conns.size }
    },
    get down() {
      return isDown()
    },
    stall: () => {
      if (stalled) return
      stalled = true
      emit({ event: 'stall-start', conn: null, conns: openIds() })
      update()
    },
    resume: () => {
      if (!stalled) return
      stalled = false
      emit({ event: 'stall-end', conn: null, conns: openIds() })
      update()
    },
    blackout: (ms: number) => {
      if (!(ms > 0 && Number.isFinite(ms))) throw new WeakLinkArgumentError(`weak link: blackout(ms) needs a duration > 0 ms, got ${ms}`)
      if (!stopping) startBlackout(ms)
    },
    dropAll: () => {
      if (!stopping) dropAll()
    },
    on: (_type, listener) => {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },
    waitForEvent: (match, timeoutMs = 10_000) => {
      const seen = events.find(match)
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(listener)
          const last = events.slice(-5).map((e) => `${e.t} ms ${e.event}${e.conn === null ? '' : ` conn ${e.conn}`}`)
          reject(new Error(`weak link: no matching event within ${timeoutMs} ms (last events: ${last.join('; ') || 'none'})`))
        }, timeoutMs)
        const listener = (e: WeakLinkEvent) => {
          if (!match(e)) return
          clearTimeout(timer)
          listeners.delete(listener)
          resolve(e)
        }
        listeners.add(listener)
      })
    },
    stop: () =>
      (stopped ??= (async () => {
        stopping = true
        for (const t of linkTimers) clearTimeout(t)
        linkTimers.clear()
        const closedAll = new Promise<void>((resolve) => {
          allClosed = resolve
          if (conns.size === 0) resolve()
        })
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()))
        for (const c of [...conns.values()]) killConn(c, { by: 'stop', how: 'rst' })
        await Promise.all([closedAll, serverClosed])
        emit({ event: 'stopped', conn: null, up: stats.bytesUp, down: stats.bytesDown })
      })()),
  }
  return link
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never
