/**
 * Starts the household page beside the gateway (gateway/main.ts calls this with
 * `gateway.household`): the PIN (household.pin, or the one made at first start and kept
 * in the data directory), the local API's token, the server. Anything that goes wrong
 * here is logged with what to do, and the gateway runs on without the page: the alarm
 * path never depends on it.
 */

import type { Timers } from '../../../io/timers.js'
import type { GatewayConfig } from '../../config.js'
import type { Logger } from '../../log.js'
import type { HouseholdService } from '../model.js'
import { isPin, isToken, makePin, makeToken, pinPath, readOrMakeSecret, tokenPath } from './secrets.js'
import { type HouseholdServer, startHouseholdServer } from './server.js'

export interface AttachOptions {
  timers?: Timers
}

/** The running page, or null if it is off or could not start (the log says why). */
export async function attachHouseholdPage(config: Pick<GatewayConfig, 'data' | 'household'>, household: HouseholdService, log: Logger, o: AttachOptions = {}): Promise<HouseholdServer | null> {
  const h = config.household
  if (!h.enabled) {
    log.info({}, 'household page off (household.enabled = false): steppelink status, relay and inbox need it')
    return null
  }
  let pin: string
  let token: string
  let pinNote: string
  try {
    if (h.pin !== undefined) {
      pin = h.pin
      pinNote = 'the PIN is household.pin of the config'
    } else {
      const made = readOrMakeSecret(pinPath(config.data), isPin, makePin)
      if (made.warning) log.warn({}, made.warning)
      pin = made.value
      pinNote = `PIN ${pin} (${made.made ? 'made now' : 'made at first start'}, kept in ${pinPath(config.data)}; steppelink status shows it)`
    }
    const t = readOrMakeSecret(tokenPath(config.data), isToken, makeToken)
    if (t.warning) log.warn({}, t.warning)
    token = t.value
  } catch (err) {
    log.error(
      { err, code: (err as NodeJS.ErrnoException).code },
      `household page: cannot read or write its PIN or token in ${config.data}: ${(err as Error).message}. The gateway runs on without the page (alarms are not affected); check that the data directory is writable by this user.`,
    )
    return null
  }
  const started = await startHouseholdServer({ household, listen: h.listen, port: h.port, pin, token, log, ...(o.timers ? { timers: o.timers } : {}) })
  if (!started.ok) {
    log.error({ code: started.code, listen: h.listen, port: h.port }, started.message)
    return null
  }
  const { server } = started
  log.info(
    { url: server.url, listen: h.listen, port: server.port },
    `household page on ${h.listen === '0.0.0.0' || h.listen === '::' ? `every interface, port ${server.port} (${server.url} on this board)` : server.url}; ${pinNote}`,
  )
  return server
}
