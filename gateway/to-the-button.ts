/**
 * The path back to the button: what the herder at the terminal is shown of an alarm after
 * pressing, and what the platform publishes to the grassland. Half of the gateway's promise
 * is here: the terminal always shows the honest state of an alarm.
 *
 * - INDICATE: the stage of each alarm or request (stored, sent, received, acknowledged,
 *   dispatched, resolved) with the operator's text and the minutes until help, once per
 *   stage and session [LINK-4.2] [LINK-5.7]; and `unconfirmed` ("call 110 by phone") when
 *   the platform's receipt is late, or when the alarm could not even be stored.
 * - DISPLAY: the platform's broadcasts, and their withdrawal, to each terminal with a
 *   display that has not read them. [LINK-5.8]
 *
 * The platform's commands (commands/) decide what changes; the serial side (terminals.ts)
 * says when a session starts again. This file only composes what goes on the line.
 */

import { fitText, splitDisplayText } from '../protocol/display.js'
import type { GatewayLink } from '../protocol/link.js'
import type { Indicate } from '../protocol/messages.js'
import type { GatewayClock } from './clock.js'
import type { GatewayIo, GatewaySettings, Log } from './gateway.js'
import type { KnownTerminal, KnownTerminals } from './known-terminals.js'
import type { StoredBroadcast, StoredEvent, Store } from './store.js'

/** Stages shown on the terminal for alarm and request classes. */
export const INDICATED_CLASSES = new Set(['alarm', 'request'])
/** The longest INDICATE text, bytes of UTF-8; an operator's longer text is cut with '…'. [LINK-5.7] */
export const INDICATE_TEXT_MAX_BYTES = 120
/** A terminal shows alerts resolved this recently again after a restart, ms. */
const RECENT_MS = 3_600_000
const INDICATE_PRIORITY = 10
/** Messages queued to a terminal beyond which INDICATEs of one alert replace each other. */
const INDICATE_BACKLOG = 8
/** The text of the DISPLAY that withdraws a broadcast; never shown ([LINK-5.8], `expires` 0). */
const WITHDRAWN_TEXT = 'withdrawn'

export interface ToTheButtonDeps {
  settings: Pick<GatewaySettings, 'receiptTimeoutMs'>
  store: Store
  link: GatewayLink
  clock: GatewayClock
  io: Pick<GatewayIo, 'now'>
  log: Log
  known: KnownTerminals
  /** Puts what the link has queued on the serial line. */
  flush(): void
}

export class ToTheButton {
  /**
   * What each terminal has been sent in its current session, by event number: the stage and
   * text of the last INDICATE. A stage is not sent twice in a session. [LINK-4.2]
   */
  readonly #shown = new Map<number, Map<number, string>>()
  /** Events a terminal was told `unconfirmed` about because they could not be stored, by `address:number`. */
  readonly #unstored = new Set<string>()

  constructor(private readonly d: ToTheButtonDeps) {}

