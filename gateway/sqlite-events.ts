/**
 * The events table of a SqliteStore: storing an event, handing out what is due, the
 * broker's PUBACK, the alert lifecycle, and the bounds on the lower classes. The rules are
 * the Store contract's (store.ts); this file says them in SQL. Its methods that change
 * something run inside the caller's write() (sqlite-store.ts), except where they make
 * their own.
 */

import type Database from 'better-sqlite3'
import { endsRepublication, isForward } from '../protocol/lifecycle.js'
import type { Stage } from '../protocol/messages.js'
import type { PriorityClass } from '../protocol/mqtt.js'
import type { Limits } from './limits.js'
import type { SqliteDb } from './sqlite-db.js'
import { CLASS_OF_RANK, DAY_MS, LAST_CASE_RANK, RANK } from './store-rules.js'
import { RESOLVED_KEEP_MS, type NewEvent, type StageEntry, type StoredEvent } from './store.js'

interface EventRow {
  seq: number
  id: string
  terminal: string | null
  address: number | null
  number: number | null
  rank: number
  body: string
  bytes: number
  received_at: number
  boot: number
  offset: number | null
  stage: Stage
  stage_at: number
  attempts: number
  next_at: number
  done: number
  epoch: string
  fingerprint: string | null
  stage_text: string | null
  stage_eta_at: number | null
  idem_key: string | null
}

interface StageRow {
  stage: Stage
  at: number
  text: string | null
  eta_at: number | null
}

function fromRow(r: EventRow): StoredEvent {
  return {
    seq: r.seq,
    id: r.id,
    terminal: r.terminal,
    address: r.address,
    number: r.number,
    cls: CLASS_OF_RANK[r.rank]!,
    body: JSON.parse(r.body) as Record<string, unknown>,
    bytes: r.bytes,
    receivedAt: r.received_at,
    boot: r.boot,
    offset: r.offset,
    stage: r.stage,
    stageAt: r.stage_at,
    attempts: r.attempts,
    nextAt: r.next_at,
    done: r.done === 1,
    epoch: r.epoch,
    ...(r.fingerprint !== null ? { fingerprint: r.fingerprint } : {}),
    stageText: r.stage_text,
    stageEtaAt: r.stage_eta_at,
    ...(r.idem_key !== null ? { key: r.idem_key } : {}),
  }
}

