/**
 * What a link end knows of one peer: its session, its send queue, the frame in flight and
 * the frame being made durable, its liveness. The queue's order and its drop policy live
 * here (PROTOCOL.md, "Send queue"); the link end (link-end.ts) moves frames and reports
 * events.
 */

import type { Frame } from './codec.js'
import type { DataMessage, Hello } from './messages.js'
import type { SessionState } from './session.js'
import type { PeerStatus } from './link-types.js'

export interface Outgoing {
  ref: number
  message: DataMessage
  priority: number
  coalesce: string | undefined
}

export interface InFlight extends Outgoing {
  seq: number
  attempts: number
  deadline: number
  /** The peer answered NAK busy and nothing was sent since: the seq is free for a more urgent message. */
  busy?: boolean
}

export class Peer {
  state: SessionState = 'closed'
  txSeq = 0
  rxExpected = 0
  queue: Outgoing[] = []
  inflight: InFlight | null = null
  /** The ACK or NAK we gave the last data frame, replayed if it comes again. */
  lastAnswer: Frame | null = null
  /** A data frame handed to the application and not yet accepted. */
  awaiting: { seq: number; ref: number } | null = null
  /** Attempts in a row without any valid frame from the peer. */
  unanswered = 0
  /**
   * The peer has sent a data frame, an ACK or a NAK in the open session: proof that it has
   * the session, so a HELLO from it now is a new start, even if it repeats the one that
   * opened the session (a new unit, fresh from the factory like the old one). [LINK-7.2]
   */
  active = false
  up = true
  lastHeard: number | null = null
  /** The terminal's (boot counter, session number) naming the current session. */
  peerBoot: number | null = null
  peerSession: number | null = null
  hello: Hello | null = null
  // Terminal side: the HELLO handshake's own retry state.
  helloAttempts = 0
  helloDeadline: number | null = null
  constructor(readonly address: number) {}

  status(): PeerStatus {
    return {
      address: this.address,
      state: this.state,
      up: this.up,
      lastHeard: this.lastHeard,
      queued: this.queue.length,
      inFlight: this.inflight !== null,
      hello: this.hello,
    }
  }

  /**
   * Makes room for a new message: takes out of the queue the message it supersedes (the
   * same coalesce key) or, when the queue holds `maxQueue`, the one a full queue drops.
   * Returns what must go, which may be `item` itself (then it is not to be queued), or null.
   */
  makeRoom(item: Outgoing, maxQueue: number): { gone: Outgoing; reason: 'superseded' | 'queue-full' } | null {
    const same = item.coalesce === undefined ? -1 : this.queue.findIndex((q) => q.coalesce === item.coalesce)
    if (same >= 0) {
      const [old] = this.queue.splice(same, 1)
      return { gone: old!, reason: 'superseded' }
    }
    if (this.queue.length < maxQueue) return null
    // Drop the oldest of the lowest priority. The queue is sorted by priority, oldest
    // first within one, so that is the first of the last priority group, unless the
    // new message is lower still.
    const lowest = this.queue.at(-1)!.priority
    const victim = item.priority < lowest ? item : this.queue.find((q) => q.priority === lowest)!
    if (victim !== item) this.queue.splice(this.queue.indexOf(victim), 1)
    return { gone: victim, reason: 'queue-full' }
  }

  /** Stable insert by priority: after (a new message) or before (one coming back) those of its priority. */
  requeue(item: Outgoing, where: 'before' | 'after' = 'before'): void {
    let at = this.queue.length
    while (at > 0 && (where === 'after' ? this.queue[at - 1]!.priority < item.priority : this.queue[at - 1]!.priority <= item.priority)) at--
    this.queue.splice(at, 0, item)
  }

  /**
   * A session opens or ends: the frame in flight goes back to the head of the queue and the
   * sequence numbers start again. Returns the ref of the data message that was awaiting
   * accept(), which no longer can be, or null.
   */
  resetSequences(): number | null {
    this.active = false
    if (this.inflight) {
      const { seq: _s, attempts: _a, deadline: _d, busy: _b, ...item } = this.inflight
      this.queue.unshift(item)
      this.inflight = null
    }
    const forgotten = this.awaiting?.ref ?? null
    this.awaiting = null
    this.txSeq = 0
    this.rxExpected = 0
    this.lastAnswer = null
    return forgotten
  }
}
