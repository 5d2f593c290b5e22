/**
 * `config`: the platform changes the gateway's timing while it runs, and the change
 * outlives a restart (the store's meta `settings`). [MQTT-5.9]
 */

import { timingProblem } from '../config.js'
import type { GatewaySettings } from '../gateway.js'
import type { Store } from '../store.js'
import type { CommandContext, CommandOf } from './context.js'

export function configure(c: CommandOf<'config'>, { settings, store, link, known, log, refuse }: CommandContext): void {
  // The same rule as the configuration file: one lost HEARTBEAT must not raise "terminal lost".
  const heartbeatS = c.heartbeat ?? settings.heartbeatS
  const supervisionS = c.supervision ?? settings.supervisionMs / 1000
  const problem = timingProblem(supervisionS, heartbeatS)
  if (problem !== null) return refuse('CMD_BAD_VALUE', `config: supervision ${problem}; nothing changed`)
  if (c.heartbeat !== undefined) settings.heartbeatS = c.heartbeat
  if (c.supervision !== undefined) settings.supervisionMs = c.supervision * 1000
  if (c.receiptTimeout !== undefined) settings.receiptTimeoutMs = c.receiptTimeout * 1000
  if (c.statusInterval !== undefined) settings.statusIntervalMs = c.statusInterval * 1000
  saveSettings(store, settings)
  if (c.heartbeat !== undefined) for (const t of known.values()) link.send(t.address, { type: 'CONFIG', heartbeat: c.heartbeat }, { coalesce: 'config' })
  log.info(
    { heartbeatS: settings.heartbeatS, supervisionMs: settings.supervisionMs, receiptTimeoutMs: settings.receiptTimeoutMs, statusIntervalMs: settings.statusIntervalMs },
    'configuration changed by the platform',
  )
}

/** Settings changed by the platform survive a restart. */
function saveSettings(store: Store, settings: GatewaySettings): void {
  const { heartbeatS, supervisionMs, receiptTimeoutMs, statusIntervalMs } = settings
  store.setMeta('settings', JSON.stringify({ heartbeatS, supervisionMs, receiptTimeoutMs, statusIntervalMs }))
}

/** At start: what the platform last set overrides the configuration file. */
export function loadSavedSettings(store: Store, settings: GatewaySettings): void {
  const saved = store.meta('settings')
  if (saved) Object.assign(settings, JSON.parse(saved) as Partial<GatewaySettings>)
}
