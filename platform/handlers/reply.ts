import { times } from '../events.js'
import type { UplinkMessage } from '../uplink.js'
import type { HandlerContext, Handling } from './context.js'

/** `reply`: a command a gateway rejected, with its code [MQTT-3.8]. */
export function onReply(ctx: HandlerContext, m: Extract<UplinkMessage, { topic: 'reply' }>, h: Handling): void {
  const r = m.reply
  ctx.state.touchGateway(h.gateway, h.receivedAt)
  ctx.emit({
    ...times(r.time, h.receivedAt),
    type: 'reply',
    id: r.command,
    gateway: h.gateway,
    terminal: null,
    code: r.code,
    kind: r.type,
    command: r.command,
    message: r.message,
    topic: r.topic,
    suppressed: r.suppressed ?? 0,
  })
}
