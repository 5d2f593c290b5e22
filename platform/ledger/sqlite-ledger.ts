/**
 * SqliteLedger: the CaseLedger in one SQLite file (better-sqlite3), the embedded default.
 * The file, its layout and why it is shared by several desks are in db.ts; the shapes and
 * rules in ledger.ts; how deadlines and figures are counted in deadlines.ts.
 *
 * Every change goes through #write(): one BEGIN IMMEDIATE transaction holding the change
 * and its audit row, committed with synchronous=FULL. Input is checked before the
 * transaction, and every refusal is thrown inside it before anything is written, so a
 * refusal rolls back nothing but itself. Nothing is cached between calls: a second desk
 * on the same file sees every change at its next call.
 */

import type Database from 'better-sqlite3'
import { createHash } from 'node:crypto'
import { isForward } from '../../protocol/lifecycle.js'
import { differingContent, type UplinkEvent } from '../../protocol/mqtt.js'
import { CONFLICT_WARNING, MAX_VERSIONS, type CaseClass } from '../cases.js'
import { relayView } from '../view.js'
import { canonical, GENESIS, rowHash } from './audit.js'
import { openLedgerFile } from './db.js'
import { computeFigures, mostUrgent, openDeadlines } from './deadlines.js'
import { LedgerError } from './errors.js'
import type {
  Actor,
  AuditAction,
  AuditCheck,
  AuditRow,
  CaseLedger,
  CopyVersion,
  DeadlineKind,
  Escalation,
  EscalateOptions,
  EscalationNotice,
  Figures,
  FiguresQuery,
  FiguresReport,
  FindQuery,
  LedgerCase,
  LedgerStage,
  Overdue,
  QueueEntry,
  RecordOptions,
  Recorded,
} from './ledger.js'
import { checkSettings, deadlinesFor, LEDGER_DEFAULTS, type LedgerSettings, type LedgerSettingsPatch, withSettings } from './settings.js'

export interface SqliteLedgerOptions {
  /** The settings of a new ledger, over the defaults. A ledger that has settings keeps them: updateSettings() changes them. */
  settings?: LedgerSettingsPatch
  /** When the settings of a new ledger are written, for the audit trail (UNIX ms). Default 0. */
  at?: number
  /** The area of a gateway, when record() is not told one: the registry of gateways, or the area of its birth. */
  gatewayArea?: (gateway: string) => string | null | undefined
  /** How long a write waits for another desk's to finish, ms. Default 5000. */
  busyMs?: number
}

/** The actor of what the ledger does by itself (a conflict reopening a case, the first settings). */
export const LEDGER_ACTOR = 'ledger'
/** The actor of a copy: the gateway it came from. */
export const gatewayActor = (gateway: string) => `gateway:${gateway}`

/** An operator's name: as `by` of an acknowledgement ([MQTT-4.7]: 1-100 characters). */
export const MAX_ACTOR = 100

interface CaseRow {
  id: string
  class: CaseClass
  kind: string
  unknown_kind: number
  gateway: string
  area: string | null
  terminal: string | null
  address: number | null
  number: number | null
  code: number | null
  time_at: number
  time_estimated: number
  text: string | null
  relay: string | null
  cancels: string | null
  received_at: number
  last_received_at: number
  copies: number
  attempt: number
  gateway_stage: string | null
  stage: LedgerStage
  owner: string | null
  owner_since: number | null
  acknowledged_by: string | null
  unit: string | null
  eta_min: number | null
  disposition: string | null
  resolved_at: number | null
  acknowledge_due_at: number | null
  handle_due_at: number | null
  conflict: string | null
}

interface VersionRow {
  n: number
  gateway: string
  body: string
  first_at: number
  last_at: number
  copies: number
}

export class SqliteLedger implements CaseLedger {
  readonly path: string
  readonly #db: Database.Database
  readonly #gatewayArea: ((gateway: string) => string | null | undefined) | undefined
  readonly #stmt: ReturnType<typeof prepare>

  private constructor(path: string, db: Database.Database, opts: SqliteLedgerOptions) {
    this.path = path
    this.#db = db
    this.#gatewayArea = opts.gatewayArea
    this.#stmt = prepare(db)
  }

