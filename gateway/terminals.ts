/**
 * The serial side: the terminals on the line, as the link (protocol/link.ts) reports them.
 * Sessions (a HELLO: who is at this address, did its numbers start again, what it must be
 * told), each data message to its handler (EVENT in terminal-event.ts; HEARTBEAT and
 * DISPLAY_READ here), supervision (a terminal not heard is reported lost), and the frame
 * errors a technician must hear of.
 */

import type { GatewayLink, LinkEvent } from '../protocol/link.js'
import { assertNever } from '../protocol/errors.js'
import type { DataMessage, Heartbeat, Hello } from '../protocol/messages.js'
import type { GatewayClock } from './clock.js'
import type { GatewayIo, GatewaySettings, Log } from './gateway.js'
import type { GatewayEvents } from './gateway-events.js'
import { claimantId, type KnownTerminal, type KnownTerminals } from './known-terminals.js'
import { epochTagFor, numberingRestarted } from './numbering.js'
import type { Heartbeat as StoreHeartbeat, Reset, Store } from './store.js'
import { handleEvent } from './terminal-event.js'
import type { ToTheButton } from './to-the-button.js'

/** Frame errors from one terminal are logged once, then at most once in this long, ms. */
const FRAME_ERROR_LOG_MS = 60_000
/** A second claimant of a bound id is logged once, then at most once in this long, ms (as frame errors). */
const CONFLICT_LOG_MS = 60_000

export interface TerminalsDeps {
  /** Live: the `config` command changes the heartbeat and the supervision time. */
  settings: GatewaySettings
  store: Store
  link: GatewayLink
  clock: GatewayClock
  io: Pick<GatewayIo, 'now' | 'online' | 'hurry'>
  log: Log
  known: KnownTerminals
  toButton: ToTheButton
  events: GatewayEvents
  /** A named counter in the store, for the status; never throws. */
  count(name: string): void
  /** When the gateway started, gateway clock, ms: a terminal never heard since is lost a supervision time after. */
  startedAt: number
  /** Every heartbeat, as it came (issue 13: the household page shows the latest, whatever the store did with it). */
  heartbeat?: (t: KnownTerminal, hb: StoreHeartbeat, at: number) => void
  /** Whether a terminal's event could be stored (issue 13: the household page says when the store fails). */
  storeWrite?: (ok: boolean) => void
}

export class Terminals {
  readonly #frameErrors = new Map<string, { next: number; repeated: number }>()
  /** Second claimants seen this run, by `id|bound address|address`: reported to the platform once, logged at most once a minute. */
  readonly #conflicts = new Map<string, { next: number; repeated: number }>()

  constructor(private readonly d: TerminalsDeps) {}

  /** Handles every event the link has for the gateway; returns how many. */
  drain(): number {
    const { link, log } = this.d
    let n = 0
    for (let e = link.nextEvent(); e; e = link.nextEvent(), n++) {
      try {
        this.#onLinkEvent(e)
      } catch (err) {
        // One bad event must not stop the others, nor the gateway.
        log.error({ err, event: e.kind }, 'internal error handling a link event')
        // A message left without an answer stops the terminal's line for good (each copy it
        // sends again is a duplicate of the one awaited): NAK busy, it sends it again later.
        // A no-op if it was answered before the error.
        if (e.kind === 'message') link.defer(e.ref)
      }
    }
    return n
  }