function prepare(db: Database.Database) {
  return {
    byId: db.prepare<[string], EventRow>('SELECT * FROM events WHERE id = ?'),
    byTerminalNumber: db.prepare<[string, string, number], EventRow>('SELECT * FROM events WHERE terminal = ? AND epoch = ? AND number = ?'),
    insert: db.prepare(
      `INSERT INTO events (id, terminal, address, number, rank, body, bytes, received_at, boot, offset, stage, stage_at, next_at, epoch, fingerprint, idem_key)
       VALUES (@id, @terminal, @address, @number, @rank, @body, @bytes, @received_at, @boot, @offset, 'stored', @received_at, 0, @epoch, @fingerprint, @key)`,
    ),
    byKey: db.prepare<[string], EventRow>('SELECT * FROM events WHERE idem_key = ?'),
    addStage: db.prepare<[string, Stage, number, string | null, number | null]>('INSERT INTO event_stages (event, stage, at, text, eta_at) VALUES (?, ?, ?, ?, ?)'),
    stages: db.prepare<[string], StageRow>('SELECT stage, at, text, eta_at FROM event_stages WHERE event = ? ORDER BY rowid'),
    // Each alarm at its own time: a new alarm does not bring the others with it (that
    // cost N² publications for N quick presses). [MQTT-4.4]
    dueAlarms: db.prepare<[number, number], EventRow>('SELECT * FROM events WHERE done = 0 AND rank = 0 AND next_at <= ? ORDER BY seq LIMIT ?'),
    alarmsDueNow: db.prepare('UPDATE events SET next_at = 0 WHERE done = 0 AND rank = 0'),
    dueBacklog: db.prepare<[number, number], EventRow>('SELECT * FROM events WHERE done = 0 AND rank > 0 AND next_at <= ? ORDER BY rank, seq LIMIT ?'),
    nextDue: db.prepare<[], { next: number | null }>('SELECT MIN(next_at) AS next FROM events WHERE done = 0'),
    deleteId: db.prepare<[string]>('DELETE FROM events WHERE id = ?'),
    sentAlarm: db.prepare<[number, number, string]>(
      `UPDATE events SET attempts = attempts + 1, next_at = ?, stage = CASE WHEN stage = 'stored' THEN 'sent' ELSE stage END,
         stage_at = CASE WHEN stage = 'stored' THEN ? ELSE stage_at END WHERE id = ? AND rank = 0 AND done = 0`,
    ),
    sentCase: db.prepare<[number, string]>(
      `UPDATE events SET attempts = attempts + 1, done = 1, stage = CASE WHEN stage = 'stored' THEN 'sent' ELSE stage END,
         stage_at = CASE WHEN stage = 'stored' THEN ? ELSE stage_at END WHERE id = ? AND done = 0`,
    ),
    retryAt: db.prepare<[number, string]>('UPDATE events SET next_at = ? WHERE id = ?'),
    setStage: db.prepare<[Stage, number, number, string | null, number | null, string]>(
      'UPDATE events SET stage = ?, stage_at = ?, done = MAX(done, ?), stage_text = ?, stage_eta_at = ? WHERE id = ?',
    ),
    endPublication: db.prepare<[string]>('UPDATE events SET done = 1 WHERE id = ?'),
    openAlerts: db.prepare<[], EventRow>(`SELECT * FROM events WHERE rank <= ${LAST_CASE_RANK} AND stage != 'resolved' ORDER BY seq`),
    cases: db.prepare<[number], EventRow>(`SELECT * FROM events WHERE rank <= ${LAST_CASE_RANK} AND (stage != 'resolved' OR stage_at >= ?) ORDER BY seq`),
    recentAlerts: db.prepare<[string, string, number], EventRow>(
      `SELECT * FROM events WHERE rank <= ${LAST_CASE_RANK} AND terminal = ? AND epoch = ? AND (stage != 'resolved' OR stage_at >= ?) ORDER BY seq`,
    ),
    awaitingReceipt: db.prepare<[number], EventRow>("SELECT * FROM events WHERE rank = 0 AND stage IN ('stored', 'sent') AND received_at <= ? ORDER BY seq"),
    unreceipted: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM events WHERE rank = 0 AND done = 0'),
    latestOpenAlarm: db.prepare<[string, string, number], EventRow>(
      `SELECT * FROM events WHERE rank = 0 AND terminal = ? AND epoch = ? AND number < ? AND stage != 'resolved'
         AND json_extract(body, '$.kind') != 'cancel' ORDER BY number DESC LIMIT 1`,
    ),
    purgeResolved: db.prepare<[number]>(`DELETE FROM events WHERE rank <= ${LAST_CASE_RANK} AND stage = 'resolved' AND done = 1 AND stage_at < ?`),
    purgeOldRequests: db.prepare<[number]>(`DELETE FROM events WHERE rank = ${RANK.request} AND done = 1 AND stage != 'resolved' AND stage_at < ?`),
    classCount: db.prepare<[number], { n: number; bytes: number | null }>('SELECT COUNT(*) AS n, SUM(bytes) AS bytes FROM events WHERE rank = ? AND done = 0'),
    lowerBytes: db.prepare<[], { bytes: number | null }>('SELECT SUM(bytes) AS bytes FROM events WHERE rank > 0 AND done = 0'),
    dropOldest: db.prepare<[number, number]>('DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE rank = ? AND done = 0 ORDER BY seq LIMIT ?)'),
    dropOlderThan: db.prepare<[number, number]>('DELETE FROM events WHERE rank = ? AND done = 0 AND received_at < ?'),
    oldestLower: db.prepare<[], { rank: number }>('SELECT rank FROM events WHERE rank > 0 AND done = 0 ORDER BY rank DESC, seq LIMIT 1'),
  }
}

