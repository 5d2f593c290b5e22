/**
 * Frames: bytes on the wire to typed frames and back. No I/O, no timers, no state beyond
 * the stream decoder's buffer.
 *
 *   wire:  0x00 | COBS( header | body | crc ) | 0x00            [LINK-2.1], [LINK-2.3]
 *   header: version(1) dst(1) src(1) type(1) seq(1)              [LINK-3.2]
 *   body:   a CBOR map with integer keys (empty for ACK)          [LINK-5.1]
 *   crc:    CRC-32C over header and body, little-endian          [LINK-3.1]
 */

import { Decoder, Encoder } from 'cbor-x'
import { Compile } from 'typebox/compile'
import { cobsDecode, cobsEncode, cobsMaxEncodedLength } from './cobs.js'
import { crc32c } from './crc32c.js'
import { LocalProtocolError, RemoteProtocolError, type WireErrorCode } from './errors.js'
import {
  CAPABILITIES,
  EVENT_KINDS,
  MESSAGE_BY_CODE,
  MESSAGE_BY_TYPE,
  NAK_REASONS,
  STAGES,
  URGENCIES,
  eventKindFromWire,
  type Capability,
  type EventKind,
  type Message,
  type MessageDef,
} from './messages.js'

/** Protocol version carried in the first header byte. [LINK-3.3] */
export const PROTOCOL_VERSION = 1
export const HEADER_LENGTH = 5
export const CRC_LENGTH = 4
/** Largest frame before COBS: header + body + CRC. [LINK-2.2] */
export const MAX_FRAME = 250
export const MAX_BODY = MAX_FRAME - HEADER_LENGTH - CRC_LENGTH
/** Largest COBS block of a frame; with the two delimiters a frame takes at most 253 bytes on the wire. */
export const MAX_ENCODED = cobsMaxEncodedLength(MAX_FRAME)
export const MAX_WIRE_FRAME = MAX_ENCODED + 2
export const GATEWAY_ADDRESS = 0
export const BROADCAST_ADDRESS = 0xff

export interface FrameHeader {
  version: number
  dst: number
  src: number
  /** The type byte as received (it may be a type this end does not know). */
  code: number
  seq: number
}

export interface Frame<M extends Message = Message> {
  dst: number
  src: number
  /** Sequence number of a data frame, or the seq being answered by ACK/NAK; 0 otherwise. */
  seq: number
  message: M
}

export type DecodeResult =
  | { kind: 'frame'; frame: Frame }
  /** `header` is present when the CRC passed, so its fields can be trusted. */
  | { kind: 'error'; error: RemoteProtocolError; header?: FrameHeader }

// cbor-x configured for plain RFC 8949 maps, no extensions: a C decoder must read what we write.
const cborEncoder = new Encoder({ useRecords: false, mapsAsObjects: false, variableMapSize: true, tagUint8Array: false, pack: false })
// An 8-byte integer decodes as a BigInt, which every schema refuses: no field of ours needs it.
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: false })

const validators = new Map([...MESSAGE_BY_TYPE].map(([type, def]) => [type, Compile(def.schema as never)]))

type EnumTable = Readonly<Record<string, number>>
const ENUM_FIELDS: Readonly<Record<string, EnumTable>> = { reason: NAK_REASONS, stage: STAGES, urgency: URGENCIES }

function invert(table: EnumTable): Map<number, string> {
  return new Map(Object.entries(table).map(([k, v]) => [v, k]))
}
const ENUM_FIELDS_INVERTED = Object.fromEntries(Object.entries(ENUM_FIELDS).map(([f, t]) => [f, invert(t)]))

/** Validates a message against its schema; the error names the first field that is wrong. */
export function checkMessage(message: unknown): string | null {
  const type = (message as { type?: unknown } | null)?.type
  const v = validators.get(type as never)
  if (!v) return `unknown message type ${JSON.stringify(type)}`
  if (v.Check(message)) return null
  const first = [...v.Errors(message)][0]
  return first ? `${first.instancePath || '/'} ${first.message}` : 'fails its schema'
}

