/**
 * Deadlines and figures, computed from what a case holds: pure functions of a LedgerCase
 * and a moment, so the queue, the timer (overdue, nextDeadline) and the figures of a past
 * period all count a deadline the same way, and tests can ask them without a file.
 *
 * Which deadlines a case has at a moment:
 * - open and never escalated: `acknowledge` until it is acknowledged (or taken further),
 *   and `handle` until it is resolved, each if its class or kind has one;
 * - open and escalated: only the current level's `escalation` deadline (until resolved):
 *   the escalation is the new expectation, and what was missed before it is in its reason;
 *   this is also why an automatic escalation does not fire again for the same miss;
 * - any case: each follow-up without an outcome.
 */

import { PROGRESS_RANK } from '../../protocol/lifecycle.js'
import type { CaseClass } from '../cases.js'
import { LEDGER_STAGES, type DeadlineView, type Figures, type LedgerCase, type LedgerStage, type Percentiles } from './ledger.js'

const atLeast = (stage: LedgerStage, target: LedgerStage) => PROGRESS_RANK[stage] >= PROGRESS_RANK[target]

/** The case as it stood at `t`: its stages, escalations and follow-ups up to and including `t`. */
export function asOf(c: LedgerCase, t: number): LedgerCase {
  const history = c.history.filter((h) => h.at <= t)
  const escalations = c.escalations.filter((e) => e.at <= t)
  const last = history[history.length - 1]
  return {
    ...c,
    history,
    stage: last?.stage ?? 'received',
    escalations,
    level: escalations[escalations.length - 1] ?? null,
    followUps: c.followUps.filter((f) => f.setAt <= t).map((f) => (f.doneAt !== null && f.doneAt > t ? { ...f, outcome: null, doneAt: null, doneBy: null } : f)),
  }
}

/** The deadlines not met yet of `c` at `now`, with their state; `nearShare` as the settings say. */
export function openDeadlines(c: LedgerCase, now: number, nearShare: number): DeadlineView[] {
  const out: DeadlineView[] = []
  const state = (dueAt: number, since: number) => (now >= dueAt ? 'passed' : dueAt - now <= nearShare * (dueAt - since) ? 'near' : 'ok')
  const add = (kind: DeadlineView['kind'], dueAt: number, since: number, level?: string) => out.push({ kind, dueAt, since, state: state(dueAt, since), ...(level === undefined ? {} : { level }) })
  if (c.stage !== 'resolved') {
    if (c.level !== null) add('escalation', c.level.dueAt, c.level.at, c.level.name)
    else {
      // Counted from the latest `received`: the first copy, or the conflict that reopened it.
      const since = [...c.history].reverse().find((h) => h.stage === 'received')?.at ?? c.receivedAt
      if (c.acknowledgeDueAt !== null && !atLeast(c.stage, 'acknowledged')) add('acknowledge', c.acknowledgeDueAt, since)
      if (c.handleDueAt !== null) add('handle', c.handleDueAt, since)
    }
  }
  for (const f of c.followUps) if (f.outcome === null) add('follow-up', f.dueAt, f.setAt)
  return out
}

/** The most urgent (earliest) of them, or null. */
export function mostUrgent(ds: DeadlineView[]): DeadlineView | null {
  let best: DeadlineView | null = null
  for (const d of ds) if (best === null || d.dueAt < best.dueAt) best = d
  return best
}

/**
 * Nearest-rank percentile: the smallest value with at least p% of the values at or below it
 * (sorted[ceil(p/100 * n) - 1]). Always one of the values, never an interpolation: "95% of
 * alarms were acknowledged within 2 min 10 s" is then a time one alarm really took.
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

function percentiles(values: number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b)
  return { count: s.length, p50: percentile(s, 50), p95: percentile(s, 95) }
}

const emptyStages = (): Record<LedgerStage, number> => Object.fromEntries(LEDGER_STAGES.map((s) => [s, 0])) as Record<LedgerStage, number>

/**
 * The figures of the cases first received in [from, to), each as it stood at `to`: a period
 * already past gives the same figures whenever it is asked.
 */
export function computeFigures(cases: readonly LedgerCase[], from: number, to: number, nearShare: number): Figures {
  const byClass: Record<CaseClass, Record<LedgerStage, number>> = { alarm: emptyStages(), request: emptyStages() }
  const ack: number[] = []
  const dispatch: number[] = []
  let opened = 0
  let closed = 0
  let overdue = 0
  let escalated = 0
  for (const whole of cases) {
    if (whole.receivedAt < from || whole.receivedAt >= to) continue
    const c = asOf(whole, to)
    opened++
    byClass[c.class][c.stage]++
    if (c.stage === 'resolved') closed++
    const acked = c.history.find((h) => atLeast(h.stage, 'acknowledged'))
    if (acked !== undefined) ack.push(acked.at - c.receivedAt)
    const sent = c.history.find((h) => h.stage === 'dispatched')
    if (sent !== undefined) dispatch.push(sent.at - c.receivedAt)
    if (openDeadlines(c, to, nearShare).some((d) => d.state === 'passed')) overdue++
    if (c.escalations.length > 0) escalated++
  }
  return {
    from,
    to,
    opened,
    closed,
    closureRate: opened === 0 ? null : closed / opened,
    byClass,
    timeToAcknowledge: percentiles(ack),
    timeToDispatch: percentiles(dispatch),
    overdue,
    escalated,
  }
}
