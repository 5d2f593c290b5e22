/**
 * A store in plain JavaScript structures, keeping the Store contract of store.ts: the same
 * duplicates and replays, class and arrival order, bounds and counters, numbering,
 * status folds and broadcasts as SqliteStore (store.suite.ts runs both), but nothing
 * survives the process. It is what the scale benchmark's thousands of simulated gateways
 * run (a SQLite file each would measure the disk, not the broker), and what a test that
 * is not about the disk can use.
 *
 * Commits: each call that changes something is one commit, counted in writes() as durable
 * or lazy by the contract's rule, as SqliteStore counts its transactions, so that the
 * gateway's status and the tests read the same; "durable" here means kept until the
 * process ends. A commit computes whatever can throw (the caller's `alarmRetryAt`, `tag`)
 * before it changes anything, so a call that throws changes nothing.
 *
 * Split as SqliteStore is: memory-events.ts (events, lifecycle, bounds),
 * memory-broadcasts.ts, and here what spans them, the numbering, the status folds
 * (store-rules.ts, shared with SqliteStore) and the settings.
 */

import type { Stage } from '../protocol/messages.js'
import type { PriorityClass } from '../protocol/mqtt.js'
import { DEFAULT_LIMITS, type Limits } from './limits.js'
import { MemoryBroadcasts, byName } from './memory-broadcasts.js'
import { MemoryEvents } from './memory-events.js'
import { ReplayWindow } from './replay-window.js'
import { StatusFolds, fromTerminal, recognition, refusableBelowReserve, resetReason } from './store-rules.js'
import type {
  AddResult,
  BroadcastChange,
  BroadcastDelivery,
  CoalescedStatus,
  FreeSpace,
  Heartbeat,
  HouseholdBroadcast,
  NewEvent,
  Recognition,
  Reset,
  ResetReason,
  StageEntry,
  Store,
  StoreOptions,
  StoredBroadcast,
  StoredEvent,
  TerminalNumbering,
  WriteStats,
} from './store.js'
import type { StoredCommandWindow } from './command-window.js'
import { commandWindowKey, parseStoredJson } from './store.js'

interface Numbering {
  epoch: string
  boot: number | null
  window: ReplayWindow
}

export class MemoryStore implements Store {
  readonly limits: Limits
  readonly #freeSpace: FreeSpace
  readonly #writes: WriteStats = { durable: 0, lazy: 0, lastEvent: null }
  readonly #events = new MemoryEvents((durable, fn) => this.#commit(durable, fn))
  readonly #terminals = new Map<string, Numbering>()
  readonly #folds = new StatusFolds()
  readonly #broadcasts = new MemoryBroadcasts()
  readonly #meta = new Map<string, string>()
  readonly #counters = new Map<string, number>()
  /** Numbers reserved by next(), per key, as SqliteStore reserves them on disk. */
  readonly #reserved = new Map<string, { next: number; last: number }>()

