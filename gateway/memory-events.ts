/**
 * The events of a MemoryStore: storing an event, handing out what is due, the broker's
 * PUBACK, the alert lifecycle, and the bounds on the lower classes, as the Store contract
 * (store.ts) says and as sqlite-events.ts says them in SQL.
 *
 * Events are kept in a Map by id, in arrival order (a Map iterates in insertion order,
 * and an event is never inserted twice), with an index by (terminal, epoch, number).
 * Scans are linear: a gateway holds tens of events, and the bounds keep the lower
 * classes to a few thousand. Each body is kept as the JSON it would be stored as, so that
 * what comes back is what SqliteStore gives back, and a copy.
 */

import { endsRepublication, isForward } from '../protocol/lifecycle.js'
import type { Stage } from '../protocol/messages.js'
import type { PriorityClass } from '../protocol/mqtt.js'
import type { Limits } from './limits.js'
import { CLASS_OF_RANK, DAY_MS, LAST_CASE_RANK, RANK } from './store-rules.js'
import { RESOLVED_KEEP_MS, type NewEvent, type StageEntry, type StoredEvent } from './store.js'

interface Row extends Omit<StoredEvent, 'body' | 'cls' | 'fingerprint' | 'key'> {
  rank: number
  body: string
  /** `body.kind`, for latestOpenAlarm(). */
  kind: unknown
  fingerprint: string | null
  key: string | null
  /** Every stage reached, oldest first (cases only). */
  stages: StageEntry[]
}

/** One commit of the MemoryStore, counted as durable or lazy. */
export type Commit = <T>(durable: boolean, fn: () => T) => T

const numberKey = (terminal: string, epoch: string, number: number) => `${terminal}\n${epoch}\n${number}`

function toEvent(r: Row): StoredEvent {
  return {
    seq: r.seq,
    id: r.id,
    terminal: r.terminal,
    address: r.address,
    number: r.number,
    cls: CLASS_OF_RANK[r.rank]!,
    body: JSON.parse(r.body) as Record<string, unknown>,
    bytes: r.bytes,
    receivedAt: r.receivedAt,
    boot: r.boot,
    offset: r.offset,
    stage: r.stage,
    stageAt: r.stageAt,
    attempts: r.attempts,
    nextAt: r.nextAt,
    done: r.done,
    epoch: r.epoch,
    ...(r.fingerprint !== null ? { fingerprint: r.fingerprint } : {}),
    stageText: r.stageText,
    stageEtaAt: r.stageEtaAt,
    ...(r.key !== null ? { key: r.key } : {}),
  }
}

export class MemoryEvents {
  readonly #commit: Commit
  readonly #rows = new Map<string, Row>()
  readonly #byNumber = new Map<string, Row>()
  readonly #byKey = new Map<string, Row>()
  #seq = 0

  constructor(commit: Commit) {
    this.#commit = commit
  }

