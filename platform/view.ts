/**
 * The view model: what the console knows of the grassland (gateways, terminals, trouble,
 * broadcasts and who read them, its own errors and counters), kept up to date by the
 * handlers, and handed out as a ConsoleSnapshot of copies.
 *
 * - [CONSOLE-4] Items are deduplicated by id [MQTT-3.2]: cases for the life of the
 *   process (cases.ts), other items over the last `maxItemIds` ids (`seen`). Each repeat
 *   is counted. Ids are opaque: `T4-00123:7` and, after a terminal-reset,
 *   `T4-00123@gw-0017.1:7` are two.
 * - [CONSOLE-8] State lives in memory. A real platform stores an alert durably before its
 *   receipt ([MQTT-4.1]); a restarted console has forgotten its alerts, and an alarm that
 *   arrives again after the restart is shown as new (the gateway ignores an answer for a
 *   stage it already has).
 */

import type { Urgency } from '../protocol/messages.js'
import type { UplinkEvent } from '../protocol/mqtt.js'
import type { CaseClass, ConsoleStage } from './cases.js'
import type { ErrorLine, TerminalReset, Time } from './events.js'

export interface GatewayView {
  gateway: string
  online: boolean
  /** The session of the latest birth, or null if only deaths were seen. */
  session: number | null
  /** Local ms of the last change of `online`. */
  since: number
  area: string | null
  version: string | null
  encoding: string | null
  /** The last gateway status ([MQTT-3.7]), as published. */
  status: Record<string, unknown> | null
  /** Local ms of the last message from this gateway. */
  lastHeard: number
}

export interface TerminalView {
  terminal: string
  gateway: string
  address: number | null
  /** Local ms of the last item from or about the terminal. */
  lastHeard: number
  lastKind: string
  battery: number | null
  mains: boolean | null
  /** The gateway reported it lost (terminal-lost, or lost in its status) and not restored since. */
  lost: boolean
}

/** A message the center household relayed for a neighbour ([MQTT-3.11]): who relayed it and for whom [MQTT-4.16]. */
export interface RelayView {
  what: string
  /** The neighbour household it is for, its phone and where they are. */
  for: string
  phone: string | null
  where: string | null
  /** The relaying center household (its configured name, or null) and the member who keyed it in. */
  household: string | null
  member: string | null
}

/** What the relay map of an uplink event says, or null for an event that is not a relay. */
export function relayView(relay: unknown): RelayView | null {
  if (typeof relay !== 'object' || relay === null) return null
  const r = relay as { what?: unknown; for?: { name?: unknown; phone?: unknown; where?: unknown }; by?: { household?: unknown; member?: unknown } }
  const text = (v: unknown) => (typeof v === 'string' ? v : null)
  return {
    what: text(r.what) ?? '?',
    for: text(r.for?.name) ?? '?',
    phone: text(r.for?.phone),
    where: text(r.for?.where),
    household: text(r.by?.household),
    member: text(r.by?.member),
  }
}

/** An alarm or a request, from its first copy until it is resolved and beyond. */
export interface CaseView {
  id: string
  class: CaseClass
  gateway: string
  terminal: string | null
  kind: string
  code: number | null
  address: number | null
  number: number | null
  time: Time
  text: string | null
  firstReceivedAt: number
  lastReceivedAt: number
  copies: number
  /** The highest `attempt` seen. */
  attempt: number
  /** The gateway's stage in the latest copy; `unconfirmed` (alarms only) means the herder was told to phone 110. */
  gatewayStage: string | null
  stage: ConsoleStage
  /** Local ms of each stage the console reached. */
  history: { stage: ConsoleStage; at: number }[]
  acknowledgedBy: string | null
  unit: string | null
  eta: number | null
  unknownKind: boolean
  /** A cancel: the alarm it cancels (the latest open one of its terminal), when the gateway knows it. */
  cancels: string | null
  /** A second claimant's alarm ([MQTT-3.10]): the terminal id it claimed; unverified. Null for a terminal's own. */
  claims: string | null
  /** The cancel by which the terminal took this alarm back; the operator still closes it. */
  cancelledBy: string | null
  /** Relayed by the center household for a neighbour ([MQTT-3.11]): who relayed it, for whom; null for a terminal's. */
  relay: RelayView | null
  /**
   * Two or more different items came under this id [CONSOLE-10] [MQTT-4.15]: one may be
   * forged. The fields above are the first version's; each version is kept here. Null
   * while every copy was a republication of the first.
   */
  conflict: CaseConflict | null
}

/** One version of what came under a case's id: its first copy as published, and how many copies of it came. */
export interface CopyVersion {
  /** From the topic. */
  gateway: string
  event: UplinkEvent
  /** Local ms of its first and latest copy. */
  firstReceivedAt: number
  lastReceivedAt: number
  copies: number
}

export interface CaseConflict {
  /** What the operator is told (CONFLICT_WARNING). */
  warning: string
  /** The fields in which the versions differ from the first. */
  differs: string[]
  /** Local ms of the first copy that differed. */
  since: number
  /** The versions, the first first (at most MAX_VERSIONS; every copy is counted in `copies`). */
  versions: CopyVersion[]
}

