/**
 * Live updates of the open pages, by server-sent events (GET /events). Each message is the
 * whole of what the page's live regions show, rendered from one snapshot, never a delta:
 * a phone that missed messages is right again with the next one.
 *
 * Theory of operation
 * - The household says "something may have changed" (subscribe); changes within
 *   `coalesceMs` (50 ms, well inside the 200 ms a stage change may take to reach a page)
 *   become one snapshot and one message per page.
 * - Nothing queues for a slow phone: while a stream's socket has not drained, the newest
 *   message waits in one slot (an older one waiting there is dropped), and is written when
 *   it drains. A message equal to the last one written is not sent again.
 * - A comment line every `heartbeatMs` (25 s) keeps proxies and phones from closing an idle
 *   stream, and lets the server notice a phone that went away.
 * - `close()` ends every stream (the server's stop).
 */

import type { Timers } from '../../../io/timers.js'
import type { HouseholdService, HouseholdSnapshot } from '../model.js'

/** Where a stream's bytes go: an http.ServerResponse, or a fake in tests. */
export interface Sink {
  /** false: the socket's buffer is full; wait for 'drain'. */
  write(chunk: string): boolean
  once(event: 'drain' | 'close', listener: () => void): unknown
  end(): void
}

export interface LiveOptions {
  household: HouseholdService
  timers: Timers
  /** ms of changes gathered into one message. Default 50. */
  coalesceMs?: number
  /** ms between heartbeat comments. Default 25,000. */
  heartbeatMs?: number
}

/** One open page: how to render its message from a snapshot. */
export interface LiveClient {
  render: (snap: HouseholdSnapshot) => string
}

interface Stream {
  sink: Sink
  client: LiveClient
  last: string | null
  waiting: boolean
  pending: string | null
}

export class LiveUpdates {
  readonly #streams = new Set<Stream>()
  readonly #household: HouseholdService
  readonly #timers: Timers
  readonly #coalesceMs: number
  readonly #heartbeatMs: number
  #flushTimer: unknown = null
  #heartbeatTimer: unknown = null
  #unsubscribe: (() => void) | null = null
  #closed = false

  constructor(o: LiveOptions) {
    this.#household = o.household
    this.#timers = o.timers
    this.#coalesceMs = o.coalesceMs ?? 50
    this.#heartbeatMs = o.heartbeatMs ?? 25_000
  }

  get size(): number {
    return this.#streams.size
  }

  /** Starts a stream: the current state at once, then every change. */
  add(sink: Sink, client: LiveClient): void {
    if (this.#closed) {
      sink.end()
      return
    }
    const stream: Stream = { sink, client, last: null, waiting: false, pending: null }
    this.#streams.add(stream)
    sink.once('close', () => this.#remove(stream))
    // Tell EventSource to wait 3 s before reconnecting (its default on some phones is 0.5 s).
    this.#write(stream, 'retry: 3000\n\n')
    this.#send(stream, client.render(this.#household.snapshot()))
    if (this.#unsubscribe === null) this.#unsubscribe = this.#household.subscribe(() => this.#changed())
    if (this.#heartbeatTimer === null) this.#scheduleHeartbeat()
  }

  /** Ends every stream and stops listening. */
  close(): void {
    this.#closed = true
    for (const s of [...this.#streams]) {
      this.#remove(s)
      s.sink.end()
    }
  }

  #remove(stream: Stream): void {
    this.#streams.delete(stream)
    if (this.#streams.size > 0) return
    this.#unsubscribe?.()
    this.#unsubscribe = null
    if (this.#flushTimer !== null) this.#timers.clearTimeout(this.#flushTimer)
    if (this.#heartbeatTimer !== null) this.#timers.clearTimeout(this.#heartbeatTimer)
    this.#flushTimer = null
    this.#heartbeatTimer = null
  }

  #changed(): void {
    if (this.#flushTimer !== null || this.#streams.size === 0) return
    this.#flushTimer = this.#timers.setTimeout(() => {
      this.#flushTimer = null
      this.#flush()
    }, this.#coalesceMs)
  }

  #flush(): void {
    const snap = this.#household.snapshot()
    for (const s of this.#streams) this.#send(s, s.client.render(snap))
  }

  #scheduleHeartbeat(): void {
    this.#heartbeatTimer = this.#timers.setTimeout(() => {
      for (const s of this.#streams) if (!s.waiting) this.#write(s, ': heartbeat\n\n')
      this.#scheduleHeartbeat()
    }, this.#heartbeatMs)
  }

  #send(stream: Stream, message: string): void {
    if (message === stream.last) return
    if (stream.waiting) {
      // The older message is dropped: the newest says all of it.
      stream.pending = message
      return
    }
    stream.last = message
    this.#write(stream, message)
  }

  #write(stream: Stream, chunk: string): void {
    if (stream.sink.write(chunk)) return
    stream.waiting = true
    stream.sink.once('drain', () => {
      stream.waiting = false
      const next = stream.pending
      stream.pending = null
      if (next !== null && this.#streams.has(stream)) this.#send(stream, next)
    })
  }
}

/** One server-sent event carrying `data` (JSON without line breaks). */
export function sseMessage(data: unknown): string {
  return `event: update\ndata: ${JSON.stringify(data)}\n\n`
}
