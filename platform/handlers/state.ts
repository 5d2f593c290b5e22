import { gatewayTopics } from '../../protocol/mqtt.js'
import { times } from '../events.js'
import type { UplinkMessage } from '../uplink.js'
import type { HandlerContext, Handling } from './context.js'

/**
 * `state`: births and deaths, the gateway's liveness.
 *
 * - [CONSOLE-5] Gateways are online from a birth until a death of the same or a later
 *   session; a death of an older session is stale and ignored [MQTT-2.3]. Every birth is
 *   answered with a `time` command naming the birth's session [MQTT-4.13].
 */
export function onState(ctx: HandlerContext, m: Extract<UplinkMessage, { topic: 'state' }>, h: Handling): void {
  const b = m.state
  const known = ctx.state.gateway(h.gateway)
  const g = ctx.state.touchGateway(h.gateway, h.receivedAt)
  let stale = false
  if (b.type === 'birth') {
    if (!g.online || known === undefined) g.since = h.receivedAt
    g.online = true
    g.session = b.session
    g.area = b.area ?? null
    g.version = b.version ?? null
    g.encoding = b.encoding ?? null
  } else {
    stale = g.session !== null && b.session < g.session
    if (!stale) {
      if (g.online || known === undefined) g.since = h.receivedAt
      g.online = false
    }
  }
  ctx.emit({
    ...times(b.time ?? null, h.receivedAt),
    type: 'state',
    id: null,
    gateway: h.gateway,
    terminal: null,
    code: null,
    kind: b.type,
    session: b.session,
    online: g.online,
    ...(stale ? { stale: true as const } : {}),
  })
  // [MQTT-4.13] The gateway's clock from ours, right after its birth, never to one offline.
  // It names the session it answers: a time the broker queued while the gateway was away
  // reaches a later session, which refuses it (CMD_STALE) instead of taking a stale clock.
  if (b.type === 'birth' && ctx.sendTime) {
    ctx.send(gatewayTopics(ctx.prefix, h.gateway).command, h.gateway, { type: 'time', now: ctx.now(), session: b.session }, null).catch(() => {})
  }
}
