/**
 * Sessions of the household page: a random 32-byte id in an HttpOnly, SameSite=Strict
 * cookie, kept in memory only (a restart of the gateway logs everyone out, which costs a
 * PIN; nothing of a session is on the SD card). A session ends after `idleMs` without a
 * request (12 h by default: the member logs in once a day at most). Each session has its
 * own CSRF token, put in a hidden field of every form and checked on every POST.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { StringKey } from './strings.js'

/** A notice for the next page of this session (POST, redirect, GET): said once. */
export interface Flash {
  kind: 'ok' | 'error'
  key: StringKey
  vars?: Record<string, string | number>
  test: string
}

export interface Session {
  id: string
  csrf: string
  lastSeen: number
  flash: Flash | null
}

export interface SessionOptions {
  /** ms without a request before a session ends. Default 12 h. */
  idleMs?: number
  /** Sessions kept at most; the least recently used goes first. Default 64 (a household has a few phones). */
  max?: number
  now: () => number
}

export const SESSION_COOKIE = 'sl_session'
export const DEFAULT_IDLE_MS = 12 * 3600_000

export class Sessions {
  readonly #byId = new Map<string, Session>()
  readonly #idleMs: number
  readonly #max: number
  readonly #now: () => number

  constructor(o: SessionOptions) {
    this.#idleMs = o.idleMs ?? DEFAULT_IDLE_MS
    this.#max = o.max ?? 64
    this.#now = o.now
  }

  get idleMs(): number {
    return this.#idleMs
  }

  create(): Session {
    const now = this.#now()
    this.#sweep(now)
    while (this.#byId.size >= this.#max) this.#byId.delete(this.#byId.keys().next().value!)
    const s: Session = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), lastSeen: now, flash: null }
    this.#byId.set(s.id, s)
    return s
  }

  /** The live session of this cookie value, touched (its idle time starts again); null if none or expired. */
  get(id: string | undefined): Session | null {
    if (id === undefined) return null
    const s = this.#byId.get(id)
    if (!s) return null
    const now = this.#now()
    if (now - s.lastSeen > this.#idleMs) {
      this.#byId.delete(id)
      return null
    }
    s.lastSeen = now
    // Most recently used last, so that the eviction above takes the oldest.
    this.#byId.delete(id)
    this.#byId.set(id, s)
    return s
  }

  end(id: string): void {
    this.#byId.delete(id)
  }

  #sweep(now: number): void {
    for (const [id, s] of this.#byId) if (now - s.lastSeen > this.#idleMs) this.#byId.delete(id)
  }
}

/** Compares two secrets in time that does not depend on where they differ (nor, through the hash, on their lengths). */
export function sameSecret(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s, 'utf8').digest()
  return timingSafeEqual(h(a), h(b))
}
