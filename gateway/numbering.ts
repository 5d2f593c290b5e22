/**
 * A terminal's event numbers started again (its memory was wiped, or a new unit took its
 * id): seen at its HELLO, or at an EVENT whose number was taken by another event. Its new
 * events get a new epoch in their ids, so that they are never taken for the old ones
 * ([MQTT-3.2]; invariant 3 of store.ts), and the stages still queued for the old numbers
 * are discarded, since the terminal would show them for its new events.
 */

import type { KnownTerminal } from './known-terminals.js'
import { terminalEventId, type Reset } from './store.js'
import type { TerminalsDeps } from './terminals.js'

/** The tag of the store's n-th numbering reset: unique to this gateway, so ids never collide across gateways. [MQTT-3.2] */
export function epochTag(gateway: string, n: number): string {
  return `${gateway}.${n}`
}

/**
 * The epoch tags of one terminal's numbering. A second claimant's identity already holds
 * the gateway (`claimantId`), so its epochs are `r<n>`: unique all the same, and its ids
 * stay within the 160 characters of [MQTT-3.1] (`<id 32>@<gateway 64>.a254@r<n>:<number>`).
 */
export function epochTagFor(gateway: string, terminal: string): (n: number) => string {
  return terminal.includes('@') ? (n) => `r${n}` : (n) => epochTag(gateway, n)
}

/** A terminal's numbers started again: say so loudly, and tell the platform. */
export function numberingRestarted(d: Pick<TerminalsDeps, 'link' | 'log' | 'toButton' | 'events'>, t: KnownTerminal, reset: Reset, lastEvent: number): void {
  t.epoch = reset.epoch
  d.toButton.forget(t.address)
  // Stages still queued for the old numbering would be taken for the new events. [invariant 3]
  const discarded = d.link.discard(t.address, (m) => m.type === 'INDICATE')
  d.log.warn(
    { terminal: t.terminal, address: t.address, ...reset, discardedIndicates: discarded },
    `terminal ${t.terminal} started its event numbers again (${reset.reason}): memory wiped, or a new unit under the same id; its events are now ${terminalEventId(t.terminal, reset.epoch, 1).replace(/1$/, 'n')}, never taken for old ones`,
  )
  d.events.record('terminal-reset', t, `event numbers restarted (${reset.reason})`, {
    reset: { reason: reset.reason, epoch: reset.epoch, boot: d.link.terminal(t.address)?.hello?.boot ?? 0, lastEvent, previousBoot: reset.previousBoot, previousNumber: reset.previousNumber },
  })
}
