/**
 * An EVENT from a terminal: an alarm pressed, a call-back asked for, a trouble, a test.
 * The gateway's promise starts here, in this order (gateway.ts says why):
 *
 *   recognise (new, or a replay of one already taken, however long ago) -> store (fsync)
 *   -> ACK (only now may the terminal forget it) -> INDICATE `stored` (to-the-button.ts).
 *
 * What cannot be stored is never acknowledged: NAK busy, the terminal keeps the event in
 * its non-volatile memory and sends it again, and the herder is told `unconfirmed` ("call
 * 110 by phone") meanwhile. [LINK-4.3] [LINK-5.5]
 */

import { EVENT_KINDS, contactIdOf, type Event } from '../protocol/messages.js'
import { CLASS_OF, MQTT_CONTRACT_VERSION } from '../protocol/mqtt.js'
import type { KnownTerminal } from './known-terminals.js'
import { epochTagFor, numberingRestarted } from './numbering.js'
import { terminalEventId, type AddResult, type NewEvent } from './store.js'
import type { TerminalsDeps } from './terminals.js'
import { INDICATED_CLASSES } from './to-the-button.js'

/** What an EVENT says, to tell its retransmission from another event under the same number. [LINK-5.5] */
export function eventFingerprint(m: Event): string {
  return [m.kind, m.user ?? '', m.boot, m.uptime, m.time ?? ''].join('|')
}

export function handleEvent(d: TerminalsDeps, t: KnownTerminal, ref: number, m: Event): void {
  const { settings, store, link, clock, io, log, toButton } = d
  const cls = CLASS_OF[m.kind]
  const fingerprint = eventFingerprint(m)
  let result: AddResult
  try {
    const seen = store.recognise(t.terminal, m.number, fingerprint)
    if (seen.kind === 'replay') {
      // Taken before (a retransmission, a replay after a power cut), however long ago:
      // the terminal may forget it. Its stage, if the case is still kept, is shown again.
      link.accept(ref)
      log.info({ id: seen.event?.id ?? terminalEventId(t.terminal, t.epoch, m.number), stage: seen.event?.stage }, 'event already stored (retransmitted or replayed)')
      if (seen.event && INDICATED_CLASSES.has(seen.event.cls)) toButton.indicate(seen.event)
      return
    }
    if (seen.kind === 'differs') {
      // A number already taken, for another event: the numbers started again without a
      // HELLO that showed it. The old event keeps its id; this one gets a new epoch.
      const reset = store.resetNumbering(t.terminal, 'event-differs', link.terminal(t.address)?.hello?.boot ?? m.boot, epochTagFor(settings.gateway, t.terminal))
      numberingRestarted(d, t, reset, link.terminal(t.address)?.hello?.lastEvent ?? m.number)
    }
    const id = terminalEventId(t.terminal, t.epoch, m.number)
    const cancels = m.kind === 'cancel' ? store.latestOpenAlarm(t.terminal, t.epoch, m.number)?.id : undefined
    const body = {
      v: MQTT_CONTRACT_VERSION,
      id,
      class: cls,
      kind: m.kind,
      code: contactIdOf(m.kind),
      restore: EVENT_KINDS[m.kind].restore,
      gateway: settings.gateway,
      terminal: t.terminal,
      address: t.address,
      number: m.number,
      ...(m.user !== undefined ? { user: m.user } : {}),
      ...(m.time !== undefined ? { terminalTime: m.time * 1000 } : {}),
      ...(cancels !== undefined ? { cancels } : {}),
      // An unverified claimant's event: filed under its own identity, never the bound
      // terminal's; the platform sees which id it claimed. [LINK-7.4] [MQTT-3.10]
      ...(t.claims !== undefined ? { claims: t.claims } : {}),
    }
    const event: NewEvent = {
      id,
      terminal: t.terminal,
      address: t.address,
      number: m.number,
      cls,
      body,
      receivedAt: io.now(),
      boot: clock.boot,
      offset: clock.offset,
      epoch: t.epoch,
      fingerprint,
    }
    result = store.addEvent(event)
  } catch (err) {
    // The disk failed (full, read-only SD card): the terminal keeps the event in its
    // non-volatile memory and retries on NAK busy; nothing is lost, and the log says why.
    link.defer(ref)
    d.storeWrite?.(false)
    log.error({ err, id: terminalEventId(t.terminal, t.epoch, m.number), terminal: t.terminal, number: m.number, class: cls }, 'could not store an event; the terminal keeps it and will send it again')
    toButton.unstored(t, m.number, cls)
    return
  }
  if (result.kind === 'refused') {
    // Never for a terminal's event (the store refuses only what the gateway makes), but
    // whatever is not stored is never acknowledged: the terminal keeps it. [LINK-4.3]
    link.defer(ref)
    return
  }
  link.accept(ref)
  d.storeWrite?.(true)
  toButton.stored(t.address, m.number)
  const e = result.event
  if (result.kind === 'added') {
    log.info(
      { id: e.id, class: cls, kind: m.kind, terminal: t.terminal, address: t.address, ...(e.body.cancels ? { cancels: e.body.cancels } : {}) },
      cls === 'alarm' ? 'ALARM stored' : 'event stored',
    )
    if (cls === 'alarm' && !io.online()) io.hurry?.()
  } else {
    log.info({ id: e.id, stage: e.stage }, 'event already stored (retransmitted or replayed)')
  }
  if (INDICATED_CLASSES.has(cls)) toButton.indicate(e)
}