  /** Opens (or creates) the ledger file at `path`; throws LedgerError (LEDGER_FOREIGN, LEDGER_NEWER, LEDGER_EMPTY, LEDGER_OPEN_FAILED, LEDGER_BAD_SETTINGS). */
  static open(path: string, opts: SqliteLedgerOptions = {}): SqliteLedger {
    // Checked before the file is touched: bad settings never leave a ledger behind.
    const initial = withSettings(LEDGER_DEFAULTS, opts.settings ?? {})
    const at = opts.at ?? 0
    time(at, 'at')
    const db = openLedgerFile(path, opts.busyMs ?? 5000)
    const l = new SqliteLedger(path, db, opts)
    try {
      l.#write(() => {
        if (l.#meta('settings') !== undefined) return
        l.#putMeta('settings', canonical(initial))
        l.#audit(at, LEDGER_ACTOR, 'settings', null, { settings: initial, first: true })
      })
    } catch (err) {
      db.close()
      throw err
    }
    return l
  }

  // -------------------------------------------------------------------------------------
  // Cases

  async record(copy: UplinkEvent, at: number, opts: RecordOptions = {}): Promise<Recorded> {
    time(at, 'at')
    if (typeof copy !== 'object' || copy === null) throw bad('the copy must be an uplink event (protocol/mqtt.ts UplinkEvent)')
    caseId(copy.id)
    const cls = opts.class ?? copy.class
    if (cls !== 'alarm' && cls !== 'request') {
      throw new LedgerError('LEDGER_NOT_A_CASE', `${copy.id} is of class ${String(cls)}: only alarms and requests are cases (trouble and status go to the overview)`)
    }
    const gateway = opts.gateway ?? copy.gateway
    if (typeof gateway !== 'string' || gateway.length === 0) throw bad(`${copy.id} names no gateway`)
    if (typeof copy.kind !== 'string' || copy.kind.length === 0) throw bad(`${copy.id} has no kind`)
    if (typeof copy.time?.at !== 'number' || typeof copy.time.estimated !== 'boolean') throw bad(`${copy.id} has no time { at, estimated }`)
    return this.#write(() => {
      const row = this.#row(copy.id)
      if (row === undefined) return this.#recordNew(copy, cls, gateway, at, opts)
      const st = this.#stmt
      st.copied.run(at, copy.attempt ?? 0, copy.stage ?? null, copy.id)
      const versions = st.versions.all(copy.id).map(versionOf)
      // [MQTT-4.15] as platform/cases.ts: the same gateway, and the same content but for what changes per publication.
      const open = row.stage !== 'resolved'
      const same = versions.find((v) => v.gateway === gateway && differingContent(v.event, copy, { open }).length === 0)
      if (same !== undefined) {
        // A republication changes no fact of the case: counted on its version, not an action for the audit trail.
        st.versionCopied.run(at, copy.id, versionNumber(versions, same))
        return { outcome: 'republication' as const, case: this.#case(copy.id), differs: null }
      }
      return this.#conflict(row, versions, copy, gateway, at)
    })
  }

  #recordNew(copy: UplinkEvent, cls: CaseClass, gateway: string, at: number, opts: RecordOptions): Recorded {
    const s = this.#settings()
    const d = deadlinesFor(s, cls, copy.kind)
    // The area as it was when the case came: figures per area stay what they were if a gateway moves later.
    const area = opts.area !== undefined ? opts.area : (this.#gatewayArea?.(gateway) ?? null)
    const relay = relayView(copy.relay)
    this.#stmt.insertCase.run({
      id: copy.id,
      class: cls,
      kind: copy.kind,
      unknown_kind: opts.unknownKind === true ? 1 : 0,
      gateway,
      area,
      terminal: copy.terminal ?? null,
      address: copy.address ?? null,
      number: copy.number ?? null,
      code: copy.code ?? null,
      time_at: copy.time.at,
      time_estimated: copy.time.estimated ? 1 : 0,
      text: copy.text ?? null,
      relay: relay === null ? null : JSON.stringify(relay),
      cancels: copy.cancels ?? null,
      received_at: at,
      copies: 1,
      attempt: copy.attempt ?? 1,
      gateway_stage: copy.stage ?? null,
      acknowledge_due_at: d.acknowledgeMs === null ? null : at + d.acknowledgeMs,
      handle_due_at: d.handleMs === null ? null : at + d.handleMs,
    })
    const body = JSON.stringify(copy)
    this.#stmt.insertVersion.run(copy.id, 1, gateway, body, at, at, 1)
    this.#stmt.insertStage.run(copy.id, 'received', at, gatewayActor(gateway))
    this.#audit(at, gatewayActor(gateway), 'record', copy.id, {
      class: cls,
      kind: copy.kind,
      gateway,
      area,
      terminal: copy.terminal ?? null,
      code: copy.code ?? null,
      time: { at: copy.time.at, estimated: copy.time.estimated },
      // The copy itself is in `versions`; its hash here shows if that row is edited later.
      body: sha256(canonical(copy)),
    })
    return { outcome: 'new', case: this.#case(copy.id), differs: null }
  }

  /** [CONSOLE-10] Another item under a known id: kept (up to MAX_VERSIONS), and the case opens again. */
  #conflict(row: CaseRow, versions: CopyVersion[], copy: UplinkEvent, gateway: string, at: number): Recorded {
    const first = versions[0]!
    const differs = differingContent(first.event, copy, { open: row.stage !== 'resolved' })
    if (first.gateway !== gateway) differs.unshift('gateway (topic)')
    if (versions.length < MAX_VERSIONS) this.#stmt.insertVersion.run(copy.id, versions.length + 1, gateway, JSON.stringify(copy), at, at, 1)
    const before = row.conflict === null ? null : (JSON.parse(row.conflict) as { differs: string[]; since: number })
    const conflict = { differs: [...new Set([...(before?.differs ?? []), ...differs])], since: before?.since ?? at }
    const reopened = row.stage !== 'received'
    if (reopened) {
      // Open again, whatever it had reached: its answers may have gone to the other version.
      // Its deadlines count again from now: an operator must phone the household.
      const d = deadlinesFor(this.#settings(), row.class, row.kind)
      this.#stmt.reopen.run(d.acknowledgeMs === null ? null : at + d.acknowledgeMs, d.handleMs === null ? null : at + d.handleMs, row.id)
      this.#stmt.insertStage.run(row.id, 'received', at, LEDGER_ACTOR)
    }
    this.#stmt.setConflict.run(JSON.stringify(conflict), row.id)
    this.#audit(at, gatewayActor(gateway), 'conflict', row.id, {
      differs,
      gateway,
      kept: versions.length < MAX_VERSIONS,
      reopenedFrom: reopened ? row.stage : null,
      body: sha256(canonical(copy)),
    })
    return { outcome: 'conflict', case: this.#case(row.id), differs }
  }

  async get(id: string): Promise<LedgerCase> {
    caseId(id)
    return this.#read(() => this.#case(id))
  }

  // -------------------------------------------------------------------------------------
  // Ownership

  async take(id: string, operator: Actor, at: number): Promise<LedgerCase> {
    caseId(id)
    actor(operator, 'operator')
    time(at, 'at')
    return this.#write(() => {
      // The one atomic step: of two desks taking at once, the second UPDATE finds an owner.
      if (this.#stmt.take.run(operator, at, id).changes === 1) {
        this.#audit(at, operator, 'take', id, {})
        return this.#case(id)
      }
      const row = this.#mustRow(id)
      if (row.owner === operator) return this.#case(id)
      throw taken(row)
    })
  }

  async release(id: string, operator: Actor, at: number): Promise<LedgerCase> {
    caseId(id)
    actor(operator, 'operator')
    time(at, 'at')
    return this.#write(() => {
      if (this.#stmt.release.run(id, operator).changes === 1) {
        this.#audit(at, operator, 'release', id, {})
        return this.#case(id)
      }
      const row = this.#mustRow(id)
      throw new LedgerError('LEDGER_NOT_OWNER', row.owner === null ? `case ${id} is not taken by anyone` : `case ${id} is taken by ${row.owner}, not ${operator}: only the owner releases it`, {
        ...(row.owner === null ? {} : { owner: row.owner }),
      })
    })
  }

  async handOver(id: string, o: { to: Actor; by: Actor; at: number; reason: string }): Promise<LedgerCase> {
    caseId(id)
    actor(o.to, 'to')
    actor(o.by, 'by')
    time(o.at, 'at')
    text(o.reason, 'reason', 1, 500)
    return this.#write(() => {
      const row = this.#mustRow(id)
      this.#stmt.handOver.run(o.to, o.at, id)
      this.#audit(o.at, o.by, 'hand-over', id, { from: row.owner, to: o.to, reason: o.reason })
      return this.#case(id)
    })
  }

  // -------------------------------------------------------------------------------------
  // Stages

  async acknowledge(id: string, o: { by: Actor; at: number; text?: string }): Promise<LedgerCase> {
    if (o.text !== undefined) text(o.text, 'text', 0, 200)
    return this.#advance(id, o.by, o.at, 'acknowledged', () => this.#stmt.acknowledged.run(o.by, id), o.text === undefined ? {} : { text: o.text })
  }

  async dispatch(id: string, o: { by: Actor; at: number; unit: string; etaMin: number }): Promise<LedgerCase> {
    text(o.unit, 'unit', 1, 100)
    if (!Number.isInteger(o.etaMin) || o.etaMin < 0 || o.etaMin > 65535) throw bad(`etaMin must be whole minutes from 0 to 65535 (a dispatch's eta [MQTT-4.7]), got ${String(o.etaMin)}`)
    return this.#advance(id, o.by, o.at, 'dispatched', () => this.#stmt.dispatched.run(o.unit, o.etaMin, id), { unit: o.unit, etaMin: o.etaMin })
  }

  async resolve(id: string, o: { by: Actor; at: number; disposition: string }): Promise<LedgerCase> {
    text(o.disposition, 'disposition', 1, 200)
    return this.#advance(id, o.by, o.at, 'resolved', () => this.#stmt.resolved.run(o.disposition, o.at, id), { disposition: o.disposition })
  }

  /**
   * An operator's step along the lifecycle. First responder: whoever answers a case nobody
   * owns takes it with that step; a case another operator owns is refused (a supervisor
   * hands it over first). Forward only, as canTake()/isForward.
   */
  #advance(id: string, by: Actor, at: number, to: LedgerStage, set: () => void, details: Record<string, unknown>): LedgerCase {
    caseId(id)
    actor(by, 'by')
    time(at, 'at')
    return this.#write(() => {
      const row = this.#mustRow(id)
      if (row.owner !== null && row.owner !== by) throw taken(row)
      if (!isForward(row.stage, to)) {
        throw new LedgerError('LEDGER_STAGE_PASSED', `${row.class} ${id} is already ${row.stage}: stages move forward only, so it cannot be ${to} now`)
      }
      if (row.owner === null) {
        this.#stmt.take.run(by, at, id)
        this.#audit(at, by, 'take', id, { with: to })
      }
      set()
      this.#stmt.setStage.run(to, id)
      this.#stmt.insertStage.run(id, to, at, by)
      this.#audit(at, by, ACTION_OF[to], id, details)
      return this.#case(id)
    })
  }

  // -------------------------------------------------------------------------------------
  // Escalation, comments, follow-ups

  async escalate(id: string, o: EscalateOptions): Promise<EscalationNotice> {
    caseId(id)
    actor(o.by, 'by')
    time(o.at, 'at')
    text(o.reason, 'reason', 1, 500)
    return this.#write(() => {
      const row = this.#mustRow(id)
      if (row.stage === 'resolved') throw new LedgerError('LEDGER_STAGE_PASSED', `${row.class} ${id} is resolved: there is nothing to escalate`)
      const levels = this.#settings().levels
      const current = this.#stmt.lastEscalation.get(id)
      // By name: the list may have changed since; a level no longer in it counts by its old place.
      const from = current === undefined ? -1 : levels.findIndex((l) => l.name === current.name) >= 0 ? levels.findIndex((l) => l.name === current.name) : current.level
      let to: number
      if (o.to !== undefined) {
        to = levels.findIndex((l) => l.name === o.to)
        if (to < 0) throw new LedgerError('LEDGER_BAD_LEVEL', `no escalation level '${o.to}': the levels are ${levels.map((l) => l.name).join(', ')}`)
        if (to <= from) throw new LedgerError('LEDGER_BAD_LEVEL', `${row.class} ${id} is already at the ${current!.name}: escalation goes up only (${levels.map((l) => l.name).join(' -> ')})`)
      } else {
        to = from + 1
        if (to >= levels.length) throw new LedgerError('LEDGER_BAD_LEVEL', `${row.class} ${id} is already at the ${current!.name}, the top level: there is no level above`)
      }
      const level = levels[to]!
      const dueAt = o.at + level.deadlineS * 1000
      this.#stmt.insertEscalation.run(id, to, level.name, o.at, o.by, o.reason, dueAt, o.auto === true ? 1 : 0)
      this.#audit(o.at, o.by, 'escalate', id, { from: current?.name ?? null, to: level.name, reason: o.reason, dueAt, auto: o.auto === true })
      return {
        case: this.#case(id),
        level: { index: to, name: level.name, deadlineS: level.deadlineS, contacts: level.contacts.map((c) => ({ ...c })) },
        text: `escalated to the ${level.name}`,
        dueAt,
        etaMin: Math.min(65535, Math.ceil(level.deadlineS / 60)),
      }
    })
  }

  async comment(id: string, o: { by: Actor; at: number; text: string }): Promise<LedgerCase> {
    caseId(id)
    actor(o.by, 'by')
    time(o.at, 'at')
    text(o.text, 'text', 1, 2000)
    return this.#write(() => {
      this.#mustRow(id)
      this.#stmt.insertComment.run(id, o.at, o.by, o.text)
      this.#audit(o.at, o.by, 'comment', id, { text: o.text })
      return this.#case(id)
    })
  }

  async scheduleFollowUp(id: string, o: { by: Actor; at: number; dueAt: number; note?: string }): Promise<LedgerCase> {
    caseId(id)
    actor(o.by, 'by')
    time(o.at, 'at')
    time(o.dueAt, 'dueAt')
    if (o.dueAt < o.at) throw bad(`dueAt (${o.dueAt}) is before at (${o.at}): a follow-up is due later`)
    if (o.note !== undefined) text(o.note, 'note', 0, 500)
    return this.#write(() => {
      const row = this.#mustRow(id)
      if (row.stage !== 'resolved') throw new LedgerError('LEDGER_NO_FOLLOW_UP', `${row.class} ${id} is ${row.stage}: a follow-up comes after it is resolved`)
      const n = (this.#stmt.lastFollowUp.get(id)?.n ?? 0) + 1
      this.#stmt.insertFollowUp.run(id, n, o.dueAt, o.at, o.by, o.note ?? null)
      this.#audit(o.at, o.by, 'follow-up', id, { n, dueAt: o.dueAt, note: o.note ?? null })
      return this.#case(id)
    })
  }

  async recordFollowUp(id: string, o: { by: Actor; at: number; outcome: string }): Promise<LedgerCase> {
    caseId(id)
    actor(o.by, 'by')
    time(o.at, 'at')
    text(o.outcome, 'outcome', 1, 1000)
    return this.#write(() => {
      const row = this.#mustRow(id)
      const open = this.#stmt.openFollowUp.get(id)
      if (open === undefined) throw new LedgerError('LEDGER_NO_FOLLOW_UP', `${row.class} ${id} has no follow-up waiting for an outcome: schedule one first`)
      this.#stmt.doneFollowUp.run(o.outcome, o.at, o.by, id, open.n)
      this.#audit(o.at, o.by, 'follow-up-outcome', id, { n: open.n, outcome: o.outcome })
      return this.#case(id)
    })
  }

  // -------------------------------------------------------------------------------------
  // The desk and the timer

  async queue(now: number): Promise<QueueEntry[]> {
    time(now, 'now')
    return this.#read(() => {
      const share = this.#settings().nearShare
      return this.#stmt.openIds.all().map(({ id }) => {
        const c = this.#case(id)
        return { case: c, deadline: mostUrgent(openDeadlines(c, now, share)), ageMs: now - c.receivedAt }
      })
    })
  }

  async overdue(now: number): Promise<Overdue[]> {
    time(now, 'now')
    return this.#read(() => {
      const s = this.#settings()
      const out: Overdue[] = []
      for (const { id } of this.#stmt.deadlineIds.all()) {
        const c = this.#case(id)
        for (const d of openDeadlines(c, now, s.nearShare)) {
          if (d.state !== 'passed') continue
          const alerted = this.#stmt.alerted.get(id, d.kind, d.dueAt) !== undefined
          out.push({
            id,
            class: c.class,
            kind: c.kind,
            area: c.area,
            deadline: d.kind,
            dueAt: d.dueAt,
            lateMs: now - d.dueAt,
            ...(d.level === undefined ? {} : { level: d.level }),
            escalateTo: d.kind === 'follow-up' || !s.autoEscalate ? null : nextLevel(s, c.level),
            alerted,
          })
        }
      }
      return out.sort((a, b) => a.dueAt - b.dueAt || a.id.localeCompare(b.id))
    })
  }

  async noteAlerted(id: string, o: { deadline: DeadlineKind; dueAt: number; by: Actor; at: number }): Promise<void> {
    caseId(id)
    actor(o.by, 'by')
    time(o.at, 'at')
    time(o.dueAt, 'dueAt')
    if (!['acknowledge', 'handle', 'escalation', 'follow-up'].includes(o.deadline)) throw bad(`deadline must be acknowledge, handle, escalation or follow-up, got ${String(o.deadline)}`)
    this.#write(() => {
      this.#mustRow(id)
      if (this.#stmt.noteAlert.run(id, o.deadline, o.dueAt, o.at, o.by).changes === 1) this.#audit(o.at, o.by, 'deadline-alert', id, { deadline: o.deadline, dueAt: o.dueAt })
    })
  }

  async nextDeadline(now: number): Promise<{ at: number; id: string; deadline: DeadlineKind } | null> {
    time(now, 'now')
    return this.#read(() => {
      const share = this.#settings().nearShare
      let best: { at: number; id: string; deadline: DeadlineKind } | null = null
      for (const { id } of this.#stmt.deadlineIds.all()) {
        for (const d of openDeadlines(this.#case(id), now, share)) {
          if (d.dueAt > now && (best === null || d.dueAt < best.at)) best = { at: d.dueAt, id, deadline: d.kind }
        }
      }
      return best
    })
  }

  // -------------------------------------------------------------------------------------
  // Figures and history

  async figures(q: FiguresQuery): Promise<FiguresReport> {
    time(q.from, 'from')
    time(q.to, 'to')
    if (q.to <= q.from) throw bad(`to (${q.to}) must be after from (${q.from})`)
    if (q.periodMs !== undefined) {
      if (!Number.isSafeInteger(q.periodMs) || q.periodMs <= 0) throw bad(`periodMs must be whole milliseconds above 0, got ${String(q.periodMs)}`)
      if ((q.to - q.from) / q.periodMs > 10_000) throw bad('at most 10 000 periods: choose a longer periodMs')
    }
    if (q.area !== undefined && q.area !== null) text(q.area, 'area', 1, 64)
    return this.#read(() => {
      const share = this.#settings().nearShare
      let cases = this.#stmt.receivedBetween.all(q.from, q.to).map(({ id }) => this.#case(id))
      if (q.area !== undefined) cases = cases.filter((c) => c.area === q.area)
      const areas = [...new Set(cases.map((c) => c.area))].sort((a, b) => (a === null ? 1 : b === null ? -1 : a.localeCompare(b)))
      const periods: Figures[] = []
      if (q.periodMs !== undefined) for (let f = q.from; f < q.to; f += q.periodMs) periods.push(computeFigures(cases, f, Math.min(q.to, f + q.periodMs), share))
      return {
        total: computeFigures(cases, q.from, q.to, share),
        areas: areas
          .map((area) =>
            computeFigures(
              cases.filter((c) => c.area === area),
              q.from,
              q.to,
              share,
            ),
          )
          .map((figures, i) => ({ area: areas[i]!, figures })),
        periods,
      }
    })
  }

  async find(q: FindQuery): Promise<LedgerCase[]> {
    const where: string[] = []
    const args: (string | number)[] = []
    for (const [field, column] of [
      ['terminal', 'terminal'],
      ['gateway', 'gateway'],
      ['area', 'area'],
    ] as const) {
      const v = q[field]
      if (v === undefined) continue
      text(v, field, 1, 160)
      where.push(`${column} = ?`)
      args.push(v)
    }
    if (q.from !== undefined) {
      time(q.from, 'from')
      where.push('received_at >= ?')
      args.push(q.from)
    }
    if (q.to !== undefined) {
      time(q.to, 'to')
      where.push('received_at < ?')
      args.push(q.to)
    }
    const limit = q.limit ?? 100
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw bad(`limit must be a whole number from 1 to 10000, got ${String(limit)}`)
    return this.#read(() => {
      const sql = `SELECT id FROM cases ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY received_at DESC, id LIMIT ?`
      return (this.#db.prepare(sql).all(...args, limit) as { id: string }[]).map(({ id }) => this.#case(id))
    })
  }

  // -------------------------------------------------------------------------------------
  // Settings and the audit trail

  async settings(): Promise<LedgerSettings> {
    return this.#read(() => this.#settings())
  }

  async updateSettings(patch: LedgerSettingsPatch, by: Actor, at: number): Promise<LedgerSettings> {
    actor(by, 'by')
    time(at, 'at')
    if (typeof patch !== 'object' || patch === null) throw new LedgerError('LEDGER_BAD_SETTINGS', 'settings: must be an object of the ledger settings')
    return this.#write(() => {
      const before = this.#settings()
      const after = withSettings(before, patch)
      this.#putMeta('settings', canonical(after))
      this.#audit(at, by, 'settings', null, { before, after })
      return after
    })
  }

  async audit(q: { caseId?: string; afterSeq?: number; limit?: number } = {}): Promise<AuditRow[]> {
    if (q.caseId !== undefined) caseId(q.caseId)
    const after = q.afterSeq ?? 0
    const limit = q.limit ?? 1000
    if (!Number.isSafeInteger(after) || after < 0) throw bad(`afterSeq must be a whole number, 0 or more, got ${String(after)}`)
    if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw bad(`limit must be a whole number from 1 to 100000, got ${String(limit)}`)
    return this.#read(() => {
      const rows = q.caseId === undefined ? this.#stmt.auditAfter.all(after, limit) : this.#stmt.auditOfCase.all(q.caseId, after, limit)
      return rows.map((r) => ({ seq: r.seq, at: r.at, actor: r.actor, action: r.action as AuditAction, caseId: r.case_id, details: JSON.parse(r.details), prev: r.prev, hash: r.hash }))
    })
  }

  async verifyAudit(): Promise<AuditCheck> {
    return this.#read(() => {
      let prev = GENESIS
      let rows = 0
      for (const r of this.#stmt.auditAll.iterate()) {
        if (r.prev !== prev) return { ok: false, rows, seq: r.seq, reason: `row ${r.seq} does not follow the row before it (a row was deleted, inserted or edited before it)` }
        if (rowHash(prev, { seq: r.seq, at: r.at, actor: r.actor, action: r.action, caseId: r.case_id, details: r.details }) !== r.hash) {
          return { ok: false, rows, seq: r.seq, reason: `row ${r.seq} does not match its hash: it was edited after it was written` }
        }
        prev = r.hash
        rows++
      }
      // The copies themselves: each kept version must still hash to the `body` of the row that recorded it.
      const kept = new Map<string, number>()
      for (const r of this.#stmt.auditCopies.iterate()) {
        const d = JSON.parse(r.details) as { body?: string; kept?: boolean }
        if (r.action === 'conflict' && d.kept !== true) continue
        const n = (kept.get(r.case_id) ?? 0) + 1
        kept.set(r.case_id, n)
        const v = this.#stmt.versionBody.get(r.case_id, n)
        if (v === undefined || sha256(canonical(JSON.parse(v.body))) !== d.body) {
          return { ok: false, rows, seq: r.seq, reason: `the copy of case ${r.case_id} that row ${r.seq} recorded (version ${n}) is missing or was edited after it was stored` }
        }
      }
      return { ok: true, rows, head: prev }
    })
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close()
  }

  // -------------------------------------------------------------------------------------
  // Inside

  /** One change: BEGIN IMMEDIATE, committed durably; SQLite's own failures become LEDGER_WRITE_FAILED. */
  #write<T>(fn: () => T): T {
    this.#open()
    try {
      return this.#db.transaction(fn).immediate()
    } catch (err) {
      if (err instanceof LedgerError) throw err
      throw new LedgerError('LEDGER_WRITE_FAILED', `the ledger ${this.path} could not store this (${(err as Error)?.message ?? String(err)}): nothing was changed`, { cause: err })
    }
  }

  /** One consistent read (a deferred transaction: one snapshot of the WAL). */
  #read<T>(fn: () => T): T {
    this.#open()
    return this.#db.transaction(fn).deferred()
  }

  #open(): void {
    if (!this.#db.open) throw new LedgerError('LEDGER_CLOSED', `the ledger ${this.path} was closed`)
  }

  /** Appends an audit row after the last one; within #write (the write lock keeps the chain one line). */
  #audit(at: number, who: Actor, action: AuditAction, id: string | null, details: Record<string, unknown>): void {
    const last = this.#stmt.auditHead.get()
    const row = { seq: (last?.seq ?? 0) + 1, at, actor: who, action, caseId: id, details: canonical(details) }
    const prev = last?.hash ?? GENESIS
    this.#stmt.insertAudit.run(row.seq, at, who, action, id, row.details, prev, rowHash(prev, row))
  }

  #settings(): LedgerSettings {
    const raw = this.#meta('settings')
    const s: unknown = raw === undefined ? LEDGER_DEFAULTS : JSON.parse(raw)
    checkSettings(s)
    return s
  }

  #meta(key: string): string | undefined {
    return this.#stmt.getMeta.get(key)?.value
  }

  #putMeta(key: string, value: string): void {
    this.#stmt.setMeta.run(key, value)
  }

  #row(id: string): CaseRow | undefined {
    return this.#stmt.caseRow.get(id)
  }

  #mustRow(id: string): CaseRow {
    const row = this.#row(id)
    if (row === undefined) throw new LedgerError('LEDGER_UNKNOWN_CASE', `no alarm or request '${id}' is in the ledger`)
    return row
  }

  #case(id: string): LedgerCase {
    const r = this.#mustRow(id)
    const st = this.#stmt
    const escalations: Escalation[] = st.escalations.all(id).map((e) => ({ level: e.level, name: e.name, at: e.at, by: e.by, reason: e.reason, dueAt: e.due_at, auto: e.auto === 1 }))
    const conflict = r.conflict === null ? null : (JSON.parse(r.conflict) as { differs: string[]; since: number })
    return {
      id: r.id,
      class: r.class,
      kind: r.kind,
      unknownKind: r.unknown_kind === 1,
      gateway: r.gateway,
      area: r.area,
      terminal: r.terminal,
      address: r.address,
      number: r.number,
      code: r.code,
      time: { at: r.time_at, estimated: r.time_estimated === 1 },
      text: r.text,
      relay: r.relay === null ? null : JSON.parse(r.relay),
      cancels: r.cancels,
      cancelledBy: st.cancelledBy.get(id)?.id ?? null,
      receivedAt: r.received_at,
      lastReceivedAt: r.last_received_at,
      copies: r.copies,
      attempt: r.attempt,
      gatewayStage: r.gateway_stage,
      stage: r.stage,
      history: st.stages.all(id),
      owner: r.owner === null ? null : { name: r.owner, since: r.owner_since ?? r.received_at },
      acknowledgedBy: r.acknowledged_by,
      unit: r.unit,
      etaMin: r.eta_min,
      disposition: r.disposition,
      resolvedAt: r.resolved_at,
      acknowledgeDueAt: r.acknowledge_due_at,
      handleDueAt: r.handle_due_at,
      level: escalations[escalations.length - 1] ?? null,
      escalations,
      comments: st.comments.all(id),
      followUps: st.followUps.all(id).map((f) => ({ n: f.n, dueAt: f.due_at, setAt: f.set_at, setBy: f.set_by, note: f.note, outcome: f.outcome, doneAt: f.done_at, doneBy: f.done_by })),
      conflict: conflict === null ? null : { warning: CONFLICT_WARNING, differs: conflict.differs, since: conflict.since, versions: st.versions.all(id).map(versionOf) },
    }
  }
}

