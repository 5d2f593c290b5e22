import type { UplinkMessage } from '../uplink.js'
import type { HandlerContext, Handling } from './context.js'
import { item } from './event.js'

/** `batch`: its items in order, each as if alone on `event`; a bad item is reported where it stands and the others go on [MQTT-4.2]. */
export function onBatch(ctx: HandlerContext, m: Extract<UplinkMessage, { topic: 'batch' }>, h: Handling): void {
  for (const it of m.items) {
    if (it.ok) item(ctx, it.item, m.id, h)
    else ctx.error('CONSOLE_BAD_SCHEMA', it.message, h.topic, h.gateway, h.receivedAt)
  }
}
