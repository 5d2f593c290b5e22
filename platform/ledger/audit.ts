/**
 * The audit trail's hash chain. Each row's hash is SHA-256 over the previous row's hash and
 * a canonical encoding of the row (its sequence number, time, actor, action, case and
 * details), so an edit, a deletion or an insertion in the middle of the trail breaks the
 * chain at that row, and verify() names it.
 *
 * Why canonical JSON (keys sorted at every depth, no spaces): the same row must hash the
 * same on every machine and every version, whatever order its details were built in.
 *
 * What the chain cannot show on its own: the last rows cut off (the chain of the rest still
 * holds). verify() returns the head hash and the row count; a centre that writes them down
 * elsewhere (a daily report, a printout) can tell that too.
 */

import { createHash } from 'node:crypto'

/** The `prev` of the first row. */
export const GENESIS = '0'.repeat(64)

/** JSON with the keys of every object sorted; undefined fields left out, as JSON does. */
export function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return `[${value.map((v) => canonical(v ?? null)).join(',')}]`
  const o = value as Record<string, unknown>
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`
}

export interface ChainRow {
  seq: number
  at: number
  actor: string
  action: string
  caseId: string | null
  /** The details as stored: canonical JSON. */
  details: string
}

/** The hash of a row after `prev`. */
export function rowHash(prev: string, r: ChainRow): string {
  return createHash('sha256')
    .update(prev)
    .update('\n')
    .update(canonical([r.seq, r.at, r.actor, r.action, r.caseId, r.details]))
    .digest('hex')
}
