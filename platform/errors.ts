/**
 * The console's errors [STYLE 6, 7]. Misuse of its API (an option out of range, an answer
 * to a case it has not seen) throws a ConsoleError; what was wrong with something from the
 * wire is never thrown: it becomes an `error` event with a PayloadErrorCode, and the
 * console goes on.
 */

export type ConsoleErrorCode =
  /** An option of startConsole (or of publishBroadcast, publishWithdraw) is out of range (a bug of the caller). */
  | 'CONSOLE_BAD_OPTION'
  /** acknowledge/dispatch/resolve named a case (alarm or request) this console has not seen. */
  | 'CONSOLE_UNKNOWN_ALERT'
  /** The case is already at that stage or further ([CONSOLE-6]). */
  | 'CONSOLE_STAGE_PASSED'
  /** The command would fail its schema (text too long, bad target ...); the message names the field. */
  | 'CONSOLE_BAD_COMMAND'
  /** The console was closed. */
  | 'CONSOLE_CLOSED'
  /** The broker did not acknowledge a publication in time, or the client failed. */
  | 'CONSOLE_NOT_CONFIRMED'

export class ConsoleError extends Error {
  override readonly name = 'ConsoleError'
  constructor(
    readonly code: ConsoleErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** Codes of `error` events: what was wrong with something that came from the wire. */
export type PayloadErrorCode =
  /** Not CBOR, not JSON (for a batch: neither zstd nor a map, or over 1 MiB decoded), or empty where a message was expected. */
  | 'CONSOLE_UNDECODABLE'
  /** Decoded, but not what the contract says; the message names the first bad field. */
  | 'CONSOLE_BAD_SCHEMA'
  /** A topic outside the layout of [MQTT-2.1]. */
  | 'CONSOLE_BAD_TOPIC'
  /** A retained message on a topic other than state and status: ignored, no receipt [MQTT-2.9]. */
  | 'CONSOLE_RETAINED'
  /** A command the console issued did not reach the broker. */
  | 'CONSOLE_PUBLISH_FAILED'
  /** The broker refused a subscription. */
  | 'CONSOLE_SUBSCRIBE_REFUSED'
  /** The console failed on a valid payload (a bug); reported, and the console goes on. */
  | 'CONSOLE_INTERNAL'

export function assertNever(x: never): never {
  throw new Error(`unexpected ${String(x)}`)
}
