/**
 * The delivery promise, written once: what the fault suite, the soak run, the benchmarks
 * and the end-to-end tests check after driving the whole loop. Every caller asks this file.
 *
 * The promise, for every alarm pressed on a terminal (a press of another class is not an
 * alarm and is not promised here):
 * - `arrived`: it reached the platform;
 * - `once`:    once after the platform's deduplication by id (copies flagged as duplicates
 *              do not count; a second first copy does);
 * - `order`:   in its terminal's order: no alarm pressed later on the same terminal reached
 *              the platform before it [MQTT-3.3]: a later alarm (a cancel, say) must never
 *              arrive before an earlier one. Against a broker that loses copies it had
 *              accepted (`lossyBroker`; [MQTT-2.6] forbids it) a copy can vanish after its
 *              PUBACK, and its republication comes on its own schedule [MQTT-4.4]: a new
 *              alarm no longer drags the earlier ones with it (N presses would cost N²
 *              publications), so a later alarm may arrive first and the platform orders by
 *              number. What still holds there: only an alarm whose earlier copies the broker
 *              lost is overtaken (its first copy at the platform is a republication);
 * - `pressed`: nothing reached the platform under a terminal's name that it did not press;
 * - `shown`:   its terminal ends showing `received` or a later stage (protocol/lifecycle.ts
 *              `reached`; another target stage can be asked for);
 * - `memory`:  nothing is left in a terminal's memory: every event it saved, of any class,
 *              was acknowledged by the gateway.
 *
 * `once`, `order` and `pressed` can break while alarms are still on their way, and the
 * ledger says so at the arrival that breaks them (the soak run reports them at once);
 * `arrived`, `shown` and `memory` are judged at the end, by `verdict`.
 */

import { reached, type ShownStage } from '../protocol/lifecycle.js'

export type Rule = 'arrived' | 'once' | 'order' | 'pressed' | 'shown' | 'memory'

/** One broken promise: which alarm (or event, for `memory`), which rule, and what happened. */
export interface Broken {
  id: string
  rule: Rule
  what: string
}

/** The rules an arrival can break, as opposed to what only the end can tell. */
export const ARRIVAL_RULES: ReadonlySet<Rule> = new Set<Rule>(['once', 'order', 'pressed'])

/** What the check needs to know of a terminal at the end. */
export interface TerminalState {
  readonly id: string
  readonly device: {
    /** The stage it shows, by event number. */
    readonly stages: ReadonlyMap<number, ShownStage>
    /** Events still in its memory, not acknowledged by the gateway. */
    readonly pending: readonly { readonly number: number; readonly kind: string }[]
  }
}

/** A terminal with the alarms pressed on it, in the order pressed. */
export interface PressedTerminal extends TerminalState {
  readonly pressed: readonly number[]
}

export interface VerdictOptions {
  /** The stage every alarm must show at the end, or a later one. Default `received`. */
  stage?: ShownStage
  /** The broker lost copies it had accepted: an alarm whose first copy at the platform was a republication may be overtaken (see above). */
  lossyBroker?: boolean
}

/** The alert id the platform gives alarm `number` of `terminal` ([MQTT-3.3]). */
export const alertId = (terminal: string, number: number): string => `${terminal}:${number}`

/**
 * The terminal an alert id names: `T:7` and `T@epoch:7` are both of T. A second claimant
 * of T's id at address 7 of gateway G ([MQTT-3.10]) is a terminal of its own, `T@G.a7`:
 * `T@G.a7:1` and `T@G.a7@r2:1` are of it. (An epoch ends in `.<n>`, a claimant in `.a<n>`.)
 */
export function terminalOf(id: string): string {
  const head = id.slice(0, Math.max(0, id.lastIndexOf(':')))
  const [terminal = '', second] = head.split('@')
  return second !== undefined && /\.a\d+$/.test(second) ? `${terminal}@${second}` : terminal
}

interface Track {
  /** Event numbers of the alarms pressed, in order. */
  readonly pressed: number[]
  /** Index in `pressed` of the earliest alarm neither arrived nor already found overtaken. */
  next: number
  /** Alarms found overtaken (reported once each). */
  readonly overtaken: Set<string>
}

/**
 * The record of one run: presses as they are made, first arrivals at the platform as they
 * come. `arrive` returns what that arrival broke, at once; `verdict` returns everything.
 */
export class DeliveryLedger {
  /** Alert ids in the order of their first arrival at the platform (its duplicates left out). */
  readonly arrivals: string[] = []
  readonly #tracks = new Map<string, Track>()
  /** Position of each pressed id in its terminal's `pressed`. */
  readonly #position = new Map<string, number>()
  /** The publication attempt of each id's first copy at the platform ([MQTT-3.3] `attempt`). */
  readonly #arrived = new Map<string, number>()
  readonly #broken: Broken[] = []

  /** Registers a terminal (again, after a power cycle: its record goes on). Returns its live list of alarms pressed. */
  addTerminal(terminal: string): readonly number[] {
    return this.#track(terminal).pressed
  }

  /** Event numbers of the alarms pressed on `terminal`, in order. */
  pressedOn(terminal: string): readonly number[] {
    return this.#tracks.get(terminal)?.pressed ?? []
  }

