/**
 * Which sequence numbers of one audience's signed commands the gateway has taken, in bounded
 * space, so that a captured command is refused for ever [MQTT-5.12] step 5.
 *
 * Theory of operation (a window of the last COMMAND_WINDOW numbers *taken*, not of the
 * COMMAND_WINDOW numbers below the highest):
 * - `taken` holds the highest COMMAND_WINDOW sequence numbers taken, sorted. `floor` is the
 *   highest number ever dropped from it (or the `high` of a window stored in the old form):
 *   every number taken that is above `floor` is in `taken`.
 * - A number in `taken` is a replay. A number not in it is new if it is above `floor` and
 *   either fewer than COMMAND_WINDOW are kept or it is above the lowest kept. Taking a number
 *   beyond COMMAND_WINDOW drops the lowest kept (which becomes `floor`).
 * - Why not replay-window.ts here: a platform's `seq` is max(UNIX ms now, last + 1), so 1,024
 *   numbers below the highest are 1 s of its clock; a command of an audience held back more
 *   than a second behind a newer one (a slow publish, a broker's queue) was refused as a
 *   replay. Counting commands instead, a command is refused only once 1,024 newer ones of its
 *   audience were taken: far more than any platform has in flight.
 * - Why it is still safe: a number dropped is below every number kept, and the window is
 *   full from then on, so it (and anything at or below `floor`) is refused.
 * - Stored as JSON in the store's meta row of the audience, written with `take`'s sync
 *   before the command is applied: `{ floor, taken }`, `taken` the first number and then
 *   the differences, in decimal, comma-separated (about 7 KB at 1,024 commands a minute apart).
 */

export const COMMAND_WINDOW = 1024

/** A command window as stored. */
export interface StoredCommandWindow {
  floor: number
  taken: string
}

const isSeq = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0

export class CommandWindow {
  #floor: number
  /** Sorted ascending, at most COMMAND_WINDOW, each above #floor. */
  readonly #taken: number[]

  private constructor(floor: number, taken: number[]) {
    this.#floor = floor
    this.#taken = taken
  }

  static empty(): CommandWindow {
    return new CommandWindow(0, [])
  }

  /**
   * From its stored form. The form of replay-window.ts (`{ high, bits }`, before this window)
   * is taken as a floor at its `high`: every number up to it counts as taken. A damaged or
   * missing form starts empty.
   */
  static parse(stored: unknown): CommandWindow {
    if (typeof stored !== 'object' || stored === null) return CommandWindow.empty()
    const s = stored as Record<string, unknown>
    if (typeof s.taken === 'string' && isSeq(s.floor)) {
      const taken: number[] = []
      if (s.taken !== '') {
        let at = 0
        for (const [i, part] of s.taken.split(',').entries()) {
          const d = /^\d{1,16}$/.test(part) ? Number(part) : Number.NaN
          at = i === 0 ? d : at + d
          // Strictly increasing, above the floor, within the window: else the form is damaged.
          if (!isSeq(at) || at <= s.floor || (i > 0 && d === 0) || taken.length >= COMMAND_WINDOW) return CommandWindow.empty()
          taken.push(at)
        }
      }
      return new CommandWindow(s.floor, taken)
    }
    if (isSeq(s.high)) return new CommandWindow(s.high, [])
    return CommandWindow.empty()
  }

  /** How many numbers are kept (at most COMMAND_WINDOW). */
  get size(): number {
    return this.#taken.length
  }

  /** The highest number taken (0: none). */
  get high(): number {
    return this.#taken.at(-1) ?? this.#floor
  }

  /** The lowest number that can still be new, for messages: above the floor, and above the lowest kept once full. */
  get lowestNew(): number {
    return (this.#taken.length >= COMMAND_WINDOW ? this.#taken[0]! : this.#floor) + 1
  }

  /** Whether `n` was taken already, or is too old to be anything but a replay. */
  has(n: number): boolean {
    if (n < this.lowestNew) return true
    return this.#taken[this.#indexOf(n)] === n
  }

  /** Takes `n`; nothing if it is already a replay. */
  add(n: number): void {
    if (this.has(n)) return
    this.#taken.splice(this.#indexOf(n), 0, n)
    if (this.#taken.length > COMMAND_WINDOW) this.#floor = this.#taken.shift()!
  }

  toJSON(): StoredCommandWindow {
    const parts = this.#taken.map((n, i) => String(i === 0 ? n : n - this.#taken[i - 1]!))
    return { floor: this.#floor, taken: parts.join(',') }
  }

  /** The index of the first kept number ≥ n. */
  #indexOf(n: number): number {
    let lo = 0
    let hi = this.#taken.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.#taken[mid]! < n) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
