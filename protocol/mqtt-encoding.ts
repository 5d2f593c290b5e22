/** Payload encoding [MQTT-4.3]: CBOR or JSON, told apart by the first byte. */

import { Decoder, Encoder } from 'cbor-x'

export type Encoding = 'cbor' | 'json'

// Maps with text keys, no cbor-x extensions: what any CBOR decoder reads as a plain map.
const cborEncoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false })
// 8-byte integers (UNIX ms as other encoders write them) decode as numbers, not BigInt.
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true, int64AsNumber: true } as ConstructorParameters<typeof Decoder>[0])

/**
 * Integers beyond 32 bits (UNIX milliseconds) as BigInt, so that cbor-x writes them as
 * CBOR unsigned integers (0x1b) rather than doubles: a platform decoder then reads an
 * integer, as the schema says.
 */
function widenIntegers(v: unknown): unknown {
  if (typeof v === 'number') return Number.isSafeInteger(v) && (v > 0xffffffff || v < -0x100000000) ? BigInt(v) : v
  if (Array.isArray(v)) return v.map(widenIntegers)
  // Bytes (the body and signature of a signed command, [MQTT-5.12]) stay a CBOR byte string.
  if (v instanceof Uint8Array) return v
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, widenIntegers(x)]))
  return v
}

export function encodePayload(value: unknown, encoding: Encoding): Buffer {
  return encoding === 'json' ? Buffer.from(JSON.stringify(value)) : Buffer.from(cborEncoder.encode(widenIntegers(value)))
}

/**
 * Decodes a payload in either encoding. Every payload of this contract is a map, so a
 * first byte that is a CBOR map head (0xa0-0xbf) means CBOR, and anything else is read as
 * JSON (a JSON text never starts with those bytes). Throws on bytes that are neither.
 */
export function decodePayload(payload: Uint8Array): unknown {
  const first = payload[0]
  if (first !== undefined && first >= 0xa0 && first <= 0xbf) return cborDecoder.decode(payload)
  return JSON.parse(Buffer.from(payload).toString('utf8'))
}
