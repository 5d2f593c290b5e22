import type { TerminalStatus } from '../../protocol/mqtt.js'
import { times } from '../events.js'
import type { HandlerContext, Handling } from './context.js'

/** A terminal's status [MQTT-3.4], on `event` or in a batch: its power and battery in the overview. */
export function terminalStatus(ctx: HandlerContext, s: TerminalStatus, batch: string | null, h: Handling): void {
  const duplicate = ctx.state.seen(s.id)
  ctx.state.touchGateway(h.gateway, h.receivedAt)
  if (!duplicate) {
    const t = ctx.state.touchTerminal(s.terminal, h.gateway, s.address, 'status', h.receivedAt)
    if (t !== null) {
      t.mains = s.latest.mains
      t.battery = s.latest.battery ?? t.battery
    }
  }
  ctx.emit({
    ...times(s.time, h.receivedAt),
    type: 'status',
    scope: 'terminal',
    id: s.id,
    gateway: h.gateway,
    terminal: s.terminal,
    code: null,
    kind: 'status',
    batch,
    latest: s.latest,
    ...(duplicate ? { duplicate: true as const } : {}),
  })
}