/** The audit action of each stage an operator moves a case to. */
const ACTION_OF: Readonly<Record<LedgerStage, AuditAction>> = { received: 'record', acknowledged: 'acknowledge', dispatched: 'dispatch', resolved: 'resolve' }

function nextLevel(s: LedgerSettings, current: Escalation | null): string | null {
  const at = current === null ? -1 : s.levels.findIndex((l) => l.name === current.name)
  const from = current !== null && at < 0 ? current.level : at
  return s.levels[from + 1]?.name ?? null
}

function versionOf(v: VersionRow): CopyVersion {
  return { gateway: v.gateway, event: JSON.parse(v.body) as UplinkEvent, firstReceivedAt: v.first_at, lastReceivedAt: v.last_at, copies: v.copies }
}

function versionNumber(versions: CopyVersion[], v: CopyVersion): number {
  return versions.indexOf(v) + 1
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex')
}

function taken(row: CaseRow): LedgerError {
  return new LedgerError('LEDGER_TAKEN', `${row.class} ${row.id} is taken by ${row.owner}: ask them, or a supervisor to hand it over`, { owner: row.owner! })
}

// ---------------------------------------------------------------------------------------
// Checking input: before any transaction, so a refusal changes nothing.

function bad(message: string): LedgerError {
  return new LedgerError('LEDGER_BAD_INPUT', message)
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/** An operator's (or supervisor's) name: 1-100 characters, not only spaces, no control characters. */
function actor(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || name.trim().length === 0) throw bad(`${what}: an operator name is required (1-${MAX_ACTOR} characters), got ${JSON.stringify(name) ?? String(name)}`)
  const n = [...name].length
  if (n > MAX_ACTOR) throw bad(`${what}: an operator name is at most ${MAX_ACTOR} characters, got ${n}`)
  if (CONTROL.test(name)) throw bad(`${what}: an operator name cannot hold control characters`)
}

