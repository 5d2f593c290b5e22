/**
 * The uplink boundary: a message from the broker (topic and payload bytes) becomes a
 * typed UplinkMessage, or an error to report, here and nowhere else. No I/O, no state.
 *
 * - [CONSOLE-2] Untrusted data is narrowed once, here: every payload is decoded (CBOR or
 *   JSON by its first byte, [MQTT-4.3]; a batch zstd-compressed or bare, refused over
 *   1 MiB decoded, [MQTT-4.2]) and checked against the schemas of protocol/mqtt.ts. One
 *   that fails becomes an `error` event with a stable code and is dropped; no payload
 *   stops the console. [MQTT-4.9] An item whose only fault is a kind, class or stage this
 *   version does not know is kept and shown, marked `unknownKind` ([MQTT-6.1]): a newer
 *   gateway's alarm still gets its receipt. The items of a batch are narrowed one by one:
 *   one bad item does not lose the others [MQTT-4.2].
 */

import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { Batch, BatchDecodeError, Birth, GatewayStatusHead, Reply, TerminalStatus, UplinkEvent, decodeBatch, decodePayload } from '../protocol/mqtt.js'
import { assertNever, type PayloadErrorCode } from './errors.js'

/** The uplink topics of a gateway the console subscribes to [MQTT-4.8]. */
export const UPLINK = ['alert', 'event', 'batch', 'state', 'status', 'reply'] as const
export type UplinkTopic = (typeof UPLINK)[number]

/** The subscriptions that cover every gateway's uplink under `prefix`. */
export function uplinkFilters(prefix: string): string[] {
  return UPLINK.map((t) => `${prefix}/gw/+/${t}`)
}

/** A gateway status: its fixed fields checked [MQTT-3.7], the rest as published, to be read as far as it fits. */
export type PublishedStatus = Static<typeof GatewayStatusHead> & Record<string, unknown>

/** One item of `event` or of a batch, narrowed. */
export type Item = { kind: 'terminal-status'; status: TerminalStatus } | { kind: 'event'; event: UplinkEvent; unknownKind: boolean }

/** An item of a batch: narrowed, or what is wrong with it. */
export type BatchItem = { ok: true; item: Item } | { ok: false; message: string }

export type UplinkMessage =
  /** An alarm-class item; whatever its class says, the console handles it as an alarm. */
  | { topic: 'alert'; event: UplinkEvent; unknownKind: boolean }
  | { topic: 'event'; item: Item }
  | { topic: 'batch'; id: string; items: BatchItem[] }
  | { topic: 'state'; state: Birth }
  | { topic: 'status'; status: PublishedStatus }
  | { topic: 'reply'; reply: Reply }

export type Narrowed =
  | { kind: 'message'; gateway: string; message: UplinkMessage }
  /** Nothing to do: an empty retained state or status (cleared), a reply type of a later version. */
  | { kind: 'ignored' }
  | { kind: 'error'; code: PayloadErrorCode; message: string; gateway: string | null }

const checkEvent = Compile(UplinkEvent)
const checkStatus = Compile(TerminalStatus)
const checkBirth = Compile(Birth)
const checkReply = Compile(Reply)
const checkGatewayStatus = Compile(GatewayStatusHead)
// The same as UplinkEvent, but any text for kind, class and stage: an item of a newer
// version of the contract is kept and shown rather than dropped [MQTT-6.1].
const checkLenientEvent = Compile(Type.Object({ ...UplinkEvent.properties, class: Type.String(), kind: Type.String(), stage: Type.Optional(Type.String()) }, { additionalProperties: true }))
// A batch's own fields; its items are narrowed one by one.
const checkBatch = Compile(Type.Object({ ...Batch.properties, items: Type.Array(Type.Unknown()) }, { additionalProperties: true }))

type Validator = { Check(v: unknown): boolean; Errors(v: unknown): { instancePath: string; message: string }[] }

/** Null if the value passes, or what is wrong: `what`, the first bad field and why. */
function problem(validator: Validator, value: unknown, what: string): string | null {
  if (validator.Check(value)) return null
  const first = validator.Errors(value)[0]
  return `${what}: ${first ? `${first.instancePath || '/'} ${first.message}` : 'fails its schema'}`
}

/** Whether the value is an object (not null, not an array): the precondition of every schema. */
export const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** An UplinkEvent; `what` names it in the message. */
function narrowEvent(value: Record<string, unknown>, what: string): { ok: true; event: UplinkEvent; unknownKind: boolean } | { ok: false; message: string } {
  const strict = problem(checkEvent, value, what)
  if (strict !== null && !checkLenientEvent.Check(value)) return { ok: false, message: strict }
  return { ok: true, event: value as UplinkEvent, unknownKind: strict !== null }
}

