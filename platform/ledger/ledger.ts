/**
 * The case ledger of the 110 centre: the interface the console, the timer and the web desk
 * use, and the shapes it answers with. SqliteLedger (sqlite-ledger.ts) is the embedded
 * default; another store (a server database shared by several desks) can stand behind the
 * same interface, which is why every method returns a promise.
 *
 * Rules every implementation keeps:
 * - Time is always passed in (`at`, `now`, UNIX ms): the ledger never reads a clock, so a
 *   timer, a test and a replay all see the same answers.
 * - record() resolves only once the copy is stored durably: the receipt goes out after it
 *   ([MQTT-4.1]), so a desk restart never loses a case the gateway was told is received.
 * - Every change is one transaction with its audit row; a refusal changes nothing.
 * - Stages move forward only (protocol/lifecycle.ts isForward); the one way back is a
 *   conflict [CONSOLE-10], which the ledger itself makes and audits.
 */

import type { UplinkEvent } from '../../protocol/mqtt.js'
import type { CaseClass } from '../cases.js'
import type { CopyVersion, RelayView } from '../view.js'
import type { Contact, LedgerSettings, LedgerSettingsPatch } from './settings.js'

/** A case's stages in the ledger, in order: `received` is stored durably (the receipt may go out). */
export const LEDGER_STAGES = ['received', 'acknowledged', 'dispatched', 'resolved'] as const
export type LedgerStage = (typeof LEDGER_STAGES)[number]

/** The deadlines a case can miss. `escalation`: the current level's; `follow-up`: a follow-up call after closing. */
export type DeadlineKind = 'acknowledge' | 'handle' | 'escalation' | 'follow-up'
export type DeadlineState = 'ok' | 'near' | 'passed'

/** Who did something: an operator's name (1-100 characters, as `by` of an acknowledgement), or the timer's. */
export type Actor = string

export interface RecordOptions {
  /** The gateway from the topic (`<prefix>/gw/<gateway>/...`); default the copy's `gateway`. */
  gateway?: string
  /** Alarm or request; default the copy's class. An `alert` topic's copy is an alarm whatever its class says [MQTT-4.9]. */
  class?: CaseClass
  /** The gateway's area; default the ledger's gatewayArea(gateway) lookup. Stored with the case on its first copy. */
  area?: string | null
  /** The kind is not one this version knows (uplink.ts says so): kept, shown, given its class's deadlines. */
  unknownKind?: boolean
}

/** What one copy did. */
export interface Recorded {
  /** `new`: the first copy of this id; `republication`: the same item again [MQTT-4.15]; `conflict`: another item under a known id [CONSOLE-10]. */
  outcome: 'new' | 'republication' | 'conflict'
  case: LedgerCase
  /** For a conflict: the fields in which this copy differs from the first version. */
  differs: string[] | null
}

/** A version of a case's copy: the same shape as the console's (platform/view.ts). */
export type { CopyVersion }

export interface StageEntry {
  stage: LedgerStage
  at: number
  by: Actor
}

export interface Escalation {
  /** Index in the levels at the time, and the level's name. */
  level: number
  name: string
  at: number
  by: Actor
  reason: string
  /** The level must resolve it by then. */
  dueAt: number
  /** Made on a passed deadline (the caller acted on overdue()'s `escalateTo`). */
  auto: boolean
}

export interface Comment {
  at: number
  by: Actor
  text: string
}

export interface FollowUp {
  /** 1, 2 ... per case. */
  n: number
  dueAt: number
  setAt: number
  setBy: Actor
  note: string | null
  outcome: string | null
  doneAt: number | null
  doneBy: Actor | null
}

