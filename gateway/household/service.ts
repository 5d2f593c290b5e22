/**
 * The center household's view of its gateway, and what it can do there (issue 13): the
 * HouseholdService of model.ts, behind the household page, the local API and
 * `steppelink status | relay | inbox`. Made inside Gateway (gateway.ts) and reached as
 * `gateway.household`; it reads the core's parts and the store, and never throws into the
 * core.
 *
 * - snapshot(): plain data, gathered fresh at each call (tens of rows: a few ms on the
 *   board). Times are the gateway's clock corrected by the platform's offset when known.
 * - relay(): a message for a neighbour, checked by the one rule of a relay (checkRelay in
 *   model.ts, as the page, the local API and the command line check it), stored durably
 *   (one synchronous=FULL commit, with its idempotency key) before it returns, then
 *   published as a terminal's event of its class would be: an alarm on `alert` at once
 *   and again until the receipt, a request in the backlog. [MQTT-3.11]
 * - markRead() / passedOn(): the household's state of a broadcast, kept in the store, and
 *   an event for the platform, which counts per broadcast who got, read and passed it on.
 *   [MQTT-5.7]
 * - subscribe(): called back once per burst of changes (queueMicrotask), never more than
 *   once per turn of the event loop; a listener that throws is logged and forgotten about.
 *
 * The verdict (the plain sentence at the top of the page), in this order of weight:
 * - `down` ("an alarm pressed now would not even be heard or stored"): no terminal is
 *   answering on the serial line (none known, or none with its session up), reason
 *   `no-terminal`; or the store fails (a read throws, or the last write of an event, a
 *   terminal's or a relay, failed and none has succeeded since), reason `store-failing`.
 * - `delayed` ("stored now, sent when it can be"): the uplink is offline
 *   (`uplink-offline`); free disk is below limits.reserveMB (`disk-low`: alarms are still
 *   stored, the gateway's own lower-class events are not); or some, not all, terminals are
 *   lost (`terminal-lost`: a press on those is not heard; on the others it is).
 * - `ok` otherwise. `clock-estimated` and `commands-not-authenticated` are reasons that do
 *   not lower the level: they are said, in the page's small print.
 */

import { CLASS_OF, GATEWAY_KINDS, MQTT_CONTRACT_VERSION, RELAY_ALARM_KINDS, type RELAY_WHATS as CONTRACT_RELAY_WHATS, type PriorityClass } from '../../protocol/mqtt.js'
import { contactIdOf } from '../../protocol/messages.js'
import type { GatewayClock } from '../clock.js'
import type { CommandAuth } from '../commands/auth.js'
import type { GatewayEvents } from '../gateway-events.js'
import type { GatewayIo, GatewaySettings, Log } from '../gateway.js'
import type { KnownTerminals } from '../known-terminals.js'
import type { Heartbeat, StageEntry, Store, StoredEvent } from '../store.js'
import { RESOLVED_KEEP_MS } from '../store.js'
import type { GatewayLink } from '../../protocol/link.js'
import {
  checkRelay,
  RELAY_WHATS,
  relayRefused,
  type AlertView,
  type BroadcastActionResult,
  type BroadcastView,
  type HouseholdService,
  type HouseholdSnapshot,
  type RelayInfo,
  type RelayInput,
  type RelayResult,
  type RelayWhat,
  type TerminalView,
  type VerdictReason,
} from './model.js'

// The page's kinds are the contract's, in the same order (a change to one without the other does not compile).
const _sameWhats: readonly [...typeof CONTRACT_RELAY_WHATS] = RELAY_WHATS
void _sameWhats

/** Households a broadcast may be passed on to: about 18 around a center household; 500 is a sanity bound. */
export const MAX_HOUSEHOLDS = 500
/** A relay's idempotency key longer than this is not a form's key: the relay is made without one (no protection from a double submit). */
const MAX_KEY_LENGTH = 200

export interface HouseholdDeps {
  settings: GatewaySettings
  store: Store
  link: GatewayLink
  clock: GatewayClock
  io: GatewayIo
  log: Log
  known: KnownTerminals
  events: GatewayEvents
  auth: Pick<CommandAuth, 'authenticated'>
  /** Publishes whatever is due (the relay, at once). */
  pump(): void
}