  /**
   * Shows a case's stage on its terminal, with the operator's text (cut to fit the line,
   * with an ellipsis) and the minutes until help is expected, as they are now: an
   * INDICATE sent again after a restart is whole and its ETA still true. A stage is sent
   * once per session. [LINK-4.2] [LINK-5.7]
   */
  indicate(e: StoredEvent): void {
    if (e.number === null || e.terminal === null) return
    const known = this.d.known.named(e.terminal)
    const address = known?.address ?? e.address
    const epoch = known?.epoch ?? this.d.store.numbering(e.terminal)?.epoch ?? ''
    // [invariant 3 of store.ts] After a reset, the terminal's numbers mean other events.
    if (address === null || e.epoch !== epoch) return
    const text = e.stageText === null ? undefined : fitText(e.stageText, INDICATE_TEXT_MAX_BYTES).text
    const eta = e.stage === 'dispatched' && e.stageEtaAt !== null ? Math.min(0xffff, Math.max(0, Math.ceil((e.stageEtaAt - this.d.io.now()) / 60_000))) : undefined
    const key = `${e.stage}|${text ?? ''}`
    let shown = this.#shown.get(address)
    if (shown?.get(e.number) === key) return
    if (!shown) {
      shown = new Map()
      this.#shown.set(address, shown)
    }
    shown.set(e.number, key)
    const message: Indicate = { type: 'INDICATE', event: e.number, stage: e.stage, ...(text ? { text } : {}), ...(eta !== undefined ? { eta } : {}) }
    this.d.link.send(address, message, this.#indicateOptions(address, e.number))
    this.d.flush()
  }

  /** An alarm whose receipt is overdue has become `unconfirmed`: its terminal says "call 110 by phone". [MQTT-4.1] */
  receiptOverdue(e: StoredEvent): void {
    this.d.log.warn({ id: e.id, terminal: e.terminal, receiptTimeoutMs: this.d.settings.receiptTimeoutMs }, 'ALARM NOT CONFIRMED by the platform: terminal told to call 110 by phone; still trying')
    this.indicate(e)
  }

  /**
   * An alarm or request that could not be stored waits in the terminal's memory and comes
   * again on NAK busy; a herder must not wait at "sending" meanwhile: the terminal is told
   * `unconfirmed` ("call 110 by phone") at once, once, and `stored` when it is stored.
   */
  unstored(t: KnownTerminal, number: number, cls: string): void {
    const key = `${t.address}:${number}`
    if (!INDICATED_CLASSES.has(cls) || this.#unstored.has(key)) return
    this.#unstored.add(key)
    this.d.log.warn({ terminal: t.terminal, number }, 'ALARM NOT STORED (the disk failed): terminal told to call 110 by phone; it keeps the alarm and sends it again')
    this.d.link.send(t.address, { type: 'INDICATE', event: number, stage: 'unconfirmed' }, this.#indicateOptions(t.address, number))
    this.#shown.get(t.address)?.delete(number)
    this.d.flush()
  }

  /** The event is stored at last: the next `unconfirmed` for its number is news again. */
  stored(address: number, number: number): void {
    this.#unstored.delete(`${address}:${number}`)
  }

  /** A new session, or new numbering, at this address: what it was shown counts no more. */
  forget(address: number): void {
    this.#shown.delete(address)
    // Its numbers may mean other events now (a reset): an unstored one is news again.
    for (const key of this.#unstored) if (key.startsWith(`${address}:`)) this.#unstored.delete(key)
  }

  /** An INDICATE never reached the terminal (its queue was full): the stage is news again. */
  dropped(address: number, event: number): void {
    this.#shown.get(address)?.delete(event)
  }

  /**
   * A terminal's session is open and it knows its settings: it may have lost its display
   * state. It is shown each open alert of its current numbering again (an old epoch's
   * numbers mean other events to it now), and the broadcasts it should hold.
   */
  sessionOpened(t: KnownTerminal): void {
    for (const alert of this.d.store.recentAlerts(t.terminal, t.epoch, this.d.io.now() - RECENT_MS)) this.indicate(alert)
    this.#sendBroadcasts(t)
  }

  /**
   * While the line to a terminal keeps up, every stage goes in turn (each has its beeps).
   * Once a backlog builds (a terminal that was away, a burst of alarms), a newer stage
   * replaces one of the same alert not yet sent: the queue then holds each alert's latest
   * stage, and never overflows into dropping one.
   */
  #indicateOptions(address: number, event: number): { priority: number; coalesce?: string } {
    const busy = (this.d.link.terminal(address)?.queued ?? 0) >= INDICATE_BACKLOG
    return busy ? { priority: INDICATE_PRIORITY, coalesce: `indicate:${event}` } : { priority: INDICATE_PRIORITY }
  }

  // ------------------------------------------------------------------ broadcasts

  /** A broadcast new or replaced: to every terminal in session now (the others get it at their next session). Returns how many. */
  broadcast(b: StoredBroadcast): number {
    const sessions = this.d.known.inSession(this.d.link)
    for (const t of sessions) this.#display(t, b)
    return sessions.length
  }

  /** A broadcast withdrawn: to every terminal in session now that holds it unread. Returns how many. */
  withdraw(b: StoredBroadcast): number {
    const holders = new Set(
      this.d.store
        .deliveries(b.id)
        .filter((d) => d.readRevision === null || d.readRevision < d.revision)
        .map((d) => d.terminal),
    )
    const sessions = this.d.known.inSession(this.d.link).filter((t) => holders.has(t.terminal))
    for (const t of sessions) this.#display(t, b)
    return sessions.length
  }

  /**
   * At a session: the broadcasts this terminal should hold. Each active one it has not
   * read in its current revision (it may have lost what it held: a power cut), and the
   * withdrawal of each one it was sent and has not read. Never what it has read. [LINK-5.8]
   */
  #sendBroadcasts(t: KnownTerminal): void {
    for (const b of this.d.store.broadcasts(this.d.clock.now().at)) {
      const d = this.d.store.delivery(b.id, t.terminal)
      const read = d !== undefined && d.readRevision !== null && d.readRevision >= (b.withdrawn ? d.revision : b.revision)
      if (read) continue
      if (b.withdrawn && (d === undefined || d.revision >= b.revision)) continue
      this.#display(t, b)
    }
  }

  /** Sends a broadcast (or its withdrawal) to a terminal with a display, and records it. */
  #display(t: KnownTerminal, b: StoredBroadcast): void {
    if (!t.capabilities.includes('display')) return
    const revision = b.revision > 0 ? { revision: b.revision } : {}
    if (b.withdrawn) {
      // `expires` 0 is in the past for any clock: the terminal removes the text at once,
      // even if it does not know the time. [LINK-5.8]
      this.d.link.send(t.address, { type: 'DISPLAY', id: b.id, text: WITHDRAWN_TEXT, urgency: b.urgency, expires: 0, ...revision })
    } else {
      const { parts, truncated } = splitDisplayText(b.text)
      if (truncated) this.d.log.warn({ broadcast: b.id }, 'broadcast text too long for the terminal display: cut after 15 parts')
      parts.forEach((part, i) => {
        this.d.link.send(t.address, {
          type: 'DISPLAY',
          id: b.id,
          text: part,
          urgency: b.urgency,
          ...(b.expires !== null ? { expires: Math.floor(b.expires / 1000) } : {}),
          ...(parts.length > 1 ? { part: i + 1, parts: parts.length } : {}),
          ...revision,
        })
      })
    }
    this.d.store.broadcastSent(b.id, t.terminal, b.revision, this.d.io.now())
  }
}
