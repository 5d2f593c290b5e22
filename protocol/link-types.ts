/**
 * The words of a link end's interface: the events it hands out, the options it is made
 * with and sent with, its counters, and what it tells of a peer.
 */

import type { WireErrorCode } from './errors.js'
import type { DataMessage, Hello, MessageType, NakReason, Welcome } from './messages.js'
import type { SessionState } from './session.js'

export type LinkEvent =
  /** A data message from the peer, in order, once. In manual mode, answer with accept()/defer(). */
  | { kind: 'message'; from: number; ref: number; message: DataMessage }
  /** The peer acknowledged a message we sent. */
  | { kind: 'delivered'; to: number; ref: number; message: DataMessage }
  /** The peer refused a message for good (NAK unsupported/invalid): it will not be retried. */
  | { kind: 'refused'; to: number; ref: number; message: DataMessage; reason: NakReason }
  /**
   * A queued message will never be sent: pushed out by a full queue (counted, never
   * silent), or replaced by a newer one with the same coalesce key.
   */
  | { kind: 'dropped'; to: number; ref: number; message: DataMessage; reason: 'queue-full' | 'superseded' | 'discarded' }
  /** A session opened (or re-opened: `restarted` when the peer's boot counter changed). */
  | { kind: 'session'; peer: number; state: SessionState; restarted: boolean; hello?: Hello; welcome?: Welcome }
  /** The peer stopped answering (after ATTEMPTS_BEFORE_DOWN tries) or answers again. */
  | { kind: 'liveness'; peer: number; up: boolean }
  /**
   * Garbage from the wire, counted under its code and dropped. `from` and `type` are there
   * when the CRC passed and the frame was addressed to this end (a HELLO that fails its
   * schema, say: the terminal behind it can never open a session, and the log must say why).
   */
  | { kind: 'frame-error'; code: WireErrorCode; detail: string; from?: number; type?: MessageType }

export interface SendOptions {
  /** Higher goes first; order is kept within one priority. Default 0. */
  priority?: number
  /**
   * A queued (not yet transmitted) message with the same key is replaced by this one:
   * e.g. `indicate:17` keeps only the newest stage of event 17, `heartbeat` the newest status.
   */
  coalesce?: string
  /** The time now (ms), if the link has not been told it since it last waited. */
  now?: number
}

export interface LinkOptions {
  /** Line rate in baud; sets the retransmission timeout. Default 9600. */
  baud?: number
  /** Uniform random in [0, 1) for retry jitter. Default Math.random. */
  random?: () => number
  /** Messages queued per peer before the oldest of the lowest priority is dropped. Default 64. */
  maxQueue?: number
  /**
   * 'auto': a received data message is acknowledged as soon as it is handed out.
   * 'manual': the application calls accept(ref) once it has made the message durable
   * (the gateway: after the SQLite commit), or defer(ref) to have the peer retry later.
   */
  ackMode?: 'auto' | 'manual'
}

export type LinkCounter =
  | WireErrorCode
  | 'framesIn'
  | 'framesOut'
  | 'bytesIn'
  | 'bytesOut'
  | 'retransmissions'
  | 'duplicates'
  | 'otherAddress'
  | 'noSession'
  | 'outOfSync'
  | 'dropped'
  | 'refused'
  | 'wrongDirection'

export interface PeerStatus {
  address: number
  state: SessionState
  up: boolean
  lastHeard: number | null
  queued: number
  inFlight: boolean
  hello: Hello | null
}
