/**
 * `time`: the platform's clock, for a gateway without a real-time clock (clock.ts), passed
 * on to every terminal as TIME so that its events can carry it. [MQTT-5.8] [LINK-5.9]
 */

import type { CommandContext, CommandOf } from './context.js'

/**
 * A `time` without a session that is this far behind a clock already synchronised waited in
 * the broker while the gateway was away: it is refused rather than set the clock back, ms.
 * [MQTT-5.8]
 */
export const STALE_TIME_MS = 60_000

export function time(c: CommandOf<'time'>, { clock, link, known, log, publishing, refuse, signed }: CommandContext): void {
  // A signed time is bound to the session: a gateway that just booted cannot judge `exp`
  // (no clock yet), so only the echo of its birth's fresh session shows that the time is
  // not an old one captured and played again. [MQTT-5.12]
  if (signed && c.session === undefined) {
    return refuse('CMD_STALE', `a signed time must name the session of the birth it answers (this gateway is in session ${publishing.session}): not applied`)
  }
  // A `time` queued in the broker while the gateway was away is stale when it comes:
  // it must not set the clock. It names the session it answers, or, without one,
  // must not be far behind a clock already set. [MQTT-5.8]
  if (c.session !== undefined && c.session !== publishing.session) {
    return refuse('CMD_STALE', `time for session ${c.session}; this gateway is in session ${publishing.session} (the command waited in the broker): not applied`)
  }
  if (c.session === undefined && clock.synchronised && clock.now().at - c.now > STALE_TIME_MS) {
    const behind = Math.round((clock.now().at - c.now) / 1000)
    return refuse(
      'CMD_STALE',
      `time ${behind} s behind this gateway's clock, already set by the platform: it waited in the broker; not applied (send time with the birth's session to set the clock back)`,
    )
  }
  const offset = clock.setPlatformTime(c.now)
  log.info({ offsetMs: offset }, 'clock synchronised with the platform')
  for (const t of known.values()) link.send(t.address, { type: 'TIME', unix: Math.floor(c.now / 1000), estimate: false }, { coalesce: 'time' })
}
