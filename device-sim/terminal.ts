/**
 * The one-button terminal's firmware logic, as the simulator and the tests run it: the
 * TerminalLink end of the serial protocol plus what PROTOCOL.md section 8 asks of a
 * terminal. No I/O of its own beyond its non-volatile memory (a small JSON file written
 * atomically, as a flash page would be): bytes in with receive(), bytes out through
 * `write`, time told with tick().
 *
 * Non-volatile state [LINK-5.5] [LINK-8.1]: the boot counter (+1 at every start), the last
 * event number, and every event not yet acknowledged by the gateway. A press is written
 * there before anything is sent, so a power cut between the press and the gateway's ACK
 * loses nothing: the event is sent again, under the same number, after the restart.
 */

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import type { ShownStage } from '../protocol/lifecycle.js'
import { TerminalLink, type LinkEvent } from '../protocol/link.js'
import { DEFAULT_HEARTBEAT_S, type Capability, type Display, type Event, type EventKind, type Urgency } from '../protocol/messages.js'

export interface NvState {
  boot: number
  lastEvent: number
  /** Events pressed and not yet acknowledged by the gateway, in number order. */
  pending: Event[]
}

/** Where the non-volatile memory lives: a file, or memory for tests. */
export interface NvMemory {
  load(): NvState | null
  save(state: NvState): void
}

export function fileMemory(path: string): NvMemory {
  return {
    load: () => (existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as NvState) : null),
    save: (state) => {
      // Write a new file and rename it over the old one, fsynced: a power cut leaves the
      // old state or the new one, never half of each.
      mkdirSync(dirname(path), { recursive: true })
      const tmp = `${path}.tmp`
      const fd = openSync(tmp, 'w')
      try {
        writeSync(fd, JSON.stringify(state))
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
      renameSync(tmp, path)
    },
  }
}

export function ramMemory(initial: NvState | null = null): NvMemory & { state: NvState | null } {
  const m = {
    state: initial,
    load: () => (m.state ? structuredClone(m.state) : null),
    save: (s: NvState) => {
      m.state = structuredClone(s)
    },
  }
  return m
}

/**
 * What the terminal shows for one alert: a stage from the gateway's INDICATE, or one of
 * the local display states `saved` (in NV memory) and `delivered` (ACKed by the gateway,
 * the same moment as `stored`). protocol/lifecycle.ts has them in order. [LINK-5.7]
 */
export type { ShownStage } from '../protocol/lifecycle.js'

/** One alert as the terminal shows it: its latest stage, with the INDICATE's text and eta. */
export interface AlertState {
  event: number
  /** The kind pressed, or null for an event this boot knows only from an INDICATE. */
  kind: EventKind | null
  stage: ShownStage
  text?: string
  /** Minutes until help arrives, counted from `at`. */
  eta?: number
  /** When this stage was shown, ms (the device's clock). */
  at: number
}

/** A broadcast text held until the user reads it (DISPLAY_READ) or it expires. [LINK-5.8] */
export interface DisplayText {
  id: number
  /** The parts received so far, in part order. */
  text: string
  urgency: Urgency
  /** When its first part arrived, ms (the device's clock). */
  at: number
  /** UNIX seconds after which it is stale, if the gateway said. */
  expires?: number
  /** False while parts of a long text are missing. */
  complete: boolean
}

/** What the terminal shows: the stage of each alert, the link, the last broadcast. */
export type TerminalUpdate =
  | { kind: 'stage'; event: number; stage: ShownStage; text?: string; eta?: number }
  | { kind: 'link'; up: boolean }
  | { kind: 'display'; id: number; text: string; urgency: string }
  | { kind: 'time'; unix: number }

export interface TerminalDeviceOptions {
  address: number
  terminal: string
  firmware?: string
  capabilities?: Capability[]
  memory: NvMemory
  baud?: number
  random?: () => number
  /** Called for everything the terminal would show on its LEDs, buzzer and display. */
  onUpdate?: (u: TerminalUpdate) => void
  /** Starting time, ms. */
  now?: number
}