  /** The event stored under `e`'s id, or (a terminal's) under its (terminal, epoch, number). */
  find(e: NewEvent): StoredEvent | undefined {
    const r =
      this.#rows.get(e.id) ??
      (e.terminal !== null && e.number !== null ? this.#byNumber.get(numberKey(e.terminal, e.epoch ?? '', e.number)) : undefined) ??
      (e.key !== undefined ? this.#byKey.get(e.key) : undefined)
    return r && toEvent(r)
  }

  byKey(key: string): StoredEvent | undefined {
    const r = this.#byKey.get(key)
    return r && toEvent(r)
  }

  /** Every stage the alert reached, oldest first (copies). */
  stages(id: string): StageEntry[] {
    return (this.#rows.get(id)?.stages ?? []).map((x) => ({ ...x }))
  }

  byNumber(terminal: string, epoch: string, number: number): StoredEvent | undefined {
    const r = this.#byNumber.get(numberKey(terminal, epoch, number))
    return r && toEvent(r)
  }

  /** Within a commit. */
  insert(e: NewEvent): void {
    const body = JSON.stringify(e.body)
    const row: Row = {
      seq: ++this.#seq,
      id: e.id,
      terminal: e.terminal,
      address: e.address,
      number: e.number,
      rank: RANK[e.cls],
      body,
      kind: (JSON.parse(body) as { kind?: unknown }).kind,
      bytes: Buffer.byteLength(body),
      receivedAt: e.receivedAt,
      boot: e.boot,
      offset: e.offset,
      stage: 'stored',
      stageAt: e.receivedAt,
      attempts: 0,
      nextAt: 0,
      done: false,
      epoch: e.epoch ?? '',
      fingerprint: e.fingerprint ?? null,
      stageText: null,
      stageEtaAt: null,
      key: e.key ?? null,
      stages: RANK[e.cls] <= LAST_CASE_RANK ? [{ stage: 'stored', at: e.receivedAt, text: null, etaAt: null }] : [],
    }
    this.#rows.set(row.id, row)
    if (row.terminal !== null && row.number !== null) this.#byNumber.set(numberKey(row.terminal, row.epoch, row.number), row)
    if (row.key !== null) this.#byKey.set(row.key, row)
  }

  get(id: string): StoredEvent | undefined {
    const r = this.#rows.get(id)
    return r && toEvent(r)
  }

  latestOpenAlarm(terminal: string, epoch: string, number: number): StoredEvent | undefined {
    let latest: Row | undefined
    for (const r of this.#rows.values()) {
      if (r.rank !== RANK.alarm || r.terminal !== terminal || r.epoch !== epoch || r.number === null || r.number >= number) continue
      // As SQLite's json_extract(body, '$.kind') != 'cancel': a missing or null kind does not match either.
      if (r.stage === 'resolved' || r.kind === undefined || r.kind === null || r.kind === 'cancel') continue
      if (latest === undefined || r.number > latest.number!) latest = r
    }
    return latest && toEvent(latest)
  }

  dueAlarms(now: number, limit: number): StoredEvent[] {
    return this.#select((r) => !r.done && r.rank === RANK.alarm && r.nextAt <= now, limit).map(toEvent)
  }

  alarmsDueNow(): void {
    this.#commit(true, () => {
      for (const r of this.#rows.values()) if (!r.done && r.rank === RANK.alarm) r.nextAt = 0
    })
  }

  dueBacklog(now: number, limit: number, maxBytes: number): StoredEvent[] {
    const due = this.#select((r) => !r.done && r.rank > RANK.alarm && r.nextAt <= now)
    // Array sort is stable: arrival order stays within a class.
    due.sort((a, b) => a.rank - b.rank)
    const out: StoredEvent[] = []
    let bytes = 0
    for (const r of due.slice(0, limit)) {
      if (out.length > 0 && bytes + r.bytes > maxBytes) break
      bytes += r.bytes
      out.push(toEvent(r))
    }
    return out
  }

  nextDue(): number | null {
    let next: number | null = null
    for (const r of this.#rows.values()) if (!r.done && (next === null || r.nextAt < next)) next = r.nextAt
    return next
  }

  published(ids: readonly string[], now: number, alarmRetryAt: (attempts: number) => number): void {
    const rows = ids.map((id) => this.#rows.get(id)).filter((r): r is Row => r !== undefined && !r.done)
    if (rows.length === 0) return
    const retryAt = rows.map((r) => (r.rank === RANK.alarm ? alarmRetryAt(r.attempts + 1) : 0))
    // Durable if a case changes stage (what its terminal is shown must survive); a
    // deletion alone need not be.
    this.#commit(
      rows.some((r) => r.rank <= LAST_CASE_RANK),
      () =>
        rows.forEach((r, i) => {
          if (r.rank > LAST_CASE_RANK) {
            this.#delete(r)
            return
          }
          if (r.rank !== RANK.alarm && r.done) return // named twice
          r.attempts += 1
          if (r.rank === RANK.alarm) r.nextAt = retryAt[i]!
          else r.done = true
          if (r.stage === 'stored') {
            r.stage = 'sent'
            r.stageAt = now
            r.stages.push({ stage: 'sent', at: now, text: null, etaAt: null })
          }
        }),
    )
  }

  retryAt(id: string, at: number): void {
    this.#commit(true, () => {
      const r = this.#rows.get(id)
      if (r) r.nextAt = at
    })
  }

  advance(id: string, stage: Stage, now: number, detail: { text?: string; etaAt?: number }): StoredEvent | undefined {
    const r = this.#rows.get(id)
    if (!r) return undefined
    const ends = endsRepublication(stage)
    if (!isForward(r.stage, stage)) {
      // A receipt for an alarm already past it still ends republication.
      if (ends && !r.done) this.#commit(true, () => (r.done = true))
      return undefined
    }
    this.#commit(true, () => {
      r.stage = stage
      r.stageAt = now
      r.done ||= ends
      r.stageText = detail.text ?? null
      r.stageEtaAt = detail.etaAt ?? null
      r.stages.push({ stage, at: now, text: r.stageText, etaAt: r.stageEtaAt })
    })
    return toEvent(r)
  }

  openAlerts(): StoredEvent[] {
    return this.#select((r) => r.rank <= LAST_CASE_RANK && r.stage !== 'resolved').map(toEvent)
  }

  cases(since: number): StoredEvent[] {
    return this.#select((r) => r.rank <= LAST_CASE_RANK && (r.stage !== 'resolved' || r.stageAt >= since)).map(toEvent)
  }

  recentAlerts(terminal: string, epoch: string, since: number): StoredEvent[] {
    return this.#select((r) => r.rank <= LAST_CASE_RANK && r.terminal === terminal && r.epoch === epoch && (r.stage !== 'resolved' || r.stageAt >= since)).map(toEvent)
  }

  awaitingReceipt(storedBefore: number): StoredEvent[] {
    return this.#select((r) => r.rank === RANK.alarm && (r.stage === 'stored' || r.stage === 'sent') && r.receivedAt <= storedBefore).map(toEvent)
  }

  unreceiptedAlarms(): number {
    let n = 0
    for (const r of this.#rows.values()) if (r.rank === RANK.alarm && !r.done) n++
    return n
  }

  /** Within a commit: the bounds on the events, each drop passed to `note` under its counter name. */
  bound(now: number, L: Limits, note: (name: string, n: number) => void): void {
    const pending = (rank: number) => this.#select((r) => r.rank === rank && !r.done)
    const drop = (rows: Row[]) => {
      for (const r of rows) this.#delete(r)
      return rows.length
    }
    note('dropped.request.age', drop(pending(RANK.request).filter((r) => r.receivedAt < now - L.maxRequestAgeDays * DAY_MS)))
    note('dropped.trouble.age', drop(pending(RANK.trouble).filter((r) => r.receivedAt < now - L.maxTroubleAgeDays * DAY_MS)))
    for (const [cls, max] of [
      ['request', L.maxRequestEvents],
      ['trouble', L.maxTroubleEvents],
    ] as const) {
      const rows = pending(RANK[cls])
      if (rows.length > max) note(`dropped.${cls}.count`, drop(rows.slice(0, rows.length - max)))
    }
    const maxBytes = L.maxStoreMB * 1024 * 1024
    for (;;) {
      const lower = this.#select((r) => r.rank > RANK.alarm && !r.done)
      if (lower.length === 0 || lower.reduce((n, r) => n + r.bytes, 0) <= maxBytes) break
      // The lowest class first, its oldest first, a hundred at a time (as SqliteStore).
      const rank = Math.max(...lower.map((r) => r.rank))
      note(`dropped.${CLASS_OF_RANK[rank]}.size`, drop(lower.filter((r) => r.rank === rank).slice(0, 100)))
    }
    drop(this.#select((r) => r.rank <= LAST_CASE_RANK && r.stage === 'resolved' && r.done && r.stageAt < now - RESOLVED_KEEP_MS))
    // A request the platform has (sent) but never answered is not kept for ever: the
    // platform holds it; the gateway forgets the case after the request age limit.
    note('forgotten.request.age', drop(this.#select((r) => r.rank === RANK.request && r.done && r.stage !== 'resolved' && r.stageAt < now - L.maxRequestAgeDays * DAY_MS)))
  }

  backlog(): Record<PriorityClass, { count: number; bytes: number }> {
    const out = Object.fromEntries(CLASS_OF_RANK.map((c) => [c, { count: 0, bytes: 0 }])) as Record<PriorityClass, { count: number; bytes: number }>
    for (const r of this.#rows.values()) {
      if (r.done) continue
      const c = out[CLASS_OF_RANK[r.rank]!]
      c.count += 1
      c.bytes += r.bytes
    }
    return out
  }

  /** The events that match, in arrival order, at most `limit`. */
  #select(match: (r: Row) => boolean, limit = Infinity): Row[] {
    const out: Row[] = []
    for (const r of this.#rows.values()) {
      if (out.length >= limit) break
      if (match(r)) out.push(r)
    }
    return out
  }

  #delete(r: Row): void {
    this.#rows.delete(r.id)
    if (r.terminal !== null && r.number !== null) this.#byNumber.delete(numberKey(r.terminal, r.epoch, r.number))
    if (r.key !== null) this.#byKey.delete(r.key)
  }
}
