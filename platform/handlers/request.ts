import type { UplinkEvent } from '../../protocol/mqtt.js'
import { followCopy } from '../answers.js'
import { CONFLICT_WARNING } from '../cases.js'
import { eventFields, times } from '../events.js'
import type { HandlerContext, Handling } from './context.js'

/** A copy of a request: a case too [CONSOLE-3], but not an emergency: an `event` line, its own list. */
export function request(ctx: HandlerContext, e: UplinkEvent, batch: string | null, unknownKind: boolean, h: Handling): void {
  const { a, duplicate, conflict } = ctx.cases.copy(e, 'request', h.gateway, h.receivedAt, unknownKind)
  if (conflict !== null) ctx.answers.stopTimers(a)
  ctx.emit({
    ...times(e.time, h.receivedAt),
    ...eventFields(e, h.gateway, batch, unknownKind),
    stage: a.stage,
    copies: a.copies,
    ...(duplicate ? { duplicate: true as const } : {}),
    ...(conflict === null ? {} : { idConflict: { differs: conflict, versions: a.conflict?.versions.length ?? 2, warning: CONFLICT_WARNING } }),
  })
  followCopy(h.followup, a, duplicate, ctx.ack)
}
