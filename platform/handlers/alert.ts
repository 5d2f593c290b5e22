import type { UplinkEvent } from '../../protocol/mqtt.js'
import { followCopy } from '../answers.js'
import { CONFLICT_WARNING } from '../cases.js'
import { times } from '../events.js'
import type { UplinkMessage } from '../uplink.js'
import type { HandlerContext, Handling } from './context.js'

/** `alert`: one alarm-class item. Whatever its class says, it is an alarm [MQTT-4.9]. */
export function onAlert(ctx: HandlerContext, m: Extract<UplinkMessage, { topic: 'alert' }>, h: Handling): void {
  alarm(ctx, m.event, m.unknownKind, h)
}

/** A copy of an alarm, wherever it came: a case, and a receipt for it [CONSOLE-3]. */
export function alarm(ctx: HandlerContext, e: UplinkEvent, unknownKind: boolean, h: Handling): void {
  const { a, duplicate, conflict } = ctx.cases.copy(e, 'alarm', h.gateway, h.receivedAt, unknownKind)
  // [CONSOLE-10] Nothing follows an earlier acknowledgement by itself once another version came.
  if (conflict !== null) ctx.answers.stopTimers(a)
  ctx.emit({
    ...times(e.time, h.receivedAt),
    type: 'alert',
    id: e.id,
    gateway: h.gateway,
    terminal: e.terminal,
    code: e.code,
    kind: e.kind,
    class: e.class,
    address: e.address,
    number: e.number,
    attempt: e.attempt,
    gatewayStage: e.stage ?? null,
    stage: a.stage,
    copies: a.copies,
    ...(duplicate ? { duplicate: true as const } : {}),
    ...(conflict === null ? {} : { idConflict: { differs: conflict, versions: a.conflict?.versions.length ?? 2, warning: CONFLICT_WARNING } }),
    ...(e.text === undefined ? {} : { text: e.text }),
    ...(e.cancels === undefined ? {} : { cancels: e.cancels }),
    ...(e.claims === undefined ? {} : { claims: e.claims }),
    ...(a.relay === null ? {} : { relay: { ...a.relay } }),
    ...(unknownKind ? { unknownKind: true as const } : {}),
  })
  followCopy(h.followup, a, duplicate, ctx.ack)
}