const ALARM_PRIORITY = 10
const EVENT_PRIORITY = 5
const DISPLAY_READ_PRIORITY = 1
/**
 * An alarm not acknowledged by the gateway this long after the press shows `unconfirmed`
 * ("call 110 by phone") even though the gateway answers (NAK busy: it cannot store it, its
 * disk failed), ms. [LINK-8.2]
 */
export const UNDELIVERED_ALARM_MS = 30_000
/** Kinds sent before anything else [LINK-8.1] and shown `unconfirmed` while the gateway is silent [LINK-8.2]. */
export const ALARM_KINDS: ReadonlySet<EventKind> = new Set<EventKind>(['medical', 'emergency', 'fire', 'panic', 'cancel'])

export class TerminalDevice {
  readonly link: TerminalLink
  readonly #memory: NvMemory
  readonly #state: NvState
  readonly #onUpdate: (u: TerminalUpdate) => void
  readonly #refs = new Map<number, number>()
  readonly #started: number
  #now: number
  #heartbeatS = DEFAULT_HEARTBEAT_S
  #nextHeartbeat: number
  #mains = true
  #battery = 100
  #timeOffset: number | null = null
  #gateway: string | null = null
  /** Kinds of the events this boot knows (pressed now, or still in NV memory). */
  readonly #kinds = new Map<number, EventKind>()
  readonly #alerts = new Map<number, AlertState>()
  readonly #displays = new Map<number, { urgency: Urgency; at: number; expires?: number; parts: Map<number, string>; total: number; revision: number }>()
  /** Broadcasts confirmed with DISPLAY_READ, id to revision: a repeat is not shown again, a higher revision is. */
  readonly #read = new Map<number, number>()
  /** When each alarm of this boot was pressed (or found in NV memory at start), for [LINK-8.2]. */
  readonly #pressedAt = new Map<number, number>()
  /** The latest stage shown for each event number. */
  readonly stages = new Map<number, ShownStage>()

  constructor(readonly options: TerminalDeviceOptions) {
    this.#memory = options.memory
    const loaded = options.memory.load()
    this.#state = loaded ?? { boot: 0, lastEvent: 0, pending: [] }
    this.#state.boot++
    this.#memory.save(this.#state)
    this.#onUpdate = options.onUpdate ?? (() => {})
    this.#now = options.now ?? 0
    this.#started = this.#now
    this.#nextHeartbeat = this.#now + this.#heartbeatS * 1000
    this.link = new TerminalLink({
      address: options.address,
      ...(options.baud !== undefined ? { baud: options.baud } : {}),
      ...(options.random ? { random: options.random } : {}),
      hello: () => ({
        terminal: options.terminal,
        firmware: options.firmware ?? 'sim-1.0',
        capabilities: options.capabilities ?? ['display', 'buzzer', 'battery', 'mains-sense', 'keys'],
        boot: this.#state.boot,
        lastEvent: this.#state.lastEvent,
      }),
    })
    // Events a power cut interrupted go out again, first, under their own numbers, and
    // show as saved until the gateway has them. [LINK-8.1] [LINK-8.2]
    for (const e of this.#state.pending) {
      this.#kinds.set(e.number, e.kind)
      if (ALARM_KINDS.has(e.kind)) this.#pressedAt.set(e.number, this.#now)
      this.#show({ kind: 'stage', event: e.number, stage: 'saved' })
      this.#queue(e)
    }
    this.#drain()
  }

  get boot(): number {
    return this.#state.boot
  }

  get pending(): readonly Event[] {
    return this.#state.pending
  }

  /** Every alert this boot has shown, by event number: what the LEDs and display follow. */
  get alerts(): ReadonlyMap<number, AlertState> {
    return this.#alerts
  }

  /**
   * Broadcast texts not yet read, oldest first; expired ones are left out once the
   * terminal knows the time. [LINK-5.8]
   */
  get displays(): DisplayText[] {
    const unix = this.#timeOffset === null ? null : (this.#now + this.#timeOffset) / 1000
    const out: DisplayText[] = []
    for (const [id, d] of this.#displays) {
      if (unix !== null && d.expires !== undefined && d.expires < unix) continue
      const parts = [...d.parts].sort(([a], [b]) => a - b).map(([, t]) => t)
      out.push({ id, text: parts.join(''), urgency: d.urgency, at: d.at, ...(d.expires !== undefined ? { expires: d.expires } : {}), complete: d.parts.size >= d.total })
    }
    return out
  }

