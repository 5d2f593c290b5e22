/**
 * Error reports on the reply topic ([MQTT-5.2], the Reply of [MQTT-3.8]): one for each
 * command rejected or refused, as far as the reply budget allows (reply-budget.ts says
 * why there is one).
 */

import { MQTT_CONTRACT_VERSION, encodePayload, type Reply } from '../../protocol/mqtt.js'
import type { GatewayClock } from '../clock.js'
import type { GatewayIo, GatewaySettings, Log } from '../gateway.js'
import { ReplyBudget, type ReplyBudgetOptions } from '../reply-budget.js'

export interface RepliesDeps {
  settings: Pick<GatewaySettings, 'gateway' | 'encoding'>
  /** The reply topic. */
  topic: string
  clock: GatewayClock
  io: Pick<GatewayIo, 'publish' | 'now'>
  log: Log
  budget: ReplyBudgetOptions
  count(name: string): void
}

export class Replies {
  readonly #budget: ReplyBudget

  /** Throws a RangeError on a budget that allows nothing. */
  constructor(private readonly d: RepliesDeps) {
    this.#budget = new ReplyBudget(d.budget)
  }

  /**
   * An error report on the reply topic, if the budget allows ([MQTT-5.2]): returns whether
   * it goes out. Held-back reports are counted (`replies.suppressed`), and the next one
   * that goes out says how many ([MQTT-3.8] `suppressed`).
   */
  send(topic: string, command: string | null, code: string, message: string): boolean {
    const { settings, io, log } = this.d
    const decision = this.#budget.take(io.now())
    if (!decision.send) {
      this.d.count('replies.suppressed')
      if (decision.first) {
        log.warn(
          { burst: this.d.budget.burst, perMinute: this.d.budget.perMinute },
          'too many rejected commands: error reports to the platform are held back; the next report says how many, and the gateway status counts them (replies.suppressed)',
        )
      }
      return false
    }
    const r: Reply = {
      v: MQTT_CONTRACT_VERSION,
      type: 'error',
      gateway: settings.gateway,
      command,
      topic,
      code,
      message,
      time: this.d.clock.now(),
      ...(decision.suppressed > 0 ? { suppressed: decision.suppressed } : {}),
    }
    io.publish(this.d.topic, encodePayload(r, settings.encoding)).catch(() => {
      // Offline: the log line already says it; error reports are not worth storing.
    })
    return true
  }
}