  #onLinkEvent(e: LinkEvent): void {
    const { known, log } = this.d
    switch (e.kind) {
      case 'session':
        return this.#onSession(e.peer, e.hello!, e.restarted)
      case 'message':
        return this.#onMessage(e.from, e.ref, e.message)
      case 'liveness':
        log.info({ address: e.peer, terminal: known.at(e.peer)?.terminal, up: e.up }, e.up ? 'terminal answers again' : 'terminal not answering')
        return
      case 'dropped':
        if (e.reason === 'queue-full') {
          log.warn({ address: e.to, message: e.message.type }, 'message to terminal dropped: its queue is full')
          if (e.message.type === 'INDICATE') this.d.toButton.dropped(e.to, e.message.event)
        }
        return
      case 'refused':
        log.warn({ address: e.to, message: e.message.type, reason: e.reason }, 'terminal refused a message')
        return
      case 'frame-error':
        return this.#onFrameError(e)
      case 'delivered':
        return // counted by the link; summarised in the status
      default:
        return assertNever(e, 'link event')
    }
  }

  /**
   * Garbage on a long cable is expected and only counted. But a frame from a terminal that
   * passed its CRC and still cannot be read is a firmware fault, and a HELLO that cannot be
   * read means that terminal can never open a session: the log must say why, once, then at
   * most once a minute per terminal, frame type and error. [LINK-9.1]
   */
  #onFrameError(e: Extract<LinkEvent, { kind: 'frame-error' }>): void {
    if (e.from === undefined || (e.type !== 'HELLO' && e.code !== 'LINK_BAD_SCHEMA' && e.code !== 'LINK_BAD_CBOR')) return
    const key = `${e.from}:${e.type ?? '?'}:${e.code}`
    const now = this.d.io.now()
    const seen = this.#frameErrors.get(key)
    if (seen && now < seen.next) {
      seen.repeated++
      return
    }
    this.#frameErrors.set(key, { next: now + FRAME_ERROR_LOG_MS, repeated: 0 })
    const what =
      e.type === 'HELLO'
        ? 'a terminal HELLO was refused: it cannot open a session until its firmware sends a valid HELLO (PROTOCOL.md section 5)'
        : `a ${e.type ?? 'frame'} from a terminal was refused (answered NAK): its firmware sends what PROTOCOL.md section 5 does not allow`
    this.d.log.warn({ address: e.from, type: e.type, code: e.code, detail: e.detail, ...(seen ? { repeatedSinceLast: seen.repeated } : {}) }, `${what}: ${e.detail}`)
  }

  /**
   * A HELLO opened a session at this address. Who is it? The id it claims, if that id is
   * bound here or nowhere yet (then it is bound here now); if the id is bound to another
   * address, a second claimant ([LINK-7.4], issue 12). The serial line has no authentication,
   * so the gateway cannot tell an impersonator from the real terminal re-wired to a new
   * address, and it must not let either act as the bound terminal, nor lose the alarms of
   * either:
   *
   * - everything the claimant says is filed under an identity of its own (`claimantId`:
   *   `SL-T-5@gw-1.a7`), with its own numbering, replay window and epoch. So its HELLO
   *   cannot reset the bound terminal's numbering (the old way, a lower `boot` or
   *   `lastEvent` started a new epoch and cut the bound terminal off its stages), its EVENT
   *   numbers cannot take the bound terminal's next numbers (the old way, a high number
   *   made the bound terminal's next emergency fall below the replay window: ACKed as a
   *   replay and never published), its cancel cancels only its own alarms, and the bound
   *   terminal's stages are never sent to it;
   * - its alarms are stored, published (marked `claims`) and shown their own stages: if it
   *   is the real terminal moved to another address, its emergency still reaches 110, and
   *   its herder is told `received` only when the platform has it, under that identity. An
   *   impersonator gains nothing it did not have: it could send alarms under any unbound id;
   * - the platform hears of it once per run (trouble `terminal-id-conflict`, both
   *   addresses), the log at most once a minute.
   *
   * A terminal honestly moved is re-bound by a person at the board (`steppelink terminals
   * rebind`), never by what the line says.
   */
  #onSession(address: number, hello: Hello, restarted: boolean): void {
    const { settings, store, link, clock, log, known, toButton } = this.d
    const previous = known.at(address)
    const bound = known.boundAddress(hello.terminal)
    const claims = bound !== undefined && bound !== address ? hello.terminal : undefined
    const terminal = claims !== undefined ? claimantId(claims, settings.gateway, address) : hello.terminal
    if (bound === undefined) known.bind(hello.terminal, address)
    if (previous && previous.terminal !== terminal) {
      log.warn({ address, was: previous.terminal, now: terminal }, 'a different terminal answers at this address')
    }
    let reset: Reset | null = null
    try {
      reset = store.hello(terminal, hello.boot, hello.lastEvent, epochTagFor(settings.gateway, terminal))
    } catch (err) {
      log.error({ err, terminal }, 'could not record the terminal HELLO in the store')
    }
    const t: KnownTerminal = {
      address,
      terminal,
      lost: previous?.lost ?? false,
      capabilities: hello.capabilities,
      epoch: reset?.epoch ?? store.numbering(terminal)?.epoch ?? '',
      ...(claims !== undefined ? { claims } : {}),
    }
    known.set(t)
    if (claims !== undefined && bound !== undefined) this.#conflict(t, claims, bound)
    toButton.forget(address)
    try {
      known.save()
    } catch (err) {
      // A failing disk must not cost the terminal its CONFIG, TIME and stages below; the
      // list is saved again at the next session.
      log.error({ err, terminal }, 'could not save the known terminals; the session goes on')
    }
    log.info({ address, terminal, firmware: hello.firmware, boot: hello.boot, lastEvent: hello.lastEvent, restarted, ...(claims !== undefined ? { claims } : {}) }, 'terminal session open')
    if (reset) numberingRestarted(this.d, t, reset, hello.lastEvent)
    link.send(address, { type: 'CONFIG', heartbeat: settings.heartbeatS })
    if (clock.synchronised) link.send(address, { type: 'TIME', unix: Math.floor(clock.now().at / 1000), estimate: false })
    toButton.sessionOpened(t)
  }

  /**
   * A second claimant of a bound id: the platform is told once per run and pair of
   * addresses (not at every HELLO: a claimant can send one a second), the log once, then at
   * most once a minute with how many HELLOs came meanwhile. [LINK-7.4]
   */
  #conflict(t: KnownTerminal, claims: string, boundAddress: number): void {
    const key = `${claims}|${boundAddress}|${t.address}`
    const now = this.d.io.now()
    const seen = this.#conflicts.get(key)
    if (seen && now < seen.next) {
      seen.repeated++
      return
    }
    this.#conflicts.set(key, { next: now + CONFLICT_LOG_MS, repeated: 0 })
    this.d.log.warn(
      { terminal: claims, boundAddress, address: t.address, as: t.terminal, ...(seen ? { repeatedSinceLast: seen.repeated } : {}) },
      `terminal id ${claims} is bound to address ${boundAddress}, and a second device claims it from address ${t.address}: it never acts as ${claims}; its events are filed apart, as ${t.terminal}. If ${claims} was re-wired to address ${t.address}, stop the gateway and run 'steppelink terminals rebind ${claims} ${t.address}'`,
    )
    if (seen) return
    this.d.events.record('terminal-id-conflict', { ...t, terminal: claims }, `terminal id ${claims}, bound to address ${boundAddress}, claimed from address ${t.address}`, {
      conflict: { terminal: claims, boundAddress, address: t.address, as: t.terminal },
    })
  }

  #onMessage(address: number, ref: number, m: DataMessage): void {
    const { link, log } = this.d
    const terminal = this.d.known.at(address)
    if (!terminal) {
      // Only possible if the link delivered before a session: accept, it is a link bug.
      log.error({ address, message: m.type }, 'message from a terminal without a session')
      link.accept(ref)
      return
    }
    this.#heard(terminal)
    switch (m.type) {
      case 'EVENT':
        return handleEvent(this.d, terminal, ref, m)
      case 'HEARTBEAT':
        return this.#onHeartbeat(terminal, ref, m)
      case 'DISPLAY_READ':
        return this.#onDisplayRead(terminal, ref, m.id, m.revision ?? 0)
      case 'INDICATE':
      case 'DISPLAY':
      case 'TIME':
      case 'CONFIG':
      case 'PING':
        // Gateway-to-terminal types are refused by the link before they get here.
        link.accept(ref)
        return
      default:
        return assertNever(m, 'message')
    }
  }

  #onHeartbeat(t: KnownTerminal, ref: number, m: Heartbeat): void {
    const { store, io, log } = this.d
    const { type: _type, ...heartbeat } = m
    this.d.heartbeat?.(t, heartbeat, io.now())
    // A heartbeat is never worth a NAK: stored, refused or failed, the terminal gets its
    // ACK. It is status, folded in memory; nothing is promised about one. [MQTT-3.4]
    try {
      if (!store.putStatus(t.terminal, t.address, heartbeat, io.now())) {
        log.debug({ terminal: t.terminal, reserveMB: store.limits.reserveMB }, 'disk nearly full: heartbeat dropped and counted to keep room for alarms')
      }
    } catch (err) {
      log.warn({ err, terminal: t.terminal }, 'could not store a heartbeat; it is dropped')
      this.d.count('dropped.status.error')
    }
    this.d.link.accept(ref)
  }

  /**
   * The terminal's user read a broadcast. The platform hears it once per terminal and
   * revision, under an id made of those, so a repeat can be recognised; a read of something
   * this gateway never sent that terminal is not news for the platform. [MQTT-5.7]
   */
  #onDisplayRead(t: KnownTerminal, ref: number, id: number, revision: number): void {
    const { settings, store, link, io, log } = this.d
    try {
      if (store.delivery(id, t.terminal) === undefined) {
        log.warn({ terminal: t.terminal, broadcast: id }, 'terminal reports reading a broadcast this gateway never sent it: ignored')
      } else if (store.broadcastRead(id, t.terminal, revision, io.now())) {
        this.d.events.record('broadcast-read', t, `broadcast ${id}`, { broadcast: id, revision }, `${settings.gateway}/read/${id}.${revision}/${t.terminal}`)
      } else {
        log.debug({ terminal: t.terminal, broadcast: id, revision }, 'broadcast read again: already reported')
      }
    } catch (err) {
      log.error({ err, terminal: t.terminal, broadcast: id }, 'could not record a broadcast read; the terminal sends it again')
      link.defer(ref)
      return
    }
    link.accept(ref)
  }

  // ------------------------------------------------------------------ supervision

  #heard(t: KnownTerminal): void {
    if (!t.lost) return
    t.lost = false
    this.d.events.record('terminal-restored', t)
  }

  /** Reports the terminals not heard for the supervision time lost, and those heard again restored. Returns when to look next, or null. */
  supervise(now: number): number | null {
    const { settings, link, known } = this.d
    let next: number | null = null
    for (const t of known.values()) {
      const last = Math.max(link.terminal(t.address)?.lastHeard ?? 0, this.d.startedAt)
      if (!t.lost && now - last >= settings.supervisionMs) {
        t.lost = true
        this.d.events.record('terminal-lost', t)
      } else if (t.lost && now - last < settings.supervisionMs) {
        this.#heard(t)
      }
      const d = last + settings.supervisionMs
      if (!t.lost && (next === null || d < next)) next = d
    }
    return next
  }
}