  /** The id of the gateway of the current (or last) session, from its WELCOME. */
  get gateway(): string | null {
    return this.#gateway
  }

  /**
   * The user has read broadcast `id` (a key pressed while it was shown): it leaves the
   * display and DISPLAY_READ goes to the gateway, once per id. Returns false, and sends
   * nothing, for an id not held. [LINK-5.8]
   */
  readDisplay(id: number): boolean {
    const held = this.#displays.get(id)
    if (!held) return false
    this.#displays.delete(id)
    this.#read.set(id, held.revision)
    this.link.send({ type: 'DISPLAY_READ', id, ...(held.revision > 0 ? { revision: held.revision } : {}) }, { priority: DISPLAY_READ_PRIORITY, coalesce: `display-read:${id}` })
    this.#drain()
    return true
  }

  /** A button: the event goes to non-volatile memory first, then on the line. */
  press(kind: EventKind, user?: number): Event {
    const number = ++this.#state.lastEvent
    const event: Event = {
      type: 'EVENT',
      number,
      kind,
      boot: this.#state.boot,
      uptime: Math.floor((this.#now - this.#started) / 1000),
      ...(user !== undefined ? { user } : {}),
      ...(this.#timeOffset !== null ? { time: Math.floor((this.#now + this.#timeOffset) / 1000) } : {}),
    }
    this.#state.pending.push(event)
    this.#memory.save(this.#state)
    this.#kinds.set(number, kind)
    if (ALARM_KINDS.has(kind)) this.#pressedAt.set(number, this.#now)
    this.#show({ kind: 'stage', event: number, stage: 'saved' })
    this.#queue(event)
    this.#drain()
    return event
  }

  /** Mains and battery as the sensors would report them. */
  setPower(mains: boolean, battery: number): void {
    this.#mains = mains
    this.#battery = battery
  }

  receive(bytes: Uint8Array, now: number): void {
    this.#now = Math.max(this.#now, now)
    this.link.receive(bytes, now)
    this.#drain()
  }

  transmit(): Uint8Array | null {
    return this.link.transmit()
  }

  /** Advances time; returns the next deadline. */
  tick(now: number): number {
    this.#now = Math.max(this.#now, now)
    if (now >= this.#nextHeartbeat) {
      this.link.send(
        { type: 'HEARTBEAT', uptime: Math.floor((now - this.#started) / 1000), mains: this.#mains, battery: this.#battery, pending: this.#state.pending.length },
        { coalesce: 'heartbeat' },
      )
      this.#nextHeartbeat = now + this.#heartbeatS * 1000
    }
    const d = this.link.tick(now)
    this.#drain()
    // [LINK-8.2] An alarm the gateway has not taken in time (it answers, but NAK busy):
    // the herder must not wait at "sending".
    let next = Math.min(d ?? Infinity, this.#nextHeartbeat)
    for (const [n, at] of this.#pressedAt) {
      const shown = this.stages.get(n)
      if (shown !== 'saved') continue
      if (now - at >= UNDELIVERED_ALARM_MS) this.#show({ kind: 'stage', event: n, stage: 'unconfirmed' })
      else next = Math.min(next, at + UNDELIVERED_ALARM_MS)
    }
    return next
  }

  #queue(e: Event): void {
    this.#refs.set(this.link.send(e, { priority: ALARM_KINDS.has(e.kind) ? ALARM_PRIORITY : EVENT_PRIORITY }), e.number)
  }

  #show(u: TerminalUpdate): void {
    if (u.kind === 'stage') {
      this.stages.set(u.event, u.stage)
      this.#alerts.set(u.event, {
        event: u.event,
        kind: this.#kinds.get(u.event) ?? null,
        stage: u.stage,
        ...(u.text !== undefined ? { text: u.text } : {}),
        ...(u.eta !== undefined ? { eta: u.eta } : {}),
        at: this.#now,
      })
    }
    this.#onUpdate(u)
  }

  /** Holds a DISPLAY part; false when it is not to be shown (read already, or a withdrawal). [LINK-5.8] */
  #hold(m: Display): boolean {
    const revision = m.revision ?? 0
    if (m.expires === 0) {
      // A withdrawal: the text goes, whatever the clock says.
      this.#displays.delete(m.id)
      return false
    }
    const read = this.#read.get(m.id)
    if (read !== undefined && read >= revision) return false
    // A repeat (after a session restart) replaces the part it repeats; a new revision replaces the whole text.
    const old = this.#displays.get(m.id)
    const held = old && old.revision === revision ? old : { urgency: m.urgency, at: this.#now, parts: new Map<number, string>(), total: m.parts ?? 1, revision }
    held.urgency = m.urgency
    held.total = m.parts ?? 1
    if (m.expires !== undefined) held.expires = m.expires
    held.parts.set(m.part ?? 1, m.text)
    this.#displays.set(m.id, held)
    return true
  }

  #drain(): void {
    for (let e = this.link.nextEvent(); e; e = this.link.nextEvent()) this.#onLinkEvent(e)
  }

  #onLinkEvent(e: LinkEvent): void {
    switch (e.kind) {
      case 'delivered': {
        const n = this.#refs.get(e.ref)
        this.#refs.delete(e.ref)
        if (n === undefined) return
        // The gateway has it on disk: it may leave our memory. [LINK-4.3]
        this.#state.pending = this.#state.pending.filter((p) => p.number !== n)
        this.#memory.save(this.#state)
        const shown = this.stages.get(n)
        // Delivered after an `unconfirmed` of our own (the gateway had been failing to store it): it has it now.
        if (shown === 'saved' || (shown === 'unconfirmed' && this.#pressedAt.has(n))) this.#show({ kind: 'stage', event: n, stage: 'delivered' })
        this.#pressedAt.delete(n)
        return
      }
      case 'refused':
      case 'dropped': {
        const n = this.#refs.get(e.ref)
        this.#refs.delete(e.ref)
        if (n !== undefined && e.kind === 'refused') {
          // A gateway that cannot read our event will never take it: say so, keep no copy.
          this.#state.pending = this.#state.pending.filter((p) => p.number !== n)
          this.#memory.save(this.#state)
          this.#pressedAt.delete(n)
          this.#show({ kind: 'stage', event: n, stage: 'unconfirmed' })
        }
        return
      }
      case 'message': {
        const m = e.message
        switch (m.type) {
          case 'INDICATE':
            this.#show({ kind: 'stage', event: m.event, stage: m.stage, ...(m.text !== undefined ? { text: m.text } : {}), ...(m.eta !== undefined ? { eta: m.eta } : {}) })
            return
          case 'DISPLAY':
            if (this.#hold(m)) this.#show({ kind: 'display', id: m.id, text: m.text, urgency: m.urgency })
            return
          case 'TIME':
            this.#timeOffset = m.unix * 1000 - this.#now
            this.#show({ kind: 'time', unix: m.unix })
            return
          case 'CONFIG':
            if (m.heartbeat !== undefined) {
              this.#heartbeatS = m.heartbeat
              this.#nextHeartbeat = Math.min(this.#nextHeartbeat, this.#now + m.heartbeat * 1000)
            }
            return
          case 'PING':
            this.#nextHeartbeat = this.#now
            return
          default:
            return
        }
      }
      case 'liveness':
        this.#show({ kind: 'link', up: e.up })
        // The gateway is down and an alarm has not reached the platform: tell the user to
        // phone. [LINK-8.2]
        // A call-back request goes no further than `stored` [LINK-5.7]: once the gateway
        // has it, a silent gateway says nothing about it.
        if (!e.up) {
          for (const [n, s] of this.stages) {
            const kind = this.#kinds.get(n)
            const request = kind !== undefined && !ALARM_KINDS.has(kind)
            if (s === 'saved' || (!request && (s === 'delivered' || s === 'stored' || s === 'sent'))) this.#show({ kind: 'stage', event: n, stage: 'unconfirmed' })
          }
        }
        return
      case 'session':
        if (e.welcome) this.#gateway = e.welcome.gateway
        this.#show({ kind: 'link', up: true })
        return
      case 'frame-error':
        return
    }
  }
}