/** An item of `event` or of a batch: a TerminalStatus or an UplinkEvent. `where` says which item of a batch it is. */
function narrowItem(value: Record<string, unknown>, where = ''): BatchItem {
  if (value.kind === 'status') {
    const bad = problem(checkStatus, value, `terminal status${where}`)
    return bad === null ? { ok: true, item: { kind: 'terminal-status', status: value as TerminalStatus } } : { ok: false, message: bad }
  }
  const e = narrowEvent(value, `event${where}`)
  return e.ok ? { ok: true, item: { kind: 'event', event: e.event, unknownKind: e.unknownKind } } : e
}

/** A decoded payload of `topic` as a typed message; or what is wrong with it; or null: nothing to do. */
function narrowValue(topic: UplinkTopic, value: Record<string, unknown>): UplinkMessage | { error: string } | null {
  switch (topic) {
    case 'alert': {
      const e = narrowEvent(value, 'alert')
      return e.ok ? { topic, event: e.event, unknownKind: e.unknownKind } : { error: e.message }
    }
    case 'event': {
      const n = narrowItem(value)
      return n.ok ? { topic, item: n.item } : { error: n.message }
    }
    case 'batch': {
      const bad = problem(checkBatch, value, 'batch')
      if (bad !== null) return { error: bad }
      const b = value as { id: string; items: unknown[] }
      const items = b.items.map((item, i): BatchItem => (isMap(item) ? narrowItem(item, ` (batch ${b.id} item ${i})`) : { ok: false, message: `batch ${b.id} item ${i}: not a map/object` }))
      return { topic, id: b.id, items }
    }
    case 'state': {
      const bad = problem(checkBirth, value, 'state')
      return bad === null ? { topic, state: value as Birth } : { error: bad }
    }
    case 'status': {
      // Beyond the five fixed fields nothing is promised [MQTT-3.7]: the handler reads what fits.
      const bad = problem(checkGatewayStatus, value, 'gateway status')
      return bad === null ? { topic, status: value as PublishedStatus } : { error: bad }
    }
    case 'reply': {
      // A reply type this version does not know is ignored [MQTT-3.8].
      if (typeof value.type === 'string' && value.type !== 'error' && value.v === 1) return null
      const bad = problem(checkReply, value, 'reply')
      return bad === null ? { topic, reply: value as Reply } : { error: bad }
    }
    default:
      return assertNever(topic)
  }
}

/**
 * Narrows one message from the broker [CONSOLE-2]: its topic must be
 * `<prefix>/gw/<gateway>/<uplink topic>` [MQTT-2.1], its payload decode and pass its
 * schema. `retained`: delivered with the retain flag, which only state and status may be
 * [MQTT-2.9]: on another topic it is refused (mosquitto's ACL cannot stop a gateway leaving
 * a retained alert, which would come again at every subscription). Never throws for what
 * came from the wire.
 */
export async function narrowUplink(prefix: string, topic: string, payload: Buffer, retained = false): Promise<Narrowed> {
  const rest = topic.startsWith(`${prefix}/gw/`) ? topic.slice(prefix.length + 4).split('/') : []
  const [gateway, what] = rest
  if (rest.length !== 2 || gateway === undefined || what === undefined || !(UPLINK as readonly string[]).includes(what)) {
    return { kind: 'error', code: 'CONSOLE_BAD_TOPIC', message: `topic ${topic} is not <prefix>/gw/<gateway>/<${UPLINK.join('|')}>`, gateway: null }
  }
  const kind = what as UplinkTopic
  const error = (code: PayloadErrorCode, message: string): Narrowed => ({ kind: 'error', code, message, gateway })
  if (retained && kind !== 'state' && kind !== 'status') {
    return error('CONSOLE_RETAINED', `a retained message on ${kind} (only state and status are retained, [MQTT-2.9]): ignored; clear it on the broker`)
  }
  if (payload.length === 0) {
    // An empty retained message clears state or status [MQTT-4.3]: not a message.
    return kind === 'state' || kind === 'status' ? { kind: 'ignored' } : error('CONSOLE_UNDECODABLE', `empty payload on ${kind}`)
  }
  let value: unknown
  try {
    value = kind === 'batch' ? await decodeBatch(payload) : decodePayload(payload)
  } catch (e) {
    // A batch's own error says what it is, and its code: too large, or undecodable.
    return error('CONSOLE_UNDECODABLE', e instanceof BatchDecodeError ? `${e.message} (${e.code})` : `${kind} of ${payload.length} bytes is not CBOR or JSON: ${(e as Error).message}`)
  }
  if (!isMap(value)) {
    return error('CONSOLE_BAD_SCHEMA', `${kind}: a payload must be a map/object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`)
  }
  const message = narrowValue(kind, value)
  if (message === null) return { kind: 'ignored' }
  if ('error' in message) return error('CONSOLE_BAD_SCHEMA', message.error)
  return { kind: 'message', gateway, message }
}
