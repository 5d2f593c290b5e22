/**
 * The flags of `steppelink console`, `steppelink console broadcast` and `steppelink
 * console key-rotate`, checked with the schemas of platform/options.ts, the same that
 * startConsole, publishBroadcast, publishWithdraw and publishKeyRotate check their options with: a range is written once, and a flag out of
 * it is said as `--flag must be <what the schema says>, got '<the text given>'`.
 */

import type { Static, TObject } from 'typebox'
import { optionProblem } from '../platform/index.js'
import { UsageError } from './usage.js'

/** A flag, and the option it sets. */
export interface Flag {
  /** Without its dashes; absent for an option from a positional argument. */
  flag?: string
  /** The option of the schema. */
  key: string
  /** A number: its text is read as one, times `scale` (default 1); `expected` says what it must be, in the flag's unit, when that is not the option's. */
  number?: { scale?: number; expected?: string }
  /** The whole message when it is missing, if not `--flag is required: <what it is>`. */
  missing?: string
}

/** The flags of `steppelink console`, in the order of the help (the password comes from the environment). */
/** How the console and `console broadcast` alike reach the broker and sign what they send. */
const CONNECTION_FLAGS: readonly Flag[] = [
  { flag: 'username', key: 'username' },
  { flag: 'ca', key: 'ca' },
  { flag: 'cert', key: 'cert' },
  { flag: 'key', key: 'key' },
  { flag: 'servername', key: 'servername' },
  { flag: 'signing-key', key: 'signingKey' },
]

export const CONSOLE_FLAGS: readonly Flag[] = [
  { flag: 'broker', key: 'broker', missing: "--broker is required: the URL of the platform's MQTT broker, e.g. --broker mqtt://127.0.0.1:1883" },
  { flag: 'prefix', key: 'prefix' },
  { flag: 'id', key: 'id' },
  { flag: 'ack', key: 'ack' },
  { flag: 'operator', key: 'operator' },
  { flag: 'dispatch-after', key: 'dispatchAfterS', number: {} },
  { flag: 'resolve-after', key: 'resolveAfterS', number: {} },
  { flag: 'unit', key: 'unit' },
  { flag: 'eta', key: 'etaMin', number: {} },
  ...CONNECTION_FLAGS,
]

/** What `console broadcast` and `console broadcast --withdraw` share: how they reach the broker. */
const ONE_COMMAND_FLAGS: readonly Flag[] = [
  { flag: 'broker', key: 'broker', missing: CONSOLE_FLAGS[0]!.missing! },
  { flag: 'to', key: 'to' },
  { flag: 'prefix', key: 'prefix' },
  { flag: 'id', key: 'id' },
  { flag: 'timeout', key: 'timeoutMs', number: { scale: 1000, expected: 'seconds above 0' } },
  ...CONNECTION_FLAGS,
]

export const BROADCAST_FLAGS: readonly Flag[] = [
  ...ONE_COMMAND_FLAGS,
  { flag: 'urgency', key: 'urgency' },
  { key: 'text', missing: 'the text of the broadcast is missing: give it as the last argument, in quotes' },
  { flag: 'expires-in', key: 'expiresInS', number: {} },
  { flag: 'broadcast-id', key: 'broadcastId', number: {} },
]

export const WITHDRAW_FLAGS: readonly Flag[] = [...ONE_COMMAND_FLAGS, { flag: 'withdraw', key: 'broadcast', number: {} }]

/** `console key-rotate` [MQTT-5.13]: the signing key is required there (an unsigned key-rotate is refused). */
export const KEY_ROTATE_FLAGS: readonly Flag[] = [
  ...ONE_COMMAND_FLAGS.map((f) =>
    f.key === 'signingKey' ? { ...f, missing: '--signing-key is required: a key-rotate must be signed with the key the gateways take now (the current platform.key)' } : f,
  ),
  { flag: 'next-key', key: 'nextKey', missing: "--next-key is required: the new key's id (16 hex digits), or its public key file (platform.pub of the new pair)" },
  { flag: 'valid-for', key: 'validForS', number: {} },
]

/** A number flag's text as a number; text that is no number stays text, for the schema to refuse. */
function numberOf(raw: string, scale = 1): number | string {
  const n = Number(raw)
  return raw.trim() === '' || !Number.isFinite(n) ? raw : n * scale
}

/**
 * The options the flags (`values`, as parseArgs gives them) set, with `given` (options
 * from elsewhere: a positional, the environment), checked against `schema`. Throws a
 * UsageError naming the flag for the first problem, in the schema's order.
 */
export function optionsFromFlags<S extends TObject>(schema: S, flags: readonly Flag[], values: Record<string, unknown>, given: Record<string, unknown> = {}): Static<S> {
  const options: Record<string, unknown> = {}
  for (const f of flags) {
    const raw = f.flag === undefined ? undefined : values[f.flag]
    if (typeof raw === 'string') options[f.key] = f.number ? numberOf(raw, f.number.scale) : raw
  }
  for (const [key, value] of Object.entries(given)) if (value !== undefined) options[key] = value
  const p = optionProblem(schema, options)
  if (p === null) return options as Static<S>
  const f = flags.find((x) => x.key === p.key)
  if (p.kind === 'missing') throw new UsageError(f?.missing ?? `--${f?.flag ?? p.key} is required: ${p.expected}`)
  if (f?.flag === undefined) throw new UsageError(`${p.key} must be ${p.expected}`)
  const raw = String(values[f.flag])
  throw new UsageError(`--${f.flag} must be ${f.number?.expected ?? p.expected}, got ${p.kind === 'length' ? [...raw].length : `'${raw}'`}`)
}