  /** Alarm `number` was pressed on `terminal`; returns its alert id. */
  press(terminal: string, number: number): string {
    const t = this.#track(terminal)
    const id = alertId(terminal, number)
    if (this.#position.has(id)) throw new Error(`alarm ${id} recorded as pressed twice: a terminal never reuses a number within its memory`)
    this.#position.set(id, t.pressed.length)
    t.pressed.push(number)
    return id
  }

  /**
   * The first copy of alert `id` reached the platform (not one it flagged as a duplicate),
   * as publication `attempt` (1 when the platform does not say). Returns the promises this broke.
   */
  arrive(id: string, attempt = 1): Broken[] {
    this.arrivals.push(id)
    const t = this.#tracks.get(terminalOf(id))
    if (!t) return [] // another gateway's terminal, or another side of a benchmark: not this record's business
    const broken: Broken[] = []
    const at = this.#position.get(id)
    if (at === undefined) {
      broken.push({ id, rule: 'pressed', what: 'arrived at the platform but was never pressed' })
    } else if (this.#arrived.has(id)) {
      broken.push({ id, rule: 'once', what: 'arrived twice after deduplication' })
    } else {
      this.#arrived.set(id, attempt)
      // Every alarm pressed before this one and not arrived yet is overtaken: said once each.
      const terminal = terminalOf(id)
      for (let i = t.next; i < at; i++) {
        const earlier = alertId(terminal, t.pressed[i]!)
        if (this.#arrived.has(earlier) || t.overtaken.has(earlier)) continue
        t.overtaken.add(earlier)
        broken.push({ id: earlier, rule: 'order', what: `overtaken by ${id}, pressed after it on the same terminal` })
      }
      while (t.next < t.pressed.length) {
        const n = alertId(terminal, t.pressed[t.next]!)
        if (!this.#arrived.has(n) && !t.overtaken.has(n)) break
        t.next++
      }
    }
    this.#broken.push(...broken)
    return broken
  }

  /** Whether alert `id` has reached the platform. */
  hasArrived(id: string): boolean {
    return this.#arrived.has(id)
  }

  /**
   * What is still on its way, rule by rule, for waiting: alarms not at the platform yet,
   * alarms not yet shown at `stage` (or later), events still in a terminal's memory.
   */
  outstanding(terminals: readonly TerminalState[], stage: ShownStage = 'received'): { arrive: string[]; show: string[]; memory: string[] } {
    const out = { arrive: [] as string[], show: [] as string[], memory: [] as string[] }
    for (const t of terminals) {
      for (const n of this.pressedOn(t.id)) {
        const id = alertId(t.id, n)
        if (!this.#arrived.has(id)) out.arrive.push(id)
        const shown = t.device.stages.get(n)
        if (!reached(shown, stage)) out.show.push(`${id}=${shown ?? '-'}`)
      }
      for (const e of t.device.pending) out.memory.push(alertId(t.id, e.number))
    }
    return out
  }

  /** Every promise broken: those arrivals broke, then what the terminals show now. Empty: the promise held. */
  verdict(terminals: readonly TerminalState[], opts: VerdictOptions = {}): Broken[] {
    const stage = opts.stage ?? 'received'
    // Against a lossy broker an alarm may be overtaken once a copy of it was lost: its first copy here is a republication.
    const excused = (b: Broken) => opts.lossyBroker === true && b.rule === 'order' && (this.#arrived.get(b.id) ?? 1) > 1
    const broken = this.#broken.filter((b) => !excused(b))
    for (const t of terminals) {
      for (const n of this.pressedOn(t.id)) {
        const id = alertId(t.id, n)
        const shown = t.device.stages.get(n)
        if (!this.#arrived.has(id)) broken.push({ id, rule: 'arrived', what: `never reached the platform (the terminal shows ${shown ?? 'nothing'})` })
        if (!reached(shown, stage)) broken.push({ id, rule: 'shown', what: `the terminal ends showing ${shown ?? 'nothing'}, not ${stage} or later` })
      }
      for (const e of t.device.pending) {
        broken.push({ id: alertId(t.id, e.number), rule: 'memory', what: `still in ${t.id}'s memory (${e.kind}), never acknowledged by the gateway` })
      }
    }
    return broken
  }

  #track(terminal: string): Track {
    let t = this.#tracks.get(terminal)
    if (!t) {
      t = { pressed: [], next: 0, overtaken: new Set() }
      this.#tracks.set(terminal, t)
    }
    return t
  }
}

/** A first copy at the platform: its alert id, and which publication it was when the platform says. */
export type Arrival = string | { id: string; attempt: number }

/**
 * The promise checked after the fact, for a platform that recorded its own arrivals (the
 * shell platform of the interop test, the platform written against MQTT.md, a benchmark's
 * probe): `arrivals` are the first copies there, in the order they came.
 */
export function checkDelivery(terminals: readonly PressedTerminal[], arrivals: Iterable<Arrival>, opts: VerdictOptions = {}): Broken[] {
  const ledger = new DeliveryLedger()
  for (const t of terminals) {
    ledger.addTerminal(t.id)
    for (const n of t.pressed) ledger.press(t.id, n)
  }
  for (const a of arrivals) {
    if (typeof a === 'string') ledger.arrive(a)
    else ledger.arrive(a.id, a.attempt)
  }
  return ledger.verdict(terminals, opts)
}

/** One line per broken promise, for an error message or a report. */
export function describeBroken(broken: readonly Broken[]): string {
  return broken.map((b) => `${b.id}: ${b.what}`).join('; ')
}