  /** `freeSpace` defaults to never short: a simulated gateway has no disk to fill. */
  constructor(options: StoreOptions = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits }
    this.#freeSpace = options.freeSpace ?? (() => Infinity)
  }

  #commit<T>(durable: boolean, fn: () => T): T {
    const out = fn()
    if (durable) this.#writes.durable++
    else this.#writes.lazy++
    return out
  }

  writes(): Readonly<WriteStats> {
    return { ...this.#writes }
  }

  // ------------------------------------------------------------------ events

  addEvent(e: NewEvent): AddResult {
    const existing = this.#events.find(e)
    if (existing) return { kind: 'duplicate', event: existing }
    if (refusableBelowReserve(e) && this.belowReserve()) {
      this.count(`dropped.${e.cls}.disk`)
      return { kind: 'refused', reason: 'disk-reserve' }
    }
    this.#commit(true, () => {
      this.#events.insert(e)
      if (fromTerminal(e)) {
        const t = this.#terminals.get(e.terminal)
        const window = t?.window ?? ReplayWindow.empty()
        window.add(e.number)
        this.#terminals.set(e.terminal, { epoch: t?.epoch ?? e.epoch ?? '', boot: t?.boot ?? null, window })
      }
    })
    this.#writes.lastEvent = 'durable'
    return { kind: 'added', event: this.#events.get(e.id)! }
  }

  get(id: string): StoredEvent | undefined {
    return this.#events.get(id)
  }

  latestOpenAlarm(terminal: string, epoch: string, number: number): StoredEvent | undefined {
    return this.#events.latestOpenAlarm(terminal, epoch, number)
  }

  dueAlarms(now: number, limit = 100): StoredEvent[] {
    return this.#events.dueAlarms(now, limit)
  }

  alarmsDueNow(): void {
    this.#events.alarmsDueNow()
  }

  dueBacklog(now: number, limit: number, maxBytes = Infinity): StoredEvent[] {
    return this.#events.dueBacklog(now, limit, maxBytes)
  }

  nextDue(): number | null {
    return this.#events.nextDue()
  }

  published(ids: readonly string[], now: number, alarmRetryAt: (attempts: number) => number): void {
    this.#events.published(ids, now, alarmRetryAt)
  }

  retryAt(id: string, at: number): void {
    this.#events.retryAt(id, at)
  }

  advance(id: string, stage: Stage, now: number, detail: { text?: string; etaAt?: number } = {}): StoredEvent | undefined {
    return this.#events.advance(id, stage, now, detail)
  }

  stages(id: string): StageEntry[] {
    return this.#events.stages(id)
  }

  byKey(key: string): StoredEvent | undefined {
    return this.#events.byKey(key)
  }

  openAlerts(): StoredEvent[] {
    return this.#events.openAlerts()
  }

  cases(since: number): StoredEvent[] {
    return this.#events.cases(since)
  }

  recentAlerts(terminal: string, epoch: string, since: number): StoredEvent[] {
    return this.#events.recentAlerts(terminal, epoch, since)
  }

  awaitingReceipt(storedBefore: number): StoredEvent[] {
    return this.#events.awaitingReceipt(storedBefore)
  }

  unreceiptedAlarms(): number {
    return this.#events.unreceiptedAlarms()
  }

  enforceBounds(now: number): Record<string, number> {
    const dropped: Record<string, number> = {}
    const note = (name: string, n: number) => {
      if (n <= 0) return
      dropped[name] = (dropped[name] ?? 0) + n
      this.#counters.set(name, (this.#counters.get(name) ?? 0) + n)
    }
    this.#commit(true, () => {
      this.#events.bound(now, this.limits, note)
      this.#broadcasts.dropExpired(now)
    })
    return dropped
  }

  backlog(): Record<PriorityClass, { count: number; bytes: number }> {
    return this.#events.backlog()
  }

  // ------------------------------------------------------------------ terminals' numbering

  numbering(terminal: string): TerminalNumbering | undefined {
    const t = this.#terminals.get(terminal)
    return t && { terminal, epoch: t.epoch, boot: t.boot, high: t.window.high }
  }

  hello(terminal: string, boot: number, lastEvent: number, tag: (n: number) => string): Reset | null {
    const reason = resetReason(this.numbering(terminal), boot, lastEvent)
    if (reason !== null) return this.resetNumbering(terminal, reason, boot, tag)
    const t = this.#terminals.get(terminal)
    if (t?.boot !== boot) this.#commit(true, () => this.#terminals.set(terminal, { epoch: t?.epoch ?? '', boot, window: t?.window ?? ReplayWindow.empty() }))
    return null
  }

  resetNumbering(terminal: string, reason: ResetReason, boot: number | null, tag: (n: number) => string): Reset {
    const known = this.numbering(terminal)
    const n = Number(this.meta('terminal-resets') ?? '0') + 1
    const epoch = tag(n)
    this.#commit(true, () => {
      this.#meta.set('terminal-resets', String(n))
      this.#terminals.set(terminal, { epoch, boot, window: ReplayWindow.empty() })
    })
    return { reason, epoch, previousEpoch: known?.epoch ?? '', previousBoot: known?.boot ?? null, previousNumber: known?.high ?? 0 }
  }

  recognise(terminal: string, number: number, fingerprint: string): Recognition {
    const t = this.#terminals.get(terminal)
    return recognition(this.#events.byNumber(terminal, t?.epoch ?? '', number), fingerprint, () => t?.window.has(number) ?? false)
  }

  // ------------------------------------------------------------------ status folds

  putStatus(terminal: string, address: number, hb: Heartbeat, now: number): boolean {
    if (this.belowReserve()) {
      this.count('dropped.status.disk')
      return false
    }
    this.#folds.fold(terminal, address, { ...hb }, now)
    return true
  }

  flushStatuses(now: number, olderThanMs: number): number {
    // Nowhere to save them to: the commit is only counted, as SqliteStore's is made.
    return this.#folds.flush(now, olderThanMs, () => this.#commit(false, () => undefined))
  }

  dirtyStatuses(): CoalescedStatus[] {
    return this.#folds.dirty().map((s) => ({ ...s, latest: { ...s.latest } }))
  }

  statusPublished(terminal: string, version: number): void {
    if (this.#folds.published(terminal, version) !== null) this.#commit(false, () => undefined)
  }

  // ------------------------------------------------------------------ broadcasts

  putBroadcast(b: Pick<StoredBroadcast, 'id' | 'text' | 'urgency' | 'expires' | 'receivedAt'>): { change: BroadcastChange; broadcast: StoredBroadcast } {
    return this.#commit(true, () => this.#broadcasts.put(b))
  }

  withdrawBroadcast(id: number): StoredBroadcast | undefined {
    return this.#commit(true, () => this.#broadcasts.withdraw(id))
  }

  broadcast(id: number): StoredBroadcast | undefined {
    return this.#broadcasts.get(id)
  }

  broadcasts(now: number): StoredBroadcast[] {
    return this.#broadcasts.list(now)
  }

  activeBroadcasts(now: number): StoredBroadcast[] {
    return this.broadcasts(now).filter((b) => !b.withdrawn)
  }

  delivery(broadcast: number, terminal: string): BroadcastDelivery | undefined {
    return this.#broadcasts.delivery(broadcast, terminal)
  }

  deliveries(broadcast: number): BroadcastDelivery[] {
    return this.#broadcasts.deliveries(broadcast)
  }

  broadcastSent(broadcast: number, terminal: string, revision: number, now: number): void {
    this.#commit(true, () => this.#broadcasts.sent(broadcast, terminal, revision, now))
  }

  broadcastRead(broadcast: number, terminal: string, revision: number, now: number): boolean {
    const d = this.delivery(broadcast, terminal)
    if (!d || (d.readRevision !== null && d.readRevision >= revision)) return false
    this.#commit(true, () => this.#broadcasts.read(broadcast, terminal, revision, now))
    return true
  }

  householdBroadcast(broadcast: number): HouseholdBroadcast | undefined {
    return this.#broadcasts.household(broadcast)
  }

  setHouseholdBroadcast(h: HouseholdBroadcast): void {
    this.#commit(true, () => this.#broadcasts.setHousehold(h))
  }

  // ------------------------------------------------------------------ settings, counters

  meta(key: string): string | undefined {
    return this.#meta.get(key)
  }

  setMeta(key: string, value: string): void {
    this.#commit(true, () => this.#meta.set(key, value))
  }

  commandWindow(audience: string): unknown {
    return parseStoredJson(this.meta(commandWindowKey(audience)))
  }

  setCommandWindow(audience: string, window: StoredCommandWindow): void {
    this.setMeta(commandWindowKey(audience), JSON.stringify({ floor: window.floor, taken: window.taken }))
  }

  bump(key: string): number {
    const next = Number(this.meta(key) ?? '0') + 1
    this.setMeta(key, String(next))
    return next
  }

  next(key: string, block = 1000): number {
    let r = this.#reserved.get(key)
    if (r === undefined || r.next > r.last) {
      const last = Number(this.meta(key) ?? '0') + block
      this.setMeta(key, String(last))
      r = { next: last - block + 1, last }
      this.#reserved.set(key, r)
    }
    return r.next++
  }

  count(name: string, by = 1): void {
    this.#commit(true, () => this.#counters.set(name, (this.#counters.get(name) ?? 0) + by))
  }

  belowReserve(): boolean {
    return this.#freeSpace() < this.limits.reserveMB * 1024 * 1024
  }

  counters(): Record<string, number> {
    return Object.fromEntries(byName([...this.#counters]))
  }

  close(): void {
    this.flushStatuses(Infinity, 0)
  }
}
