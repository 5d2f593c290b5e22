/**
 * Link timing from the line rate. [LINK-6.1]
 *
 * UART 8N1 sends 10 bits per byte. The retransmission timeout must cover our largest
 * frame going out, the peer's ACK coming back, and the peer's processing: the gateway
 * acknowledges an EVENT only after it is on disk (an fsync on an SD card can take a few
 * hundred milliseconds).
 */

import { MAX_WIRE_FRAME } from './codec.js'

export const BITS_PER_BYTE = 10
/** Allowance for the peer's processing, including the gateway's durable write. */
export const PROCESSING_ALLOWANCE_MS = 250
/** Backoff doubles the timeout after each unanswered attempt, up to this factor. */
export const MAX_BACKOFF_FACTOR = 8
/** After this many unanswered attempts in a row the peer is reported down (we keep trying). */
export const ATTEMPTS_BEFORE_DOWN = 4
/** Random extra on each timeout, as a fraction: RS-485 senders that collided must not retry in step. */
export const JITTER_FRACTION = 0.25

/** Time to send `bytes` at `baud`, in milliseconds. */
export function wireTimeMs(bytes: number, baud: number): number {
  return (bytes * BITS_PER_BYTE * 1000) / baud
}

/** Base retransmission timeout at a baud rate: 9600 -> 778 ms, 115200 -> 294 ms. */
export function baseTimeoutMs(baud: number): number {
  return Math.ceil(2 * wireTimeMs(MAX_WIRE_FRAME, baud) + PROCESSING_ALLOWANCE_MS)
}

/** Timeout before attempt `attempt + 1` (attempt counts from 1), with jitter from `random` in [0, 1). */
export function retryTimeoutMs(baud: number, attempt: number, random: number): number {
  const factor = Math.min(2 ** Math.max(0, attempt - 1), MAX_BACKOFF_FACTOR)
  return Math.round(baseTimeoutMs(baud) * factor * (1 + JITTER_FRACTION * random))
}
