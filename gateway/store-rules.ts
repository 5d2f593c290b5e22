/**
 * The store's rules that do not depend on where the store keeps things, written once for
 * every implementation of the Store contract (store.ts): the classes' ranks, when a HELLO
 * means a reset, what an EVENT's number is, what a broadcast command changes, and how
 * heartbeats are folded and held until they are published.
 */

import { CLASSES, type PriorityClass } from '../protocol/mqtt.js'
import type { BroadcastChange, CoalescedStatus, Heartbeat, NewEvent, Recognition, ResetReason, StoredBroadcast, StoredEvent, TerminalNumbering } from './store.js'

/** Priority classes by rank, highest first: alarm 0, request 1, trouble 2, status 3. */
export const RANK: Readonly<Record<PriorityClass, number>> = { alarm: 0, request: 1, trouble: 2, status: 3 }
export const CLASS_OF_RANK: readonly PriorityClass[] = CLASSES
/** Events of these ranks are cases, kept for their lifecycle after publication. */
export const LAST_CASE_RANK = RANK.request
export const DAY_MS = 86_400_000

/** A terminal's event (it has a number): never refused, and it takes its number in the replay window. */
export function fromTerminal(e: NewEvent): e is NewEvent & { terminal: string; number: number } {
  return e.terminal !== null && e.number !== null
}

/** An event the gateway made itself, other than an alarm: refused below the disk reserve. */
export function refusableBelowReserve(e: NewEvent): boolean {
  return !fromTerminal(e) && e.cls !== 'alarm'
}

/**
 * Whether a HELLO with `boot` and `lastEvent` shows that the terminal's numbers started
 * again (its memory was lost, or another unit took its id), and why. [LINK-5.5]
 */
export function resetReason(known: TerminalNumbering | undefined, boot: number, lastEvent: number): ResetReason | null {
  if (known === undefined || known.boot === null || (boot >= known.boot && lastEvent >= known.high)) return null
  return boot < known.boot ? 'boot-backwards' : 'last-event-backwards'
}

/**
 * What an EVENT under a number is, given the event stored under that number in the
 * terminal's current epoch (if still kept) and whether its replay window has the number.
 */
export function recognition(stored: StoredEvent | undefined, fingerprint: string, inWindow: () => boolean): Recognition {
  if (stored !== undefined) {
    return stored.fingerprint !== undefined && stored.fingerprint !== fingerprint ? { kind: 'differs', event: stored } : { kind: 'replay', event: stored }
  }
  return inWindow() ? { kind: 'replay', event: undefined } : { kind: 'new' }
}

type BroadcastContent = Pick<StoredBroadcast, 'id' | 'text' | 'urgency' | 'expires' | 'receivedAt'>

/** What a broadcast command makes of the broadcast held under its id. [MQTT-5.7] */
export function broadcastUpdate(old: StoredBroadcast | undefined, b: BroadcastContent): { change: BroadcastChange; broadcast: StoredBroadcast } {
  if (old && !old.withdrawn && old.text === b.text && old.urgency === b.urgency && old.expires === b.expires) return { change: 'unchanged', broadcast: old }
  const broadcast: StoredBroadcast = { id: b.id, text: b.text, urgency: b.urgency, expires: b.expires, receivedAt: b.receivedAt, revision: old ? old.revision + 1 : 0, withdrawn: false }
  return { change: old ? 'replaced' : 'added', broadcast }
}

/** The withdrawal of a broadcast: a new revision, marked withdrawn; the same one if it is withdrawn already. */
export function withdrawal(old: StoredBroadcast): StoredBroadcast {
  return old.withdrawn ? old : { ...old, revision: old.revision + 1, withdrawn: true }
}

/** A heartbeat folded into the terminal's status since its last publication. [MQTT-3.4] */
export function fold(prev: CoalescedStatus | undefined, terminal: string, address: number, hb: Heartbeat, now: number): CoalescedStatus {
  const minutesWithoutMains = (prev?.minutesWithoutMains ?? 0) + (prev && !prev.latest.mains ? Math.max(0, now - prev.last) / 60_000 : 0)
  const lowest = [prev?.lowestBattery, hb.battery].filter((b): b is number => b !== undefined)
  return {
    terminal,
    address,
    latest: hb,
    since: prev?.since ?? now,
    last: now,
    heartbeats: (prev?.heartbeats ?? 0) + 1,
    ...(lowest.length > 0 ? { lowestBattery: Math.min(...lowest) } : {}),
    minutesWithoutMains,
    version: (prev?.version ?? 0) + 1,
  }
}

interface Held {
  status: CoalescedStatus
  /** The version saved on the medium, or null. */
  savedVersion: number | null
  /** Gateway clock of the first heartbeat folded since the fold was last saved, or null. */
  unsavedSince: number | null
}

/**
 * The status folds not yet published, by terminal. A heartbeat is folded here, in memory:
 * a row written per heartbeat was 9 in 10 of the bytes the gateway wrote to its SD card. A
 * fold reaches the medium only once it has waited long (the uplink is down: it must
 * survive a reboot), and at close; the implementation says how, through `save`.
 */
export class StatusFolds {
  readonly #held = new Map<string, Held>()

  /** Folds found saved on the medium at open. */
  load(saved: readonly CoalescedStatus[]): void {
    for (const status of saved) this.#held.set(status.terminal, { status, savedVersion: status.version, unsavedSince: null })
  }

  fold(terminal: string, address: number, hb: Heartbeat, now: number): void {
    const held = this.#held.get(terminal)
    this.#held.set(terminal, {
      status: fold(held?.status, terminal, address, hb, now),
      savedVersion: held?.savedVersion ?? null,
      unsavedSince: held?.unsavedSince ?? now,
    })
  }

  /** Saves, with one call of `save`, the folds unsaved for `olderThanMs` or more; returns how many. */
  flush(now: number, olderThanMs: number, save: (due: CoalescedStatus[]) => void): number {
    const due = [...this.#held.values()].filter((h) => h.unsavedSince !== null && now - h.unsavedSince >= olderThanMs)
    if (due.length === 0) return 0
    save(due.map((h) => h.status))
    for (const h of due) {
      h.savedVersion = h.status.version
      h.unsavedSince = null
    }
    return due.length
  }

  /** Every fold, by terminal. */
  dirty(): CoalescedStatus[] {
    return [...this.#held.values()].map((h) => h.status).sort((a, b) => (a.terminal < b.terminal ? -1 : a.terminal > b.terminal ? 1 : 0))
  }

  /**
   * Version `version` of the terminal's fold was published: it starts afresh unless a
   * heartbeat came since. Returns the version saved on the medium, to delete, or null.
   */
  published(terminal: string, version: number): number | null {
    const held = this.#held.get(terminal)
    if (held === undefined || held.status.version !== version) return null
    this.#held.delete(terminal)
    return held.savedVersion
  }
}
