/**
 * The alert lifecycle: how far an alarm (or a call-back request, or a relay) has got, as
 * the gateway keeps it, the terminal shows it and the platform answers it. The one table
 * every part asks: the gateway's store, the terminal and its simulator, the operator
 * console, the demo, the fault suite, the soak run and the benchmarks. PROTOCOL.md
 * [LINK-5.7] and MQTT.md [MQTT-4.7] are its prose.
 *
 * Theory of operation
 * - Six stages in the order of progress (PROGRESS), all set by the gateway: `stored` (on
 *   its disk, the terminal ACKed), `sent` (the broker has it), `received` (the platform's
 *   receipt), `acknowledged` (an operator took it), `dispatched` (help is on the way),
 *   `resolved` (the case is closed).
 * - A seventh beside them, `unconfirmed`: no receipt in time (or the gateway could not
 *   store the alarm): "call 110 by phone". It is not progress; the next real stage
 *   replaces it.
 * - Before its first INDICATE a terminal knows only its own side: `saved` (in its memory)
 *   and `delivered` (the gateway's ACK, the same moment as `stored`). These never travel.
 *
 * Invariants
 * 1. A stage only moves forward in PROGRESS; any may be skipped (`dispatched` straight
 *    after `received`).
 * 2. `unconfirmed` is entered only from `stored` or `sent`, and left only for `received`
 *    or a later stage.
 * 3. `received` and every later stage end an alarm's republication: the platform has it.
 * 4. A request is never `unconfirmed` (it is not republished until a receipt); the
 *    gateway does not move one there.
 */

import type { Stage } from './messages.js'

/** The stages in the order of progress. [LINK-5.7] [MQTT-4.7] */
export const PROGRESS = ['stored', 'sent', 'received', 'acknowledged', 'dispatched', 'resolved'] as const satisfies readonly Stage[]
export type ProgressStage = (typeof PROGRESS)[number]

/** What a terminal knows before the gateway tells it a stage; never on the wire. [LINK-5.7] */
export type LocalState = 'saved' | 'delivered'
/** What a terminal shows for one alert: a stage, or one of its local states. */
export type ShownStage = Stage | LocalState

/**
 * How far each thing a terminal can show has got: `delivered` is the moment of `stored`;
 * `unconfirmed` is not progress at all (it waits for one).
 */
export const PROGRESS_RANK: Readonly<Record<ShownStage, number>> = {
  saved: 0,
  delivered: 1,
  stored: 1,
  sent: 2,
  received: 3,
  acknowledged: 4,
  dispatched: 5,
  resolved: 6,
  unconfirmed: -1,
}

/** Whether an alert at `from` may move to `to` (invariants 1 and 2). */
export function isForward(from: Stage, to: Stage): boolean {
  if (to === 'unconfirmed') return from === 'stored' || from === 'sent'
  if (from === 'unconfirmed') return PROGRESS_RANK[to] >= PROGRESS_RANK.received
  return PROGRESS_RANK[to] > PROGRESS_RANK[from]
}

/** Whether `stage` tells that the platform has the alarm, so it is not published again (invariant 3). */
export function endsRepublication(stage: Stage): boolean {
  return PROGRESS_RANK[stage] >= PROGRESS_RANK.received
}

/** Whether a terminal showing `shown` shows `target` or a later stage (`unconfirmed` reaches nothing). */
export function reached(shown: ShownStage | undefined, target: ShownStage): boolean {
  return shown !== undefined && shown !== 'unconfirmed' && PROGRESS_RANK[shown] >= PROGRESS_RANK[target]
}