export class SqliteEvents {
  readonly #db: SqliteDb
  readonly #stmt: ReturnType<typeof prepare>

  constructor(db: SqliteDb) {
    this.#db = db
    this.#stmt = prepare(db.db)
  }

  /** The event stored under `e`'s id, or (a terminal's) under its (terminal, epoch, number). */
  find(e: NewEvent): StoredEvent | undefined {
    const r =
      this.#stmt.byId.get(e.id) ??
      (e.terminal !== null && e.number !== null ? this.#stmt.byTerminalNumber.get(e.terminal, e.epoch ?? '', e.number) : undefined) ??
      (e.key !== undefined ? this.#stmt.byKey.get(e.key) : undefined)
    return r && fromRow(r)
  }

  byKey(key: string): StoredEvent | undefined {
    const r = this.#stmt.byKey.get(key)
    return r && fromRow(r)
  }

  /** Every stage the alert reached, oldest first. */
  stages(id: string): StageEntry[] {
    return this.#stmt.stages.all(id).map((r) => ({ stage: r.stage, at: r.at, text: r.text, etaAt: r.eta_at }))
  }

  byNumber(terminal: string, epoch: string, number: number): StoredEvent | undefined {
    const r = this.#stmt.byTerminalNumber.get(terminal, epoch, number)
    return r && fromRow(r)
  }

  /** Within a write(). */
  insert(e: NewEvent): void {
    const body = JSON.stringify(e.body)
    this.#stmt.insert.run({
      id: e.id,
      terminal: e.terminal,
      address: e.address,
      number: e.number,
      rank: RANK[e.cls],
      body,
      bytes: Buffer.byteLength(body),
      received_at: e.receivedAt,
      boot: e.boot,
      offset: e.offset,
      epoch: e.epoch ?? '',
      fingerprint: e.fingerprint ?? null,
      key: e.key ?? null,
    })
    if (RANK[e.cls] <= LAST_CASE_RANK) this.#stmt.addStage.run(e.id, 'stored', e.receivedAt, null, null)
  }

  get(id: string): StoredEvent | undefined {
    const r = this.#stmt.byId.get(id)
    return r && fromRow(r)
  }

  latestOpenAlarm(terminal: string, epoch: string, number: number): StoredEvent | undefined {
    const r = this.#stmt.latestOpenAlarm.get(terminal, epoch, number)
    return r && fromRow(r)
  }

  dueAlarms(now: number, limit: number): StoredEvent[] {
    return this.#stmt.dueAlarms.all(now, limit).map(fromRow)
  }

  alarmsDueNow(): void {
    this.#db.write(true, () => this.#stmt.alarmsDueNow.run())
  }

  dueBacklog(now: number, limit: number, maxBytes: number): StoredEvent[] {
    const out: StoredEvent[] = []
    let bytes = 0
    for (const r of this.#stmt.dueBacklog.all(now, limit)) {
      if (out.length > 0 && bytes + r.bytes > maxBytes) break
      bytes += r.bytes
      out.push(fromRow(r))
    }
    return out
  }

  nextDue(): number | null {
    return this.#stmt.nextDue.get()?.next ?? null
  }