/** JavaScript message to the wire map (integer keys, enums as integers). */
function toWireMap(def: MessageDef, message: Message): Map<number, unknown> {
  const named: Record<string, unknown> = { ...message }
  delete named.type
  if (message.type === 'EVENT') {
    const k = EVENT_KINDS[message.kind]
    delete named.kind
    named.code = k.code
    if (k.restore) named.restore = true
  }
  if (message.type === 'HELLO') {
    named.capabilities = message.capabilities.reduce((mask, c) => mask | CAPABILITIES[c], 0)
  }
  const map = new Map<number, unknown>()
  // Keys in ascending order: the same message always makes the same bytes (test vectors).
  for (const [name, key] of Object.entries(def.keys).sort((a, b) => a[1] - b[1])) {
    let value = named[name]
    if (value === undefined) continue
    const table = ENUM_FIELDS[name]
    if (table) value = table[value as string]
    map.set(key, value)
  }
  return map
}

/** Wire map to the JavaScript form, before schema check. Unknown keys are ignored. [LINK-5.2] */
function fromWireMap(def: MessageDef, map: Map<unknown, unknown>): Record<string, unknown> {
  const names = new Map(Object.entries(def.keys).map(([n, k]) => [k, n]))
  const out: Record<string, unknown> = { type: def.type }
  for (const [key, raw] of map) {
    const name = typeof key === 'number' ? names.get(key) : undefined
    if (name === undefined) continue
    let value: unknown = raw
    const inverted = ENUM_FIELDS_INVERTED[name]
    if (inverted) value = typeof raw === 'number' && inverted.has(raw) ? inverted.get(raw) : { unknownEnumValue: raw }
    out[name] = value
  }
  if (def.type === 'EVENT') {
    const { code, restore } = out
    delete out.code
    delete out.restore
    const kind: EventKind | undefined = typeof code === 'number' && (restore === undefined || typeof restore === 'boolean') ? eventKindFromWire(code, restore === true) : undefined
    out.kind = kind ?? { unknownEventCode: code, restore }
  }
  const caps = out.capabilities
  if (def.type === 'HELLO' && typeof caps === 'number' && Number.isInteger(caps) && caps >= 0 && caps <= 0xffff) {
    const mask = caps
    // Unknown bits are a newer terminal's capabilities: ignored, not an error. [LINK-5.3]
    out.capabilities = (Object.keys(CAPABILITIES) as Capability[]).filter((c) => (mask & CAPABILITIES[c]) !== 0)
  }
  return out
}

function checkByte(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new LocalProtocolError('LINK_BAD_ARGUMENT', `${name} must be an integer 0-255, got ${v}`)
}

/** Frame to its bytes before COBS (header, body, CRC). Throws LocalProtocolError on our own bad input. */
export function encodeFrame(frame: Frame): Uint8Array {
  checkByte('dst', frame.dst)
  checkByte('src', frame.src)
  checkByte('seq', frame.seq)
  const problem = checkMessage(frame.message)
  if (problem) throw new LocalProtocolError('LINK_BAD_MESSAGE', `${String(frame.message?.type)}: ${problem}`)
  const def = MESSAGE_BY_TYPE.get(frame.message.type)!
  const body = frame.message.type === 'ACK' ? new Uint8Array(0) : cborEncoder.encode(toWireMap(def, frame.message))
  const length = HEADER_LENGTH + body.length + CRC_LENGTH
  if (length > MAX_FRAME) {
    throw new LocalProtocolError('LINK_FRAME_TOO_LARGE', `${def.type} frame would be ${length} bytes, the limit is ${MAX_FRAME}: shorten the text or split it into parts`)
  }
  const raw = new Uint8Array(length)
  raw[0] = PROTOCOL_VERSION
  raw[1] = frame.dst
  raw[2] = frame.src
  raw[3] = def.code
  raw[4] = frame.seq
  raw.set(body, HEADER_LENGTH)
  const crc = crc32c(raw, 0, length - CRC_LENGTH)
  new DataView(raw.buffer, raw.byteOffset).setUint32(length - CRC_LENGTH, crc, true)
  return raw
}

/** Frame to wire bytes: leading delimiter, COBS block, trailing delimiter. [LINK-2.3] */
export function encodeWire(frame: Frame): Uint8Array {
  const block = cobsEncode(encodeFrame(frame))
  const out = new Uint8Array(block.length + 2)
  out.set(block, 1)
  return out
}

function fail(code: WireErrorCode, message: string, header?: FrameHeader, cause?: unknown): DecodeResult {
  const error = new RemoteProtocolError(code, message, cause === undefined ? undefined : { cause })
  return header ? { kind: 'error', error, header } : { kind: 'error', error }
}