/** A case as the ledger holds it. */
export interface LedgerCase {
  id: string
  class: CaseClass
  kind: string
  unknownKind: boolean
  gateway: string
  area: string | null
  terminal: string | null
  address: number | null
  number: number | null
  /** Contact ID event code. */
  code: number | null
  /** When it happened, as the gateway says; `estimated` when the gateway's clock was never set. */
  time: { at: number; estimated: boolean }
  text: string | null
  relay: RelayView | null
  /** A cancel: the alarm it cancels; an alarm: the cancel that names it. Shown, never acted on. */
  cancels: string | null
  cancelledBy: string | null
  /** Local ms of the first and latest copy, and how many copies came. */
  receivedAt: number
  lastReceivedAt: number
  copies: number
  attempt: number
  gatewayStage: string | null
  stage: LedgerStage
  history: StageEntry[]
  owner: { name: Actor; since: number } | null
  acknowledgedBy: Actor | null
  unit: string | null
  etaMin: number | null
  disposition: string | null
  resolvedAt: number | null
  /** The deadlines it was given when recorded (or reopened), from the settings of the time. */
  acknowledgeDueAt: number | null
  handleDueAt: number | null
  /** The latest escalation, or null; all of them in `escalations`. */
  level: Escalation | null
  escalations: Escalation[]
  comments: Comment[]
  followUps: FollowUp[]
  /** [CONSOLE-10] Another item came under this id: every version kept (at most MAX_VERSIONS). */
  conflict: { warning: string; differs: string[]; since: number; versions: CopyVersion[] } | null
}

/** One deadline of a case, at a moment. */
export interface DeadlineView {
  kind: DeadlineKind
  dueAt: number
  /** From when it counts (received, escalated, follow-up set): `near` is a share of the span. */
  since: number
  state: DeadlineState
  /** For `escalation`: the level's name. */
  level?: string
}

/** An open case in the desk's order, with its most urgent deadline at `now` (null: none). */
export interface QueueEntry {
  case: LedgerCase
  deadline: DeadlineView | null
  /** now - receivedAt. */
  ageMs: number
}

/** A deadline passed, for the timer: raise the supervisor alert, and escalate if `escalateTo` says so. */
export interface Overdue {
  id: string
  class: CaseClass
  kind: string
  area: string | null
  deadline: DeadlineKind
  dueAt: number
  lateMs: number
  /** For `escalation`: the level whose deadline passed. */
  level?: string
  /** autoEscalate on and a level above: the level to escalate to (call escalate with `auto: true`); else null. */
  escalateTo: string | null
  /** The supervisor alert for this deadline was noted (noteAlerted) already: do not raise it again. */
  alerted: boolean
}

export interface EscalateOptions {
  by: Actor
  at: number
  /** Why, in words (the audit trail and the case page show it): 1-500 characters. */
  reason: string
  /** A level name above the current one; default the next. */
  to?: string
  /** Made on a passed deadline. */
  auto?: boolean
}

/** What an escalation tells the caller: the level, who to call, and what the person at the button should see. */
export interface EscalationNotice {
  case: LedgerCase
  level: { index: number; name: string; deadlineS: number; contacts: Contact[] }
  /** For the herder ([MQTT-4.7] text, at most 120 bytes): "escalated to the township". */
  text: string
  /** The new expectation: the level resolves by then; in minutes as a dispatch's `eta` (0-65535). */
  dueAt: number
  etaMin: number
}

export interface Percentiles {
  /** How many cases the figure is over. */
  count: number
  /** Nearest-rank percentiles, ms; null when count is 0. */
  p50: number | null
  p95: number | null
}

/** Figures over the cases first received in [from, to), each as of `to`. */
export interface Figures {
  from: number
  to: number
  opened: number
  closed: number
  /** closed / opened; null when nothing was opened. */
  closureRate: number | null
  byClass: Record<CaseClass, Record<LedgerStage, number>>
  /** From the first copy to the first stage at acknowledged or further. */
  timeToAcknowledge: Percentiles
  /** From the first copy to `dispatched`. */
  timeToDispatch: Percentiles
  /** Open at `to` with a deadline passed. */
  overdue: number
  /** Escalated at least once by `to`. */
  escalated: number
}

export interface FiguresQuery {
  from: number
  to: number
  /** Only the cases of this area (null: those without one). */
  area?: string | null
  /** Also per period of this length, from `from`. */
  periodMs?: number
}

export interface FiguresReport {
  total: Figures
  /** Per area (null: cases whose gateway had none), sorted by name, none last. */
  areas: { area: string | null; figures: Figures }[]
  /** With periodMs: one per period, in order. */
  periods: Figures[]
}

