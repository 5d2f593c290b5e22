/**
 * `key-rotate`: the platform makes the gateway's configured next key the one in force
 * [MQTT-5.13]. Only a signed command, verified with the key in force, can do it; the choice
 * is kept in the store, so a restart keeps it. From then on the old key is unknown.
 */

import type { CommandContext, CommandOf } from './context.js'

export function keyRotate(c: CommandOf<'key-rotate'>, { auth, signed, log, refuse }: CommandContext): void {
  if (!signed) return refuse('CMD_BAD_VALUE', 'key-rotate must be signed with the platform key in force; this gateway has no platform key, so there is nothing to rotate')
  if (c.key === auth.activeKeyId) {
    log.debug({ key: c.key }, 'key-rotate to the key already in force: nothing to do')
    return
  }
  const next = auth.nextKeyId
  if (next === null || c.key !== next) {
    return refuse('CMD_BAD_VALUE', `key-rotate to ${c.key}, but this gateway's next platform key is ${next ?? 'not configured'} (platformKeys.next): nothing changed`)
  }
  const from = auth.activeKeyId
  auth.rotate(c.key)
  log.warn({ from, to: c.key }, 'platform key rotated: commands are now verified with the next key; make it platformKeys.current in the configuration')
}