export interface TroubleView {
  id: string
  gateway: string
  terminal: string | null
  kind: string
  code: number | null
  restore: boolean
  time: Time
  receivedAt: number
  /** A terminal-reset's details, or null. */
  reset: TerminalReset | null
  /** A terminal-id-conflict's details ([MQTT-3.10]), or null. */
  conflict?: { terminal: string; boundAddress: number; address: number; as: string } | null
}

export interface ConsoleCounters {
  messages: number
  /** Alarms (distinct ids), and every copy of them. */
  alerts: number
  alertCopies: number
  /** Requests (distinct ids), and every copy of them. */
  requests: number
  requestCopies: number
  /** Other items (trouble, status ...), distinct ids. */
  items: number
  duplicates: number
  /** Copies under a known id whose content differed [CONSOLE-10]. */
  conflicts: number
  errors: number
  commandsSent: number
}

/** A broadcast and who has read it, from the broadcast-read items of the gateways (deduplicated by id). */
export interface BroadcastView {
  broadcast: number
  /** What this console sent under this id (the latest text), or null: sent by another console or `steppelink console broadcast`. */
  sent: { to: string; text: string; urgency: Urgency; expires: number | null; at: number; times: number } | null
  /** Terminals that have read it, any text of it. */
  terminals: number
  /**
   * Per gateway, most terminals first: how many of its terminals have read it; whether it
   * got it (`broadcast-received`), its center household read it, and to how many households
   * it passed it on (the latest count, or null) [MQTT-3.12] [MQTT-4.16].
   */
  gateways: { gateway: string; terminals: number; got: boolean; householdRead: boolean; passedOn: number | null }[]
  /** Gateways that reported they got it, and the households it was passed on to, all gateways together. */
  gotBy: number
  passedOn: number
  /** The latest text read (0 the first, +1 at each replacement), and how many terminals have read that one. */
  latestRevision: number | null
  terminalsOfLatest: number
  /** Local ms of the last read, or null. */
  lastReadAt: number | null
}

export interface ConsoleSnapshot {
  connected: boolean
  gateways: GatewayView[]
  terminals: TerminalView[]
  /** Alarms not resolved, oldest first. */
  openAlarms: CaseView[]
  /** Requests not resolved, oldest first. */
  openRequests: CaseView[]
  /** Trouble events, newest first (the last 50). */
  trouble: TroubleView[]
  /** The last 20 `error` events, newest last. */
  errors: ErrorLine[]
  /** Broadcasts this console sent or saw read, newest first (the last 50). */
  broadcasts: BroadcastView[]
  counters: ConsoleCounters
}

/** The open cases in the order of the screen and of the keys 1-9: alarms first, then requests, each oldest first. */
export function openCases(s: Pick<ConsoleSnapshot, 'openAlarms' | 'openRequests'>): CaseView[] {
  return [...s.openAlarms, ...s.openRequests]
}

const MAX_TROUBLE = 50
const MAX_ERRORS = 20
const MAX_BROADCASTS = 50

export interface BroadcastRecord {
  broadcast: number
  sent: BroadcastView['sent']
  /** By the broadcast-read item's id, `<gateway>/read/<broadcast>.<revision>/<terminal>`: one per text and terminal. */
  reads: Map<string, { gateway: string; terminal: string; revision: number | null }>
  lastReadAt: number | null
  /** Gateways that got it: the highest revision each reported received [MQTT-3.12]. */
  got: Map<string, number>
  /** Gateways whose center household read it. */
  householdReads: Set<string>
  /** Per gateway, the latest `broadcast-passed-on` by its `received` time: a correction replaces, never adds. */
  passedOn: Map<string, { households: number; at: number }>
}

/** What the console knows besides its cases, and its counters. */
export class ConsoleState {
  readonly counters: ConsoleCounters = { messages: 0, alerts: 0, alertCopies: 0, requests: 0, requestCopies: 0, items: 0, duplicates: 0, conflicts: 0, errors: 0, commandsSent: 0 }
  /** Repeats per id (copies beyond the first), for every id that had one. */
  readonly duplicates = new Map<string, number>()
  readonly #gateways = new Map<string, GatewayView>()
  readonly #terminals = new Map<string, TerminalView>()
  /** Ids of other items, oldest first (Map keeps insertion order), for deduplication [CONSOLE-4]. */
  readonly #itemIds = new Map<string, true>()
  readonly #trouble: TroubleView[] = []
  readonly #errors: ErrorLine[] = []
  /** By broadcast id, oldest first (Map order), at most MAX_BROADCASTS. */
  readonly #broadcasts = new Map<number, BroadcastRecord>()

  /** `maxItemIds`: ids of items other than cases remembered for deduplication. */
  constructor(private readonly maxItemIds: number) {}

  gateway(gateway: string): GatewayView | undefined {
    return this.#gateways.get(gateway)
  }

  terminal(terminal: string): TerminalView | undefined {
    return this.#terminals.get(terminal)
  }

