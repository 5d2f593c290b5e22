/**
 * Events the gateway makes itself, for the platform: a terminal lost or heard again, a
 * terminal's numbers restarted, a broadcast read. Stored like a terminal's event, so they
 * wait in the backlog when the uplink is down; none of them is an alarm, so a failing or
 * full disk drops them with a log line rather than stopping the caller.
 */

import { CLASS_OF, GATEWAY_KINDS, MQTT_CONTRACT_VERSION, type GatewayKind } from '../protocol/mqtt.js'
import type { GatewayClock } from './clock.js'
import type { GatewayIo, GatewaySettings, Log } from './gateway.js'
import type { KnownTerminal } from './known-terminals.js'
import type { Store } from './store.js'

export interface GatewayEventsDeps {
  settings: Pick<GatewaySettings, 'gateway'>
  store: Store
  clock: GatewayClock
  io: Pick<GatewayIo, 'now'>
  log: Log
  /** Called after an event was stored (issue 13: the household page is told). */
  stored?: () => void
}

export class GatewayEvents {
  constructor(private readonly d: GatewayEventsDeps) {}

  /**
   * `fixedId`: an id made of what the event is about, so that the platform can recognise a
   * repeat. Default: the next `gateway:gN`. Returns whether it was stored (or was already).
   */
  record(kind: GatewayKind, t: KnownTerminal | null, text?: string, extra: Record<string, unknown> = {}, fixedId?: string): boolean {
    const { settings, store, clock, io, log } = this.d
    let id: string
    try {
      id = fixedId ?? `${settings.gateway}:g${store.bump('gateway-event')}`
    } catch (err) {
      log.error({ err, kind, terminal: t?.terminal }, 'could not store a gateway event')
      return false
    }
    const cls = CLASS_OF[kind]
    const body = {
      v: MQTT_CONTRACT_VERSION,
      id,
      class: cls,
      kind,
      code: GATEWAY_KINDS[kind].code,
      restore: GATEWAY_KINDS[kind].restore,
      gateway: settings.gateway,
      terminal: t?.terminal ?? null,
      address: t?.address ?? null,
      number: null,
      ...(text !== undefined ? { text } : {}),
      ...extra,
    }
    let stored = false
    try {
      const r = store.addEvent({ id, terminal: null, address: t?.address ?? null, number: null, cls, body, receivedAt: io.now(), boot: clock.boot, offset: clock.offset })
      if (r.kind === 'refused') log.warn({ id, kind }, 'disk nearly full: gateway event dropped and counted')
      else stored = true
    } catch (err) {
      log.error({ err, id, kind }, 'could not store a gateway event')
    }
    log.info({ id, kind, terminal: t?.terminal }, `gateway event: ${kind}`)
    if (stored) this.d.stored?.()
    return stored
  }
}