function time(t: unknown, what: string): asserts t is number {
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) throw bad(`${what} must be UNIX milliseconds (a whole number, 0 or more), got ${String(t)}`)
}

function text(s: unknown, what: string, min: number, max: number): asserts s is string {
  if (typeof s !== 'string') throw bad(`${what} must be a text of ${min}-${max} characters, got ${typeof s}`)
  const n = [...s].length
  if (n < min || (min > 0 && s.trim().length === 0) || n > max) throw bad(`${what} must be ${min}-${max} characters, got ${n}`)
}

/** A case id: an uplink event's `id` (1-160 characters [MQTT-3.2]). */
function caseId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > 160) throw bad(`a case id is an alert id of 1-160 characters, got ${JSON.stringify(id) ?? String(id)}`)
}

function prepare(db: Database.Database) {
  return {
    getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
    caseRow: db.prepare<[string], CaseRow>('SELECT * FROM cases WHERE id = ?'),
    insertCase: db.prepare(
      `INSERT INTO cases (id, class, kind, unknown_kind, gateway, area, terminal, address, number, code, time_at, time_estimated, text, relay, cancels,
        received_at, last_received_at, copies, attempt, gateway_stage, stage, acknowledge_due_at, handle_due_at)
       VALUES (@id, @class, @kind, @unknown_kind, @gateway, @area, @terminal, @address, @number, @code, @time_at, @time_estimated, @text, @relay, @cancels,
        @received_at, @received_at, @copies, @attempt, @gateway_stage, 'received', @acknowledge_due_at, @handle_due_at)`,
    ),
    copied: db.prepare<[number, number, string | null, string]>(
      'UPDATE cases SET copies = copies + 1, last_received_at = ?, attempt = max(attempt, ?), gateway_stage = coalesce(?, gateway_stage) WHERE id = ?',
    ),
    versions: db.prepare<[string], VersionRow>('SELECT n, gateway, body, first_at, last_at, copies FROM versions WHERE case_id = ? ORDER BY n'),
    insertVersion: db.prepare<[string, number, string, string, number, number, number]>('INSERT INTO versions (case_id, n, gateway, body, first_at, last_at, copies) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    versionCopied: db.prepare<[number, string, number]>('UPDATE versions SET copies = copies + 1, last_at = ? WHERE case_id = ? AND n = ?'),
    reopen: db.prepare<[number | null, number | null, string]>("UPDATE cases SET stage = 'received', resolved_at = NULL, acknowledge_due_at = ?, handle_due_at = ? WHERE id = ?"),
    setConflict: db.prepare<[string, string]>('UPDATE cases SET conflict = ? WHERE id = ?'),
    insertStage: db.prepare<[string, LedgerStage, number, string]>('INSERT INTO stages (case_id, stage, at, by) VALUES (?, ?, ?, ?)'),
    stages: db.prepare<[string], { stage: LedgerStage; at: number; by: string }>('SELECT stage, at, by FROM stages WHERE case_id = ? ORDER BY seq'),
    setStage: db.prepare<[LedgerStage, string]>('UPDATE cases SET stage = ? WHERE id = ?'),
    take: db.prepare<[string, number, string]>('UPDATE cases SET owner = ?, owner_since = ? WHERE id = ? AND owner IS NULL'),
    release: db.prepare<[string, string]>('UPDATE cases SET owner = NULL, owner_since = NULL WHERE id = ? AND owner = ?'),
    handOver: db.prepare<[string, number, string]>('UPDATE cases SET owner = ?, owner_since = ? WHERE id = ?'),
    acknowledged: db.prepare<[string, string]>('UPDATE cases SET acknowledged_by = ? WHERE id = ?'),
    dispatched: db.prepare<[string, number, string]>('UPDATE cases SET unit = ?, eta_min = ? WHERE id = ?'),
    resolved: db.prepare<[string, number, string]>('UPDATE cases SET disposition = ?, resolved_at = ? WHERE id = ?'),
    cancelledBy: db.prepare<[string], { id: string }>('SELECT id FROM cases WHERE cancels = ? ORDER BY received_at, id LIMIT 1'),
    lastEscalation: db.prepare<[string], { level: number; name: string }>('SELECT level, name FROM escalations WHERE case_id = ? ORDER BY seq DESC LIMIT 1'),
    insertEscalation: db.prepare<[string, number, string, number, string, string, number, number]>(
      'INSERT INTO escalations (case_id, level, name, at, by, reason, due_at, auto) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    escalations: db.prepare<[string], { level: number; name: string; at: number; by: string; reason: string; due_at: number; auto: number }>(
      'SELECT level, name, at, by, reason, due_at, auto FROM escalations WHERE case_id = ? ORDER BY seq',
    ),
    insertComment: db.prepare<[string, number, string, string]>('INSERT INTO comments (case_id, at, by, text) VALUES (?, ?, ?, ?)'),
    comments: db.prepare<[string], { at: number; by: string; text: string }>('SELECT at, by, text FROM comments WHERE case_id = ? ORDER BY seq'),
    lastFollowUp: db.prepare<[string], { n: number }>('SELECT max(n) AS n FROM follow_ups WHERE case_id = ? HAVING n IS NOT NULL'),
    openFollowUp: db.prepare<[string], { n: number }>('SELECT n FROM follow_ups WHERE case_id = ? AND outcome IS NULL ORDER BY due_at, n LIMIT 1'),
    insertFollowUp: db.prepare<[string, number, number, number, string, string | null]>('INSERT INTO follow_ups (case_id, n, due_at, set_at, set_by, note) VALUES (?, ?, ?, ?, ?, ?)'),
    doneFollowUp: db.prepare<[string, number, string, string, number]>('UPDATE follow_ups SET outcome = ?, done_at = ?, done_by = ? WHERE case_id = ? AND n = ?'),
    followUps: db.prepare<[string], { n: number; due_at: number; set_at: number; set_by: string; note: string | null; outcome: string | null; done_at: number | null; done_by: string | null }>(
      'SELECT n, due_at, set_at, set_by, note, outcome, done_at, done_by FROM follow_ups WHERE case_id = ? ORDER BY n',
    ),
    openIds: db.prepare<[], { id: string }>("SELECT id FROM cases WHERE stage != 'resolved' ORDER BY CASE class WHEN 'alarm' THEN 0 ELSE 1 END, received_at, id"),
    deadlineIds: db.prepare<[], { id: string }>("SELECT id FROM cases WHERE stage != 'resolved' UNION SELECT case_id AS id FROM follow_ups WHERE outcome IS NULL"),
    alerted: db.prepare<[string, string, number], { at: number }>('SELECT at FROM deadline_alerts WHERE case_id = ? AND deadline = ? AND due_at = ?'),
    noteAlert: db.prepare<[string, string, number, number, string]>('INSERT OR IGNORE INTO deadline_alerts (case_id, deadline, due_at, at, by) VALUES (?, ?, ?, ?, ?)'),
    receivedBetween: db.prepare<[number, number], { id: string }>('SELECT id FROM cases WHERE received_at >= ? AND received_at < ? ORDER BY received_at, id'),
    auditHead: db.prepare<[], { seq: number; hash: string }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1'),
    insertAudit: db.prepare<[number, number, string, string, string | null, string, string, string]>(
      'INSERT INTO audit (seq, at, actor, action, case_id, details, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    auditCopies: db.prepare<[], { seq: number; action: string; case_id: string; details: string }>(
      "SELECT seq, action, case_id, details FROM audit WHERE action IN ('record', 'conflict') ORDER BY seq",
    ),
    versionBody: db.prepare<[string, number], { body: string }>('SELECT body FROM versions WHERE case_id = ? AND n = ?'),
    auditAll: db.prepare<[], AuditDbRow>('SELECT * FROM audit ORDER BY seq'),
    auditAfter: db.prepare<[number, number], AuditDbRow>('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?'),
    auditOfCase: db.prepare<[string, number, number], AuditDbRow>('SELECT * FROM audit WHERE case_id = ? AND seq > ? ORDER BY seq LIMIT ?'),
  }
}

interface AuditDbRow {
  seq: number
  at: number
  actor: string
  action: string
  case_id: string | null
  details: string
  prev: string
  hash: string
}
