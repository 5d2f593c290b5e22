/**
 * `acknowledged`, `dispatched`, `resolved`: the operators' answers, each moving one alert
 * on and showing it on its terminal with their text (who took it, who is coming and when,
 * how it ended). [MQTT-5.6]
 */

import type { Stage } from '../../protocol/messages.js'
import { fitText } from '../../protocol/display.js'
import { INDICATE_TEXT_MAX_BYTES } from '../to-the-button.js'
import type { CommandContext, CommandOf } from './context.js'

export function acknowledged(c: CommandOf<'acknowledged'>, ctx: CommandContext): void {
  advance(ctx, c.id, c.alert, 'acknowledged', c.text ?? c.by)
}

export function dispatched(c: CommandOf<'dispatched'>, ctx: CommandContext): void {
  advance(ctx, c.id, c.alert, 'dispatched', c.unit, c.eta)
}

export function resolved(c: CommandOf<'resolved'>, ctx: CommandContext): void {
  advance(ctx, c.id, c.alert, 'resolved', c.text)
}

/** `etaMin` counts from now: a stage sent again later carries the minutes still to go. */
function advance(ctx: CommandContext, command: string, alert: string, to: Stage, text: string | undefined, etaMin?: number): void {
  const { now, store, log, toButton } = ctx
  const e = store.advance(alert, to, now, { ...(text !== undefined ? { text } : {}), ...(etaMin !== undefined ? { etaAt: now + etaMin * 60_000 } : {}) })
  if (e) {
    log.info({ id: alert, stage: to, command }, `alert ${to}`)
    if (text !== undefined && fitText(text, INDICATE_TEXT_MAX_BYTES).cut) {
      ctx.count('indicate.textCut')
      log.warn({ id: alert, command, bytes: Buffer.byteLength(text) }, `operator text longer than the terminal's ${INDICATE_TEXT_MAX_BYTES} bytes: the terminal shows it cut, ending in "…"`)
    }
    toButton.indicate(e)
  } else if (!store.get(alert)) {
    // On an area or all topic, an alert of another gateway is not this one's business. [MQTT-5.4]
    if (ctx.own) ctx.refuse('CMD_UNKNOWN_ALERT', `no alert ${alert} at this gateway (resolved long ago, or another gateway's)`)
    else log.debug({ id: alert, topic: ctx.topic, command }, "command about another gateway's alert: ignored")
  }
}
