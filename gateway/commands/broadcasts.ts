/**
 * `broadcast` and `broadcast-withdraw`: information published to the grassland, and taken
 * back. Stored first, so that a terminal away now gets it (or its withdrawal) at its next
 * session; the terminals in session now are sent it at once (to-the-button.ts). [MQTT-5.7]
 * [MQTT-5.11]
 */

import type { CommandContext, CommandOf } from './context.js'

export function broadcast(c: CommandOf<'broadcast'>, { now, settings, store, clock, log, toButton, events, refuse }: CommandContext): void {
  const time = clock.now()
  if (c.expires !== undefined && !time.estimated && c.expires <= time.at) {
    const ago = Math.round((time.at - c.expires) / 60_000)
    return refuse('CMD_BAD_VALUE', `broadcast ${c.broadcast} expired ${ago} min ago (${new Date(c.expires).toISOString()}) by this gateway's clock, set by the platform: not shown`)
  }
  const { change, broadcast: b } = store.putBroadcast({ id: c.broadcast, text: c.text, urgency: c.urgency, expires: c.expires ?? null, receivedAt: now })
  if (change === 'unchanged') {
    log.debug({ broadcast: c.broadcast }, 'broadcast repeated unchanged: nothing to send')
    return
  }
  // The platform learns that this gateway has it, once per text: the console shows, per
  // broadcast, which gateways got it, read it and passed it on. [MQTT-5.7]
  events.record('broadcast-received', null, `broadcast ${b.id}`, { broadcast: b.id, revision: b.revision }, `${settings.gateway}/got/${b.id}.${b.revision}`)
  const terminals = toButton.broadcast(b)
  log.info({ broadcast: c.broadcast, revision: b.revision, urgency: c.urgency, terminals }, change === 'replaced' ? 'broadcast replaced: new text sent to terminals' : 'broadcast sent to terminals')
}

/** An id this gateway never had changes nothing and earns no Reply: it may have been meant for others of the area. */
export function broadcastWithdraw(c: CommandOf<'broadcast-withdraw'>, { store, log, toButton }: CommandContext): void {
  const b = store.withdrawBroadcast(c.broadcast)
  if (!b) {
    log.info({ broadcast: c.broadcast }, 'broadcast withdrawn that this gateway never had: nothing to do')
    return
  }
  const terminals = toButton.withdraw(b)
  log.info({ broadcast: c.broadcast, terminals }, 'broadcast withdrawn: terminals told to remove it')
}
