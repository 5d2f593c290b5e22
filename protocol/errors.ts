/**
 * Two roots of error, after h11's LocalProtocolError / RemoteProtocolError:
 *
 * - {@link LocalProtocolError}: our own code misused the API (sent a message that
 *   fails its schema, fed a negative time). That is a bug: we throw.
 * - {@link RemoteProtocolError}: garbage from the wire or the peer. That is expected on
 *   a long serial cable: it is counted under its stable `code`, dropped, and the decoder
 *   resynchronises. It is never thrown out of the codec's streaming API; it is handed
 *   out as a value.
 *
 * Every code is a stable string: logs, counters and the spec ([LINK-9.1]) use the same word.
 */

/** Wire error codes. [LINK-9.1] Stable: never renamed, only added to. */
export const WIRE_ERROR_CODES = [
  /** COBS decoding failed (a code byte points past the end of the frame). */
  'LINK_BAD_COBS',
  /** No delimiter within the maximum encoded frame length. */
  'LINK_OVERSIZE',
  /** Decoded frame shorter than header plus CRC. */
  'LINK_TOO_SHORT',
  /** CRC-32C over the frame does not match. */
  'LINK_BAD_CRC',
  /** Version byte is not one this end speaks. */
  'LINK_BAD_VERSION',
  /** Type byte is not a known message type. */
  'LINK_UNKNOWN_TYPE',
  /** Body is not one well-formed CBOR item (truncated, trailing bytes, not a map). */
  'LINK_BAD_CBOR',
  /** Body is CBOR but fails the message's schema. */
  'LINK_BAD_SCHEMA',
  /** Header fields inconsistent with the type (e.g. a body on an ACK). */
  'LINK_BAD_HEADER',
] as const

export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number]

export class ProtocolError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** Our own misuse of the protocol API. A bug: fix the caller. */
export class LocalProtocolError extends ProtocolError {}

/** Garbage from the wire or a peer that broke the rules. Expected; counted, not fatal. */
export class RemoteProtocolError extends ProtocolError {
  declare readonly code: WireErrorCode
  constructor(code: WireErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}

export function assertNever(x: never, what = 'value'): never {
  throw new LocalProtocolError('INTERNAL', `unexpected ${what}: ${JSON.stringify(x)}`)
}
