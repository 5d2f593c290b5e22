import { times } from '../events.js'
import { isMap, type UplinkMessage } from '../uplink.js'
import type { HandlerContext, Handling } from './context.js'

/** `status`: the gateway's status [MQTT-3.7], kept as published; its terminals, lost or not, fill the overview. */
export function onStatus(ctx: HandlerContext, m: Extract<UplinkMessage, { topic: 'status' }>, h: Handling): void {
  const value = m.status
  const g = ctx.state.touchGateway(h.gateway, h.receivedAt)
  g.status = value
  // Beyond the five fixed fields nothing is promised [MQTT-3.7]: read what fits, skip the rest.
  if (Array.isArray(value.terminals)) {
    for (const t of value.terminals) {
      if (!isMap(t) || typeof t.terminal !== 'string') continue
      const address = typeof t.address === 'number' && Number.isInteger(t.address) ? t.address : null
      const known = ctx.state.terminal(t.terminal)
      const view = ctx.state.touchTerminal(t.terminal, h.gateway, address, known?.lastKind ?? 'gateway-status', h.receivedAt)
      if (view !== null && typeof t.lost === 'boolean') view.lost = t.lost
    }
  }
  ctx.emit({
    ...times(value.time, h.receivedAt),
    type: 'status',
    scope: 'gateway',
    id: null,
    gateway: h.gateway,
    terminal: null,
    code: null,
    kind: 'gateway-status',
    batch: null,
    session: value.session,
  })
}