/** Bytes before COBS to a frame, or the reason they are not one. Never throws. */
export function decodeFrame(raw: Uint8Array): DecodeResult {
  if (raw.length < HEADER_LENGTH + CRC_LENGTH) return fail('LINK_TOO_SHORT', `frame of ${raw.length} bytes is shorter than header and CRC (${HEADER_LENGTH + CRC_LENGTH})`)
  if (raw.length > MAX_FRAME) return fail('LINK_OVERSIZE', `frame of ${raw.length} bytes exceeds ${MAX_FRAME}`)
  const end = raw.length - CRC_LENGTH
  const got = new DataView(raw.buffer, raw.byteOffset, raw.length).getUint32(end, true)
  const want = crc32c(raw, 0, end)
  if (got !== want) return fail('LINK_BAD_CRC', `CRC-32C is ${hex32(got)}, the frame gives ${hex32(want)}`)
  const header: FrameHeader = { version: raw[0]!, dst: raw[1]!, src: raw[2]!, code: raw[3]!, seq: raw[4]! }
  if (header.version !== PROTOCOL_VERSION) return fail('LINK_BAD_VERSION', `protocol version ${header.version}, this end speaks ${PROTOCOL_VERSION}`, header)
  const def = MESSAGE_BY_CODE.get(header.code)
  if (!def) return fail('LINK_UNKNOWN_TYPE', `unknown message type 0x${header.code.toString(16).padStart(2, '0')}`, header)
  const body = raw.subarray(HEADER_LENGTH, end)
  let message: Record<string, unknown>
  if (def.type === 'ACK') {
    if (body.length !== 0) return fail('LINK_BAD_HEADER', `ACK carries a ${body.length}-byte body; it must have none`, header)
    message = { type: 'ACK' }
  } else {
    if (body.length === 0) return fail('LINK_BAD_CBOR', `${def.type} has an empty body; it must be a CBOR map`, header)
    let decoded: unknown
    try {
      decoded = cborDecoder.decode(body)
    } catch (cause) {
      return fail('LINK_BAD_CBOR', `${def.type} body is not one CBOR item: ${(cause as Error).message}`, header, cause)
    }
    if (!(decoded instanceof Map)) return fail('LINK_BAD_CBOR', `${def.type} body is not a CBOR map`, header)
    message = fromWireMap(def, decoded)
  }
  const problem = checkMessage(message)
  if (problem) return fail('LINK_BAD_SCHEMA', `${def.type}: ${problem}`, header)
  return { kind: 'frame', frame: { dst: header.dst, src: header.src, seq: header.seq, message: message as unknown as Message } }
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`
}

/**
 * Streaming decoder: feed it whatever the serial port gives, in any chunks; take frames
 * and errors out in order. Memory is bounded by MAX_ENCODED whatever arrives: a run of
 * bytes with no delimiter is reported once as LINK_OVERSIZE and skipped up to the next
 * 0x00. [LINK-2.4]
 */
export class FrameDecoder {
  readonly #buffer = new Uint8Array(MAX_ENCODED)
  #length = 0
  #discarding = false
  readonly #results: DecodeResult[] = []

  push(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!
      if (b === 0) {
        if (this.#discarding) this.#discarding = false
        else if (this.#length > 0) this.#results.push(this.#decodeBlock())
        this.#length = 0
        continue
      }
      if (this.#discarding) continue
      if (this.#length === MAX_ENCODED) {
        this.#results.push(fail('LINK_OVERSIZE', `no delimiter within ${MAX_ENCODED} bytes; skipping to the next 0x00`))
        this.#discarding = true
        this.#length = 0
        continue
      }
      this.#buffer[this.#length++] = b
    }
  }

  /** The next frame or error, or null when more bytes are needed. */
  next(): DecodeResult | null {
    return this.#results.shift() ?? null
  }

  /** Bytes held waiting for a delimiter (for tests of the memory bound). */
  get buffered(): number {
    return this.#length
  }

  #decodeBlock(): DecodeResult {
    let raw: Uint8Array
    try {
      raw = cobsDecode(this.#buffer.subarray(0, this.#length))
    } catch (e) {
      if (e instanceof RemoteProtocolError) return { kind: 'error', error: e }
      throw e
    }
    // decodeFrame keeps views into `raw` only for the call; copy so the buffer can be reused.
    return decodeFrame(raw.slice())
  }
}
