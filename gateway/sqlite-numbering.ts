/**
 * The terminals table of a SqliteStore: each terminal's numbering epoch, the boot counter
 * of its last HELLO, and the replay window of the numbers taken in the epoch, stored as
 * JSON (128 bytes of bitmap, written with the event that takes a number). [LINK-5.5]
 */

import type Database from 'better-sqlite3'
import { ReplayWindow } from './replay-window.js'
import type { SqliteDb } from './sqlite-db.js'
import type { ResetReason, Reset, TerminalNumbering } from './store.js'

interface TerminalRow {
  terminal: string
  epoch: string
  boot: number | null
  window: string
}

const windowOf = (r: TerminalRow | undefined) => ReplayWindow.parse(r ? (JSON.parse(r.window) as never) : null)

function prepare(db: Database.Database) {
  return {
    getTerminal: db.prepare<[string], TerminalRow>('SELECT * FROM terminals WHERE terminal = ?'),
    putTerminal: db.prepare<[string, string, number | null, string]>(
      'INSERT INTO terminals (terminal, epoch, boot, window) VALUES (?, ?, ?, ?) ON CONFLICT(terminal) DO UPDATE SET epoch = excluded.epoch, boot = excluded.boot, window = excluded.window',
    ),
  }
}

export class SqliteNumbering {
  readonly #db: SqliteDb
  readonly #stmt: ReturnType<typeof prepare>

  constructor(db: SqliteDb) {
    this.#db = db
    this.#stmt = prepare(db.db)
  }

  numbering(terminal: string): TerminalNumbering | undefined {
    const r = this.#stmt.getTerminal.get(terminal)
    if (!r) return undefined
    return { terminal, epoch: r.epoch, boot: r.boot, high: windowOf(r).high }
  }

  /** Remembers the boot counter of a HELLO that was no reset (a write only when it changed). */
  rememberBoot(terminal: string, boot: number): void {
    const r = this.#stmt.getTerminal.get(terminal)
    if (r?.boot === boot) return
    this.#db.write(true, () => this.#stmt.putTerminal.run(terminal, r?.epoch ?? '', boot, r?.window ?? JSON.stringify(ReplayWindow.empty())))
  }

  resetNumbering(terminal: string, reason: ResetReason, boot: number | null, tag: (n: number) => string): Reset {
    return this.#db.write(true, () => {
      const known = this.numbering(terminal)
      const n = Number(this.#db.meta('terminal-resets') ?? '0') + 1
      this.#db.putMeta('terminal-resets', String(n))
      const epoch = tag(n)
      this.#stmt.putTerminal.run(terminal, epoch, boot, JSON.stringify(ReplayWindow.empty()))
      return { reason, epoch, previousEpoch: known?.epoch ?? '', previousBoot: known?.boot ?? null, previousNumber: known?.high ?? 0 }
    })
  }

  /** The terminal's current epoch ('' for one never seen). */
  epoch(terminal: string): string {
    return this.#stmt.getTerminal.get(terminal)?.epoch ?? ''
  }

  /** Whether the terminal's replay window has `number` (taken, or older than the window). */
  taken(terminal: string, number: number): boolean {
    return windowOf(this.#stmt.getTerminal.get(terminal)).has(number)
  }

  /** Within a write(): the event `number` of `terminal` (of `epoch`, for a terminal never seen) was stored. */
  take(terminal: string, number: number, epoch: string): void {
    const r = this.#stmt.getTerminal.get(terminal)
    const window = windowOf(r)
    window.add(number)
    this.#stmt.putTerminal.run(terminal, r?.epoch ?? epoch, r?.boot ?? null, JSON.stringify(window))
  }
}