  published(ids: readonly string[], now: number, alarmRetryAt: (attempts: number) => number): void {
    const rows = ids.map((id) => this.#stmt.byId.get(id)).filter((r): r is EventRow => r !== undefined && r.done === 0)
    if (rows.length === 0) return
    // Durable if a case changes stage (what its terminal is shown must survive); a
    // deletion alone need not be.
    const durable = rows.some((r) => r.rank <= LAST_CASE_RANK)
    this.#db.write(durable, () => {
      for (const r of rows) {
        if (r.rank === RANK.alarm) this.#stmt.sentAlarm.run(alarmRetryAt(r.attempts + 1), now, r.id)
        else if (r.rank <= LAST_CASE_RANK) this.#stmt.sentCase.run(now, r.id)
        else this.#stmt.deleteId.run(r.id)
        if (r.rank <= LAST_CASE_RANK && r.stage === 'stored') this.#stmt.addStage.run(r.id, 'sent', now, null, null)
      }
    })
  }

  retryAt(id: string, at: number): void {
    this.#db.write(true, () => this.#stmt.retryAt.run(at, id))
  }

  advance(id: string, stage: Stage, now: number, detail: { text?: string; etaAt?: number }): StoredEvent | undefined {
    const r = this.#stmt.byId.get(id)
    if (!r) return undefined
    const ends = endsRepublication(stage)
    if (!isForward(r.stage, stage)) {
      // A receipt for an alarm already past it still ends republication.
      if (ends && r.done === 0) this.#db.write(true, () => this.#stmt.endPublication.run(id))
      return undefined
    }
    this.#db.write(true, () => {
      this.#stmt.setStage.run(stage, now, ends ? 1 : 0, detail.text ?? null, detail.etaAt ?? null, id)
      this.#stmt.addStage.run(id, stage, now, detail.text ?? null, detail.etaAt ?? null)
    })
    return fromRow(this.#stmt.byId.get(id)!)
  }

  openAlerts(): StoredEvent[] {
    return this.#stmt.openAlerts.all().map(fromRow)
  }

  cases(since: number): StoredEvent[] {
    return this.#stmt.cases.all(since).map(fromRow)
  }

  recentAlerts(terminal: string, epoch: string, since: number): StoredEvent[] {
    return this.#stmt.recentAlerts.all(terminal, epoch, since).map(fromRow)
  }

  awaitingReceipt(storedBefore: number): StoredEvent[] {
    return this.#stmt.awaitingReceipt.all(storedBefore).map(fromRow)
  }

  unreceiptedAlarms(): number {
    return this.#stmt.unreceipted.get()!.n
  }

  /** Within a write(): the bounds on the events, each drop passed to `note` under its counter name. */
  bound(now: number, L: Limits, note: (name: string, n: number) => void): void {
    note('dropped.request.age', this.#stmt.dropOlderThan.run(RANK.request, now - L.maxRequestAgeDays * DAY_MS).changes)
    note('dropped.trouble.age', this.#stmt.dropOlderThan.run(RANK.trouble, now - L.maxTroubleAgeDays * DAY_MS).changes)
    for (const [cls, max] of [
      ['request', L.maxRequestEvents],
      ['trouble', L.maxTroubleEvents],
    ] as const) {
      const over = this.#stmt.classCount.get(RANK[cls])!.n - max
      if (over > 0) note(`dropped.${cls}.count`, this.#stmt.dropOldest.run(RANK[cls], over).changes)
    }
    const maxBytes = L.maxStoreMB * 1024 * 1024
    while ((this.#stmt.lowerBytes.get()!.bytes ?? 0) > maxBytes) {
      const victim = this.#stmt.oldestLower.get()
      if (!victim) break
      note(`dropped.${CLASS_OF_RANK[victim.rank]}.size`, this.#stmt.dropOldest.run(victim.rank, 100).changes)
    }
    this.#stmt.purgeResolved.run(now - RESOLVED_KEEP_MS)
    // A request the platform has (sent) but never answered is not kept for ever: the
    // platform holds it; the gateway forgets the case after the request age limit.
    note('forgotten.request.age', this.#stmt.purgeOldRequests.run(now - L.maxRequestAgeDays * DAY_MS).changes)
  }

  backlog(): Record<PriorityClass, { count: number; bytes: number }> {
    return Object.fromEntries(
      CLASS_OF_RANK.map((c) => {
        const r = this.#stmt.classCount.get(RANK[c])!
        return [c, { count: r.n, bytes: r.bytes ?? 0 }]
      }),
    ) as Record<PriorityClass, { count: number; bytes: number }>
  }
}
