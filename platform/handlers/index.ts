/**
 * One handler per uplink topic, behind one switch [STYLE 3]. A message arrives here
 * narrowed (uplink.ts); its handler updates what the console knows and emits its events;
 * what the message leaves to do (receipts, automatic acknowledgements) goes out after it.
 */

import { assertNever } from '../errors.js'
import type { UplinkMessage } from '../uplink.js'
import { onAlert } from './alert.js'
import { onBatch } from './batch.js'
import type { HandlerContext, Handling } from './context.js'
import { onEvent } from './event.js'
import { onReply } from './reply.js'
import { onState } from './state.js'
import { onStatus } from './status.js'

export type { HandlerContext } from './context.js'

export function handleUplink(ctx: HandlerContext, m: UplinkMessage, from: Omit<Handling, 'followup'>): void {
  const h: Handling = { ...from, followup: { receipts: [], acknowledgements: [] } }
  try {
    switch (m.topic) {
      case 'alert':
        return onAlert(ctx, m, h)
      case 'event':
        return onEvent(ctx, m, h)
      case 'batch':
        return onBatch(ctx, m, h)
      case 'state':
        return onState(ctx, m, h)
      case 'status':
        return onStatus(ctx, m, h)
      case 'reply':
        return onReply(ctx, m, h)
      default:
        return assertNever(m)
    }
  } finally {
    // Also when an item failed (a bug, CONSOLE_INTERNAL): the cases before it get their receipt.
    ctx.answers.followUp(h.gateway, h.followup)
  }
}
