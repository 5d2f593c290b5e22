/**
 * Timers that fire only when a test says so: for code that takes its timers injected
 * (the uplink's retry loop, the console's operator delays), so a test steps through
 * minutes of waiting without sleeping.
 */
export class ManualTimers {
  #id = 0
  readonly pending = new Map<number, { fn: () => void; ms: number }>()

  setTimeout(fn: () => void, ms: number): unknown {
    this.pending.set(++this.#id, { fn, ms })
    return this.#id
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number)
  }

  /** The delays pending, shortest first. */
  delays(): number[] {
    return [...this.pending.values()].map((t) => t.ms).sort((a, b) => a - b)
  }

  /** Fires the first pending timer of `ms` (or matching `ms`); returns its delay. */
  fire(ms: number | ((ms: number) => boolean)): number {
    const match = typeof ms === 'number' ? (x: number) => x === ms : ms
    for (const [id, t] of this.pending) {
      if (!match(t.ms)) continue
      this.pending.delete(id)
      t.fn()
      return t.ms
    }
    throw new Error(`no pending timer matches ${typeof ms === 'number' ? `${ms} ms` : 'the test'}; pending: ${this.delays().join(', ')}`)
  }
}