export class Household implements HouseholdService {
  readonly #listeners = new Set<() => void>()
  #scheduled = false
  /** The last PUBACK or command from the platform, gateway clock. */
  #lastContact: number | null = null
  /** Each terminal's latest heartbeat and when (gateway clock), by terminal id. */
  readonly #heartbeats = new Map<string, { hb: Heartbeat; at: number }>()
  /** A write of the household's failed, and none has succeeded since: the store is failing. */
  #writeFailed = false
  /** The uplink's state as the core last saw it, when main.ts gives no hook. */
  #uplinkSince: number | null = null
  #wasOnline: boolean | null = null

  constructor(private readonly d: HouseholdDeps) {}

  // ------------------------------------------------------------------ what the core tells it

  /** Something in the snapshot may have changed: the listeners hear it once, after this turn. */
  changed(): void {
    if (this.#listeners.size === 0 || this.#scheduled) return
    this.#scheduled = true
    queueMicrotask(() => {
      this.#scheduled = false
      for (const l of [...this.#listeners]) {
        try {
          l()
        } catch (err) {
          this.d.log.warn({ err }, 'a household page listener failed; ignored')
        }
      }
    })
  }

  /** A PUBACK, or a command from the platform: the uplink works. */
  contact(): void {
    this.#lastContact = this.d.io.now()
    this.changed()
  }

  /** Whether the core's last write of an event (a terminal's, a relay) succeeded: a failing store makes the verdict `down`. */
  storeWrite(ok: boolean): void {
    if (this.#writeFailed === !ok) return
    this.#writeFailed = !ok
    this.changed()
  }

  heartbeat(terminal: string, hb: Heartbeat, at: number): void {
    this.#heartbeats.set(terminal, { hb, at })
    this.changed()
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  // ------------------------------------------------------------------ snapshot

  snapshot(): HouseholdSnapshot {
    const { settings, store, clock, io, auth } = this.d
    const now = io.now()
    const wall = (local: number) => local + (clock.offset ?? 0)
    let storeFailing = this.#writeFailed
    const read = <T>(fn: () => T, fallback: T): T => {
      try {
        return fn()
      } catch (err) {
        storeFailing = true
        this.d.log.debug({ err }, 'household snapshot: the store could not be read')
        return fallback
      }
    }
    const uplink = this.#uplink(now)
    const terminals = this.#terminals(now, wall)
    const backlogByClass = read(() => store.backlog(), null)
    const backlog = { alarm: 0, request: 0, trouble: 0, status: 0 } as Record<PriorityClass, number>
    if (backlogByClass) for (const c of Object.keys(backlog) as PriorityClass[]) backlog[c] = backlogByClass[c].count
    const freeBytes = this.#diskFree()
    const reserveBytes = store.limits.reserveMB * 1024 * 1024
    const low = read(() => store.belowReserve(), freeBytes !== null && freeBytes < reserveBytes)
    const alerts = read(() => this.#alerts(now, wall), [])
    const inbox = read(() => this.#inbox(wall), [])
    const reasons: VerdictReason[] = []
    const answering = terminals.filter((t) => t.answering && !t.lost).length
    if (answering === 0) reasons.push('no-terminal')
    if (storeFailing) reasons.push('store-failing')
    if (!uplink.online) reasons.push('uplink-offline')
    if (low) reasons.push('disk-low')
    if (answering > 0 && terminals.some((t) => t.lost)) reasons.push('terminal-lost')
    if (!clock.synchronised) reasons.push('clock-estimated')
    if (!auth.authenticated) reasons.push('commands-not-authenticated')
    const verdict =
      reasons.includes('no-terminal') || reasons.includes('store-failing') ? 'down' : reasons.some((r) => r === 'uplink-offline' || r === 'disk-low' || r === 'terminal-lost') ? 'delayed' : 'ok'
    return {
      gateway: settings.gateway,
      household: settings.household ?? null,
      area: settings.area,
      version: settings.version,
      now: clock.now().at,
      verdict,
      reasons,
      uplink: { ...uplink, since: uplink.since === null ? null : wall(uplink.since), lastContact: this.#lastContact === null ? null : wall(this.#lastContact) },
      clock: { synchronised: clock.synchronised },
      terminals,
      backlog,
      disk: { freeBytes, reserveBytes, low },
      alerts,
      inbox,
      commandsAuthenticated: auth.authenticated,
    }
  }

  #uplink(now: number): { online: boolean; since: number | null; broker: string } {
    const { io } = this.d
    const hooked = io.uplinkState?.()
    if (hooked) return { online: hooked.online, since: hooked.since, broker: hooked.broker ?? '' }
    const online = io.online()
    if (online !== this.#wasOnline) {
      this.#wasOnline = online
      this.#uplinkSince = now
    }
    return { online, since: this.#uplinkSince, broker: '' }
  }

  #diskFree(): number | null {
    try {
      const free = this.d.io.diskFree?.()
      return typeof free === 'number' && Number.isFinite(free) ? free : null
    } catch {
      return null
    }
  }

  #terminals(now: number, wall: (local: number) => number): TerminalView[] {
    const { link, known, store } = this.d
    const folds = new Map<string, Heartbeat>()
    try {
      for (const s of store.dirtyStatuses()) folds.set(s.terminal, s.latest)
    } catch {
      // The latest heartbeats in memory are enough.
    }
    return [...known.values()]
      .map((t) => {
        const s = link.terminal(t.address)
        const hb = this.#heartbeats.get(t.terminal)?.hb ?? folds.get(t.terminal)
        const lastHeard = s?.lastHeard ?? null
        return {
          terminal: t.terminal,
          address: t.address,
          answering: s?.up ?? false,
          lost: t.lost,
          lastHeard: lastHeard === null ? null : wall(Math.min(lastHeard, now)),
          battery: hb?.battery ?? null,
          mains: hb?.mains ?? null,
          signal: hb?.signal ?? null,
        }
      })
      .sort((a, b) => a.address - b.address)
  }

  /** Open alarms and requests, and those resolved in the last day, newest first, each with its history. */
  #alerts(now: number, wall: (local: number) => number): AlertView[] {
    const { store, clock } = this.d
    return store
      .cases(now - RESOLVED_KEEP_MS)
      .reverse()
      .map((e) => ({
        id: e.id,
        cls: e.cls === 'alarm' ? 'alarm' : 'request',
        kind: typeof e.body.kind === 'string' ? e.body.kind : 'unknown',
        terminal: e.terminal,
        relay: relayInfo(e),
        ...(typeof e.body.text === 'string' && e.body.text !== '' ? { text: e.body.text } : {}),
        stored: clock.correct(e.receivedAt, e.boot, e.offset).at,
        stage: e.stage,
        stages: stagesOf(store, e, (s) => (s.stage === 'stored' ? clock.correct(e.receivedAt, e.boot, e.offset).at : wall(s.at))),
      }))
  }

  #inbox(wall: (local: number) => number): BroadcastView[] {
    const { store, clock } = this.d
    return store
      .activeBroadcasts(clock.now().at)
      .map((b) => {
        const h = store.householdBroadcast(b.id)
        const mine = h?.revision === b.revision ? h : undefined
        return {
          id: b.id,
          revision: b.revision,
          urgency: b.urgency,
          text: b.text,
          receivedAt: wall(b.receivedAt),
          expires: b.expires,
          readAt: mine?.readAt != null ? wall(mine.readAt) : null,
          passedOn: mine?.passedOn != null && mine.passedAt != null ? { households: mine.passedOn, at: wall(mine.passedAt) } : null,
        }
      })
      .sort((a, b) => b.receivedAt - a.receivedAt || b.id - a.id)
  }

  // ------------------------------------------------------------------ relay

  relay(input: RelayInput, key: string): RelayResult {
    const checked = checkRelay(input)
    if (!checked.ok) return relayRefused(checked.errors)
    const { what, ...fields } = checked.input
    const { settings, store, clock, io, log } = this.d
    const alarmKind = RELAY_ALARM_KINDS[what]
    const cls = alarmKind ? 'alarm' : 'request'
    const idemKey = typeof key === 'string' && key.length > 0 && key.length <= MAX_KEY_LENGTH ? key : undefined
    let id: string
    try {
      if (idemKey !== undefined) {
        const first = store.byKey(idemKey)
        if (first) return { ok: true, id: first.id, cls: first.cls === 'alarm' ? 'alarm' : 'request', duplicate: true }
      }
      // A request is refused below the disk reserve (the store's rule for what the gateway
      // makes itself); asked first, so that no id is spent on it. An alarm never is.
      if (cls === 'request' && store.belowReserve()) {
        store.count('dropped.request.disk')
        return refused()
      }
      id = `${settings.gateway}:g${store.bump('gateway-event')}`
      const kind = alarmKind ?? 'relay'
      const body = {
        v: MQTT_CONTRACT_VERSION,
        id,
        class: CLASS_OF[kind],
        kind,
        code: alarmKind ? contactIdOf(alarmKind) : GATEWAY_KINDS.relay.code,
        restore: false,
        gateway: settings.gateway,
        terminal: null,
        address: null,
        number: null,
        ...(fields.text !== '' ? { text: fields.text } : {}),
        relay: {
          what,
          for: { name: fields.forName, ...(fields.forPhone !== undefined ? { phone: fields.forPhone } : {}), ...(fields.where !== undefined ? { where: fields.where } : {}) },
          by: { household: settings.household ?? null, ...(fields.by !== undefined ? { member: fields.by } : {}) },
        },
      }
      // One synchronous=FULL commit, the key with it: on the medium before "saved" is said.
      const r = store.addEvent({ id, terminal: null, address: null, number: null, cls, body, receivedAt: io.now(), boot: clock.boot, offset: clock.offset, ...(idemKey ? { key: idemKey } : {}) })
      this.#writeFailed = false
      if (r.kind === 'refused') return refused()
      if (r.kind === 'duplicate') return { ok: true, id: r.event.id, cls: r.event.cls === 'alarm' ? 'alarm' : 'request', duplicate: true }
    } catch (err) {
      this.#writeFailed = true
      log.error({ err, what }, 'RELAY NOT STORED (the disk failed): the member is told to call 110 by phone')
      this.changed()
      return {
        ok: false,
        code: 'STORE_FAILED',
        message: 'NOT saved: the gateway could not write to its disk. Call 110 by phone now, and tell whoever looks after the gateway.',
      }
    }
    log.info({ id, class: cls, what, for: fields.forName, by: fields.by }, cls === 'alarm' ? 'ALARM relayed by the center household: stored' : 'request relayed by the center household: stored')
    if (cls === 'alarm' && !io.online()) io.hurry?.()
    this.changed()
    this.d.pump()
    return { ok: true, id, cls, duplicate: false }
  }

  // ------------------------------------------------------------------ broadcasts

  markRead(broadcast: number, revision: number): BroadcastActionResult {
    const found = this.#broadcast(broadcast, revision)
    if (!found.ok) return found
    const { store, io, settings, events } = this.d
    try {
      const h = store.householdBroadcast(broadcast)
      const same = h?.revision === revision ? h : undefined
      if (same?.readAt != null) return { ok: true }
      store.setHouseholdBroadcast({ broadcast, revision, readAt: io.now(), passedOn: same?.passedOn ?? null, passedAt: same?.passedAt ?? null })
      this.#writeFailed = false
    } catch (err) {
      return this.#broadcastFailed(err, broadcast)
    }
    // `@` is never in a terminal id: this id cannot be a terminal's read. [MQTT-3.2]
    events.record('broadcast-read', null, `broadcast ${broadcast}`, { broadcast, revision, by: 'household' }, `${settings.gateway}/read/${broadcast}.${revision}/@household`)
    this.changed()
    return { ok: true }
  }

  passedOn(broadcast: number, revision: number, households: number): BroadcastActionResult {
    if (typeof households !== 'number' || !Number.isInteger(households) || households < 0 || households > MAX_HOUSEHOLDS) {
      return { ok: false, code: 'BROADCAST_INVALID', message: `households: give a whole number from 0 to ${MAX_HOUSEHOLDS}, how many households you passed it on to` }
    }
    const found = this.#broadcast(broadcast, revision)
    if (!found.ok) return found
    const { store, io, events } = this.d
    let firstRead = false
    try {
      const h = store.householdBroadcast(broadcast)
      const same = h?.revision === revision ? h : undefined
      if (same?.passedOn === households) return { ok: true }
      const now = io.now()
      // Passing it on means it was read.
      firstRead = same?.readAt == null
      store.setHouseholdBroadcast({ broadcast, revision, readAt: same?.readAt ?? now, passedOn: households, passedAt: now })
      this.#writeFailed = false
    } catch (err) {
      return this.#broadcastFailed(err, broadcast)
    }
    if (firstRead) {
      events.record('broadcast-read', null, `broadcast ${broadcast}`, { broadcast, revision, by: 'household' }, `${this.d.settings.gateway}/read/${broadcast}.${revision}/@household`)
    }
    // A `gateway:gN` id, new at each change: a correction (5, then 7) is a new event the
    // platform does not take for a repeat; it counts the latest. [MQTT-5.7]
    events.record('broadcast-passed-on', null, `broadcast ${broadcast} passed on to ${households} households`, { broadcast, revision, households })
    this.changed()
    return { ok: true }
  }

  /** The broadcast the member acts on, as it is now: held, not withdrawn or expired, and this revision. */
  #broadcast(broadcast: number, revision: number): { ok: true } | { ok: false; code: 'BROADCAST_UNKNOWN' | 'STORE_FAILED'; message: string } {
    if (!Number.isInteger(broadcast) || !Number.isInteger(revision)) return { ok: false, code: 'BROADCAST_UNKNOWN', message: 'no such broadcast: reload the inbox' }
    try {
      const b = this.d.store.broadcast(broadcast)
      const now = this.d.clock.now().at
      if (b === undefined || b.withdrawn || (b.expires !== null && b.expires <= now)) {
        return { ok: false, code: 'BROADCAST_UNKNOWN', message: `broadcast ${broadcast} is not in the inbox (expired or taken back): reload the inbox` }
      }
      if (b.revision !== revision) {
        return { ok: false, code: 'BROADCAST_UNKNOWN', message: `broadcast ${broadcast} has a newer text (revision ${b.revision}): reload the inbox and read that` }
      }
      return { ok: true }
    } catch (err) {
      return this.#broadcastFailed(err, broadcast)
    }
  }

  #broadcastFailed(err: unknown, broadcast: number): { ok: false; code: 'STORE_FAILED'; message: string } {
    this.#writeFailed = true
    this.d.log.error({ err, broadcast }, 'could not record what the center household did with a broadcast')
    this.changed()
    return { ok: false, code: 'STORE_FAILED', message: 'not recorded: the gateway could not write to its disk; try again later' }
  }
}

function refused(): RelayResult {
  return {
    ok: false,
    code: 'STORE_REFUSED',
    message: 'NOT saved: the gateway disk is nearly full, and keeps its last space for alarms. Call 110 by phone now, and tell whoever looks after the gateway.',
  }
}

function relayInfo(e: StoredEvent): RelayInfo | null {
  const r = e.body.relay as { what?: RelayWhat; for?: { name?: string; phone?: string; where?: string }; by?: { member?: string } } | undefined
  if (r === undefined || typeof r !== 'object' || r === null || r.what === undefined) return null
  return {
    what: r.what,
    forName: r.for?.name ?? '',
    ...(r.for?.phone !== undefined ? { forPhone: r.for.phone } : {}),
    ...(r.for?.where !== undefined ? { where: r.for.where } : {}),
    ...(r.by?.member !== undefined ? { by: r.by.member } : {}),
  }
}

/** The alert's history; `at` says the time of a stage as the page shows it (`stored` is corrected as the event's own time). */
function stagesOf(store: Store, e: StoredEvent, at: (s: StageEntry) => number): AlertView['stages'] {
  const log = store.stages(e.id)
  const entries = log.length > 0 ? log : [{ stage: e.stage, at: e.stageAt, text: e.stageText, etaAt: e.stageEtaAt }]
  const wall = (local: number) => at({ stage: 'sent', at: local, text: null, etaAt: null })
  return entries.map((s) => ({
    stage: s.stage,
    at: at(s),
    ...(s.text !== null ? { text: s.text } : {}),
    ...(s.etaAt !== null ? { eta: wall(s.etaAt) } : {}),
  }))
}