export type AuditAction =
  | 'record'
  | 'conflict'
  | 'take'
  | 'release'
  | 'hand-over'
  | 'acknowledge'
  | 'dispatch'
  | 'resolve'
  | 'escalate'
  | 'comment'
  | 'follow-up'
  | 'follow-up-outcome'
  | 'deadline-alert'
  | 'settings'

export interface AuditRow {
  seq: number
  at: number
  actor: Actor
  action: AuditAction
  caseId: string | null
  details: Record<string, unknown>
  prev: string
  hash: string
}

export type AuditCheck = { ok: true; rows: number; head: string } | { ok: false; rows: number; seq: number; reason: string }

export interface FindQuery {
  terminal?: string
  gateway?: string
  area?: string
  /** First received in [from, to). */
  from?: number
  to?: number
  /** Default 100, at most 10 000; newest first. */
  limit?: number
}

/** The durable case ledger. Every method rejects with a LedgerError on bad input, never with a half-made change. */
export interface CaseLedger {
  /** Stores a copy of an alarm or request durably; resolve before the receipt goes out [MQTT-4.1]. */
  record(copy: UplinkEvent, at: number, opts?: RecordOptions): Promise<Recorded>
  get(id: string): Promise<LedgerCase>
  /** Makes `operator` the owner; rejects LEDGER_TAKEN (with `owner`) when another has it. Taking one's own case again changes nothing. */
  take(id: string, operator: Actor, at: number): Promise<LedgerCase>
  /** The owner gives the case back to the queue. */
  release(id: string, operator: Actor, at: number): Promise<LedgerCase>
  /** A supervisor (the caller checks the role) gives the case to `to`, whoever has it. */
  handOver(id: string, o: { to: Actor; by: Actor; at: number; reason: string }): Promise<LedgerCase>
  acknowledge(id: string, o: { by: Actor; at: number; text?: string }): Promise<LedgerCase>
  dispatch(id: string, o: { by: Actor; at: number; unit: string; etaMin: number }): Promise<LedgerCase>
  resolve(id: string, o: { by: Actor; at: number; disposition: string }): Promise<LedgerCase>
  escalate(id: string, o: EscalateOptions): Promise<EscalationNotice>
  comment(id: string, o: { by: Actor; at: number; text: string }): Promise<LedgerCase>
  /** A follow-up call after closing, due at `dueAt`. */
  scheduleFollowUp(id: string, o: { by: Actor; at: number; dueAt: number; note?: string }): Promise<LedgerCase>
  /** The outcome of the earliest follow-up still open. */
  recordFollowUp(id: string, o: { by: Actor; at: number; outcome: string }): Promise<LedgerCase>
  /** Open cases in the desk's order: alarms before requests, then oldest first; each with its deadline at `now`. */
  queue(now: number): Promise<QueueEntry[]>
  /** Every deadline passed at `now` on an open case (and follow-ups due), most late first. */
  overdue(now: number): Promise<Overdue[]>
  /** The supervisor alert for this passed deadline was raised: overdue() marks it `alerted` from now on. */
  noteAlerted(id: string, o: { deadline: DeadlineKind; dueAt: number; by: Actor; at: number }): Promise<void>
  /** The earliest deadline after `now` that is not met yet: when a timer should wake; null if none. */
  nextDeadline(now: number): Promise<{ at: number; id: string; deadline: DeadlineKind } | null>
  figures(q: FiguresQuery): Promise<FiguresReport>
  /** Cases by terminal, gateway, area or time, newest first: a household's history. */
  find(q: FindQuery): Promise<LedgerCase[]>
  settings(): Promise<LedgerSettings>
  /** Changes the settings (audited); deadlines already given to cases stay. */
  updateSettings(patch: LedgerSettingsPatch, by: Actor, at: number): Promise<LedgerSettings>
  /** The audit trail, oldest first; of one case, or after a sequence number. */
  audit(q?: { caseId?: string; afterSeq?: number; limit?: number }): Promise<AuditRow[]>
  /** Recomputes the hash chain, and each stored copy against its record row: ok with the head hash, or the first row that does not match. */
  verifyAudit(): Promise<AuditCheck>
  close(): Promise<void>
}

export type { LedgerSettings, LedgerSettingsPatch }
