/**
 * Which event numbers of one terminal the gateway has already taken, in bounded space, so
 * that a retransmitted or replayed EVENT is recognised for ever [LINK-5.5], whatever its
 * class and however long ago its row left the store.
 *
 * Theory of operation (the anti-replay window of IPsec, RFC 4303 3.4.3):
 * - `high` is the highest number taken. A bitmap remembers, for the WINDOW numbers up to
 *   and including `high`, which were taken. A number above `high` is new; a number in the
 *   window is new unless its bit is set; a number below the window is old (a replay).
 * - Why the window is enough: a terminal keeps each event in its non-volatile memory until
 *   the gateway's ACK and sends alarms first, then in number order [LINK-8.1], so numbers
 *   arrive a little out of order (a trouble event overtaken by an alarm), never a thousand
 *   numbers late. A terminal that starts again from 1 (wiped memory, a new unit) is a reset,
 *   which the gateway detects from its HELLO and gives a new numbering (store.ts); it is not
 *   the window's business.
 * - 1,024 numbers cost 128 bytes, written with the event in the same transaction.
 */

export const WINDOW = 1024

export class ReplayWindow {
  #high: number
  /** Bit i of the bitmap is number high - i. */
  readonly #bits: Uint8Array

  private constructor(high: number, bits: Uint8Array) {
    this.#high = high
    this.#bits = bits
  }

  static empty(): ReplayWindow {
    return new ReplayWindow(0, new Uint8Array(WINDOW / 8))
  }

  /** From its stored form; a damaged or missing form starts empty (the store's rows still catch replays of what they hold). */
  static parse(stored: { high: number; bits: string } | null | undefined): ReplayWindow {
    if (!stored || !Number.isInteger(stored.high) || stored.high < 0) return ReplayWindow.empty()
    const bits = Buffer.from(stored.bits, 'base64')
    if (bits.length !== WINDOW / 8) return ReplayWindow.empty()
    return new ReplayWindow(stored.high, new Uint8Array(bits))
  }

  /** The highest number taken (0: none). */
  get high(): number {
    return this.#high
  }

  /** Whether `n` was taken already (or is too old to be anything but a replay). */
  has(n: number): boolean {
    if (n > this.#high) return false
    const i = this.#high - n
    if (i >= WINDOW) return true
    return (this.#bits[i >> 3]! & (1 << (i & 7))) !== 0
  }

  /** Takes `n`. */
  add(n: number): void {
    if (n > this.#high) {
      this.#shift(n - this.#high)
      this.#high = n
    }
    const i = this.#high - n
    if (i < WINDOW) this.#bits[i >> 3]! |= 1 << (i & 7)
  }

  toJSON(): { high: number; bits: string } {
    return { high: this.#high, bits: Buffer.from(this.#bits).toString('base64') }
  }

  /** Moves every bit `by` places towards the old end (numbers get older as high grows). */
  #shift(by: number): void {
    if (by >= WINDOW) {
      this.#bits.fill(0)
      return
    }
    for (let i = WINDOW - 1; i >= 0; i--) {
      const from = i - by
      const set = from >= 0 && (this.#bits[from >> 3]! & (1 << (from & 7))) !== 0
      if (set) this.#bits[i >> 3]! |= 1 << (i & 7)
      else this.#bits[i >> 3]! &= ~(1 << (i & 7))
    }
  }
}
