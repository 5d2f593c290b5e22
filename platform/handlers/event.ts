import type { UplinkEvent } from '../../protocol/mqtt.js'
import { eventFields, times } from '../events.js'
import type { Item, UplinkMessage } from '../uplink.js'
import { alarm } from './alert.js'
import type { HandlerContext, Handling } from './context.js'
import { request } from './request.js'
import { terminalStatus } from './terminal-status.js'

/** `event`: one item of a lower class (or an alarm that came there). */
export function onEvent(ctx: HandlerContext, m: Extract<UplinkMessage, { topic: 'event' }>, h: Handling): void {
  item(ctx, m.item, null, h)
}

/** One item, alone on `event` or from `batch`: alarms are handled as alerts wherever they come, requests as cases. */
export function item(ctx: HandlerContext, it: Item, batch: string | null, h: Handling): void {
  if (it.kind === 'terminal-status') return terminalStatus(ctx, it.status, batch, h)
  const e = it.event
  if (e.class === 'alarm') return alarm(ctx, e, it.unknownKind, h)
  if (e.class === 'request') return request(ctx, e, batch, it.unknownKind, h)
  other(ctx, e, batch, it.unknownKind, h)
}

/** Trouble and status events: deduplicated by id [CONSOLE-4], into the overview and the trouble list; broadcast reads. */
function other(ctx: HandlerContext, e: UplinkEvent, batch: string | null, unknownKind: boolean, h: Handling): void {
  const { state } = ctx
  const duplicate = state.seen(e.id)
  state.touchGateway(h.gateway, h.receivedAt)
  if (!duplicate) {
    const t = state.touchTerminal(e.terminal, h.gateway, e.address, e.kind, h.receivedAt)
    if (t !== null) {
      if (e.kind === 'terminal-lost') t.lost = true
      if (e.kind === 'terminal-restored') t.lost = false
      if (e.kind === 'mains-lost') t.mains = false
      if (e.kind === 'mains-restored') t.mains = true
    }
    if (e.class === 'trouble') {
      state.addTrouble({
        id: e.id,
        gateway: h.gateway,
        terminal: e.terminal,
        kind: e.kind,
        code: e.code,
        restore: e.restore,
        time: e.time,
        receivedAt: h.receivedAt,
        reset: e.reset ?? null,
        conflict: e.conflict ?? null,
      })
    }
  }
  // Reads are kept by id too, beyond the window of `seen`: each id is one terminal reading one text.
  if (e.kind === 'broadcast-read' && e.broadcast !== undefined) {
    const b = state.broadcast(e.broadcast, false)
    if (e.by === 'household') {
      // The center household read it on the gateway's page: not a terminal. [MQTT-3.12]
      b.householdReads.add(h.gateway)
      b.lastReadAt = h.receivedAt
    } else if (!b.reads.has(e.id)) {
      b.reads.set(e.id, { gateway: h.gateway, terminal: e.terminal ?? e.id, revision: e.revision ?? null })
      b.lastReadAt = h.receivedAt
    }
  }
  // Who got each broadcast, and to how many households it was passed on: the latest count
  // of each gateway, by its time, replaces the one before. [MQTT-3.12] [MQTT-4.16]
  if (e.kind === 'broadcast-received' && e.broadcast !== undefined) {
    const b = state.broadcast(e.broadcast, false)
    b.got.set(h.gateway, Math.max(b.got.get(h.gateway) ?? 0, e.revision ?? 0))
  }
  if (e.kind === 'broadcast-passed-on' && e.broadcast !== undefined && e.households !== undefined) {
    const b = state.broadcast(e.broadcast, false)
    const before = b.passedOn.get(h.gateway)
    if (before === undefined || e.received >= before.at) b.passedOn.set(h.gateway, { households: e.households, at: e.received })
  }
  ctx.emit({
    ...times(e.time, h.receivedAt),
    ...eventFields(e, h.gateway, batch, unknownKind),
    ...(duplicate ? { duplicate: true as const } : {}),
  })
}