  /** Remembers an item id; true if it was seen before [CONSOLE-4]. */
  seen(id: string): boolean {
    if (this.#itemIds.has(id)) {
      this.countDuplicate(id)
      return true
    }
    this.#itemIds.set(id, true)
    this.counters.items++
    for (const old of this.#itemIds.keys()) {
      if (this.#itemIds.size <= this.maxItemIds) break
      this.#itemIds.delete(old)
      this.duplicates.delete(old)
    }
    return false
  }

  countDuplicate(id: string): void {
    this.counters.duplicates++
    this.duplicates.set(id, (this.duplicates.get(id) ?? 0) + 1)
  }

  touchTerminal(terminal: string | null, gateway: string, address: number | null, kind: string, at: number): TerminalView | null {
    if (terminal === null) return null
    let t = this.#terminals.get(terminal)
    if (t === undefined) {
      t = { terminal, gateway, address, lastHeard: at, lastKind: kind, battery: null, mains: null, lost: false }
      this.#terminals.set(terminal, t)
    }
    t.gateway = gateway
    t.address = address ?? t.address
    t.lastHeard = at
    t.lastKind = kind
    return t
  }

  touchGateway(gateway: string, at: number): GatewayView {
    let g = this.#gateways.get(gateway)
    if (g === undefined) {
      // Heard before any state: it publishes, so it is online, session not yet known.
      g = { gateway, online: true, session: null, since: at, area: null, version: null, encoding: null, status: null, lastHeard: at }
      this.#gateways.set(gateway, g)
    }
    g.lastHeard = at
    return g
  }

  addTrouble(t: TroubleView): void {
    this.#trouble.unshift(t)
    this.#trouble.length = Math.min(this.#trouble.length, MAX_TROUBLE)
  }

  addError(line: ErrorLine): void {
    this.counters.errors++
    this.#errors.push(line)
    if (this.#errors.length > MAX_ERRORS) this.#errors.shift()
  }

  /** The record of a broadcast, made if need be; `renewed` moves it to the newest. */
  broadcast(id: number, renewed: boolean): BroadcastRecord {
    let b = this.#broadcasts.get(id)
    if (b === undefined) b = { broadcast: id, sent: null, reads: new Map(), lastReadAt: null, got: new Map(), householdReads: new Set(), passedOn: new Map() }
    if (renewed || !this.#broadcasts.has(id)) {
      this.#broadcasts.delete(id)
      this.#broadcasts.set(id, b)
    }
    for (const old of this.#broadcasts.keys()) {
      if (this.#broadcasts.size <= MAX_BROADCASTS) break
      this.#broadcasts.delete(old)
    }
    return b
  }

  /** A copy of all of it, with the cases not yet resolved (`open`, oldest first). */
  snapshot(connected: boolean, open: CaseView[]): ConsoleSnapshot {
    return {
      connected,
      gateways: [...this.#gateways.values()].map((g) => ({ ...g })).sort((x, y) => x.gateway.localeCompare(y.gateway)),
      terminals: [...this.#terminals.values()].map((t) => ({ ...t })).sort((x, y) => x.terminal.localeCompare(y.terminal)),
      openAlarms: open.filter((a) => a.class === 'alarm'),
      openRequests: open.filter((a) => a.class === 'request'),
      trouble: this.#trouble.map((t) => ({ ...t })),
      errors: [...this.#errors],
      broadcasts: [...this.#broadcasts.values()].reverse().map(broadcastView),
      counters: { ...this.counters },
    }
  }
}

function broadcastView(b: BroadcastRecord): BroadcastView {
  const reads = [...b.reads.values()]
  const perGateway = new Map<string, Set<string>>()
  for (const r of reads) perGateway.set(r.gateway, (perGateway.get(r.gateway) ?? new Set()).add(r.terminal))
  for (const g of [...b.got.keys(), ...b.householdReads, ...b.passedOn.keys()]) if (!perGateway.has(g)) perGateway.set(g, new Set())
  const revisions = reads.map((r) => r.revision).filter((r) => r !== null)
  const latestRevision = revisions.length === 0 ? null : Math.max(...revisions)
  return {
    broadcast: b.broadcast,
    sent: b.sent === null ? null : { ...b.sent },
    terminals: new Set(reads.map((r) => r.terminal)).size,
    gateways: [...perGateway]
      .map(([gateway, t]) => ({
        gateway,
        terminals: t.size,
        // A gateway whose terminals or household read it got it, whether or not its `broadcast-received` came (an older gateway sends none).
        got: b.got.has(gateway) || t.size > 0 || b.householdReads.has(gateway),
        householdRead: b.householdReads.has(gateway),
        passedOn: b.passedOn.get(gateway)?.households ?? null,
      }))
      .sort((x, y) => y.terminals - x.terminals || x.gateway.localeCompare(y.gateway)),
    gotBy: new Set([...b.got.keys(), ...perGateway.keys()]).size,
    passedOn: [...b.passedOn.values()].reduce((n, p) => n + p.households, 0),
    latestRevision,
    terminalsOfLatest: latestRevision === null ? 0 : new Set(reads.filter((r) => r.revision === latestRevision).map((r) => r.terminal)).size,
    lastReadAt: b.lastReadAt,
  }
}
