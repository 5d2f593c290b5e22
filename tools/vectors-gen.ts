// biome-ignore-all format: the vectors are byte tables laid out by hand, one frame to a line
/**
 * Writes protocol/vectors/*.json from the frames below: `npm run vectors`.
 *
 * Each entry is { name, hex, message } where hex is the bytes on the wire (both 0x00
 * delimiters included) and message is the frame { dst, src, seq, message } it decodes to,
 * or null with `error` naming the stable error code. `decodeOnly` marks entries that an
 * encoder does not produce (unknown keys a newer peer may send). The tests check every
 * entry in both directions; a firmware implementation should pass them all.
 */

import { writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Encoder } from 'cbor-x'
import { cobsEncode } from '../protocol/cobs.js'
import { crc32c } from '../protocol/crc32c.js'
import { encodeWire, type Frame } from '../protocol/codec.js'
import type { WireErrorCode } from '../protocol/errors.js'
import { EVENT_KIND_NAMES, STAGES, type Stage } from '../protocol/messages.js'

export interface Vector {
  name: string
  hex: string
  message: Frame | null
  error?: WireErrorCode
  decodeOnly?: boolean
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const valid = (name: string, frame: Frame): Vector => ({ name, hex: hex(encodeWire(frame)), message: frame })

/** A frame built byte by byte with a correct CRC: for cases our encoder refuses to make. */
function raw(header: number[], body: Uint8Array | number[]): Uint8Array {
  const bytes = new Uint8Array([...header, ...body, 0, 0, 0, 0])
  new DataView(bytes.buffer).setUint32(bytes.length - 4, crc32c(bytes, 0, bytes.length - 4), true)
  return bytes
}
const wire = (frame: Uint8Array) => new Uint8Array([0, ...cobsEncode(frame), 0])
const cbor = new Encoder({ useRecords: false, mapsAsObjects: false, variableMapSize: true })
const map = (entries: [unknown, unknown][]) => cbor.encode(new Map(entries))
const invalid = (name: string, error: WireErrorCode, bytes: Uint8Array): Vector => ({ name, hex: hex(bytes), message: null, error })

const T = 3 // terminal address used in the examples
const hello: Frame = {
  dst: 0,
  src: T,
  seq: 0,
  message: { type: 'HELLO', terminal: 'SL-T-000123', firmware: '1.4.2', capabilities: ['buzzer', 'battery', 'mains-sense', 'keys'], boot: 17, lastEvent: 41, session: 0 },
}

export function linkControl(): Vector[] {
  return [
    valid('ACK from gateway for seq 5', { dst: T, src: 0, seq: 5, message: { type: 'ACK' } }),
    valid('ACK from terminal for seq 255', { dst: 0, src: T, seq: 255, message: { type: 'ACK' } }),
    valid('NAK no-session', { dst: T, src: 0, seq: 9, message: { type: 'NAK', reason: 'no-session' } }),
    valid('NAK busy', { dst: T, src: 0, seq: 9, message: { type: 'NAK', reason: 'busy' } }),
    valid('NAK unsupported', { dst: 0, src: T, seq: 2, message: { type: 'NAK', reason: 'unsupported' } }),
    valid('NAK invalid', { dst: 0, src: T, seq: 2, message: { type: 'NAK', reason: 'invalid' } }),
    valid('HELLO after boot 17', hello),
    valid('HELLO, second handshake of boot 18, no capabilities', {
      dst: 0,
      src: 200,
      seq: 0,
      message: { type: 'HELLO', terminal: 'SL-T-9', firmware: '0.9', capabilities: [], boot: 18, lastEvent: 0, session: 1 },
    }),
    valid('WELCOME answering HELLO', { dst: T, src: 0, seq: 0, message: { type: 'WELCOME', gateway: 'gw-xlg-0042', boot: 1203, echo: 17, echoSession: 0 } }),
    valid('WELCOME announcement (broadcast)', { dst: 255, src: 0, seq: 0, message: { type: 'WELCOME', gateway: 'gw-xlg-0042', boot: 1204 } }),
  ]
}

export function terminalMessages(): Vector[] {
  const events = EVENT_KIND_NAMES.map((kind, i) =>
    valid(`EVENT ${kind}`, { dst: 0, src: T, seq: i, message: { type: 'EVENT', number: 42 + i, kind, boot: 17, uptime: 3600 + i } }),
  )
  return [
    ...events,
    valid('EVENT emergency relayed for neighbour household 7, with time', {
      dst: 0,
      src: T,
      seq: 200,
      message: { type: 'EVENT', number: 4_000_000_000, kind: 'emergency', user: 7, boot: 70_000, uptime: 86_400, time: 1_795_000_000 },
    }),
    valid('HEARTBEAT minimal', { dst: 0, src: T, seq: 13, message: { type: 'HEARTBEAT', uptime: 60, mains: true } }),
    valid('HEARTBEAT full, on battery in the cold', {
      dst: 0,
      src: T,
      seq: 14,
      message: { type: 'HEARTBEAT', uptime: 172_800, mains: false, battery: 37, millivolts: 3610, signal: -97, pending: 2, temperature: -31 },
    }),
    valid('DISPLAY_READ', { dst: 0, src: T, seq: 15, message: { type: 'DISPLAY_READ', id: 9001 } }),
    valid('DISPLAY_READ of a replaced text (revision 2)', { dst: 0, src: T, seq: 16, message: { type: 'DISPLAY_READ', id: 9001, revision: 2 } }),
  ]
}

export function gatewayMessages(): Vector[] {
  const stages = (Object.keys(STAGES) as Stage[]).map((stage, i) =>
    valid(`INDICATE ${stage}`, { dst: T, src: 0, seq: i, message: { type: 'INDICATE', event: 42, stage } }),
  )
  return [
    ...stages,
    valid('INDICATE dispatched with text and ETA', {
      dst: T,
      src: 0,
      seq: 7,
      message: { type: 'INDICATE', event: 42, stage: 'dispatched', text: '110巡逻车已出发', eta: 40 },
    }),
    valid('INDICATE acknowledged with the longest text (40 Chinese characters, 120 bytes)', {
      dst: T,
      src: 0,
      seq: 8,
      message: { type: 'INDICATE', event: 4_294_967_295, stage: 'acknowledged', text: '旗公安局指挥中心已接警，巡逻车与派出所民警正赶往你家，请保持电话畅通并留在屋内。', eta: 65_535 },
    }),
    valid('DISPLAY urgent storm warning (Chinese)', {
      dst: T,
      src: 0,
      seq: 8,
      message: { type: 'DISPLAY', id: 9001, text: '白灾预警：今夜暴雪，请把牲畜赶回棚圈。', urgency: 'urgent', expires: 1_795_086_400 },
    }),
    valid('DISPLAY part 2 of 3 (Mongolian script)', {
      dst: T,
      src: 0,
      seq: 9,
      message: { type: 'DISPLAY', id: 9002, text: 'ᠴᠠᠰᠤ ᠶᠢᠨ ᠠᠶᠤᠯ', urgency: 'warning', part: 2, parts: 3 },
    }),
    valid('DISPLAY info', { dst: T, src: 0, seq: 10, message: { type: 'DISPLAY', id: 1, text: 'Vet visit Tuesday', urgency: 'info' } }),
    valid('DISPLAY replacing the text of 9001 (revision 2)', { dst: T, src: 0, seq: 16, message: { type: 'DISPLAY', id: 9001, text: '解除预警：暴风雪已过去。', urgency: 'info', revision: 2 } }),
    valid('DISPLAY withdrawing 9002 (expires 0) [LINK-5.8]', { dst: T, src: 0, seq: 17, message: { type: 'DISPLAY', id: 9002, text: 'withdrawn', urgency: 'warning', expires: 0, revision: 1 } }),
    valid('TIME synchronised', { dst: T, src: 0, seq: 11, message: { type: 'TIME', unix: 1_795_000_000, estimate: false } }),
    valid('TIME estimate', { dst: T, src: 0, seq: 12, message: { type: 'TIME', unix: 1_795_000_000, estimate: true } }),
    valid('CONFIG heartbeat and buzzer', { dst: T, src: 0, seq: 13, message: { type: 'CONFIG', heartbeat: 300, buzzer: false } }),
    valid('CONFIG empty', { dst: T, src: 0, seq: 14, message: { type: 'CONFIG' } }),
    valid('PING', { dst: T, src: 0, seq: 15, message: { type: 'PING' } }),
  ]
}

export function compat(): Vector[] {
  const frame: Frame = { dst: 0, src: T, seq: 1, message: { type: 'HEARTBEAT', uptime: 60, mains: true } }
  return [
    {
      name: 'HEARTBEAT with an unknown key 20 (newer firmware): ignored [LINK-5.2]',
      hex: hex(wire(raw([1, 0, T, 0x21, 1], map([[0, 60], [1, true], [20, 'x']])))),
      message: frame,
      decodeOnly: true,
    },
    {
      name: 'HELLO with an unknown capability bit 15: ignored [LINK-5.3]',
      hex: hex(wire(raw([1, 0, T, 0x10, 0], map([[0, 'SL-T-1'], [1, '2.0'], [2, 0x8002], [3, 1], [4, 0], [5, 0]])))),
      message: { dst: 0, src: T, seq: 0, message: { type: 'HELLO', terminal: 'SL-T-1', firmware: '2.0', capabilities: ['buzzer'], boot: 1, lastEvent: 0, session: 0 } },
      decodeOnly: true,
    },
    {
      name: 'INDICATE with unknown keys and values of every CBOR kind (a newer gateway): ignored [LINK-5.1], [LINK-5.2]',
      hex: hex(
        wire(
          raw([1, T, 0, 0x30, 2], [
            0xab, // map of 11 pairs, known keys between unknown ones
            0x00, 0x18, 0x2a, // 0 event: 42
            0x0e, 0x39, 0x01, 0xf3, // 14: -500
            0x01, 0x04, // 1 stage: acknowledged
            0x18, 0x18, 0x42, 0xca, 0xfe, // 24 (a key past 23): byte string cafe
            0x64, 0x6e, 0x6f, 0x74, 0x65, 0x61, 0x78, // "note" (a text key): "x"
            0x20, 0xf5, // -1 (a negative key): true
            0x0f, 0x83, 0x01, 0x61, 0x79, 0x81, 0x02, // 15: [1, "y", [2]]
            0x10, 0xa1, 0x01, 0xf6, // 16: {1: null}
            0x11, 0xc1, 0x1a, 0x69, 0x55, 0xb9, 0x00, // 17: tag 1 (a date), 1767225600
            0x12, 0xf9, 0x3e, 0x00, // 18: 1.5, a half-precision float
            0x02, 0x63, 0x42, 0x61, 0x6f, // 2 text: "Bao"
          ]),
        ),
      ),
      message: { dst: T, src: 0, seq: 2, message: { type: 'INDICATE', event: 42, stage: 'acknowledged', text: 'Bao' } },
      decodeOnly: true,
    },
    {
      name: 'EVENT with keys out of order: accepted',
      hex: hex(wire(raw([1, 0, T, 0x20, 4], map([[5, 10], [4, 2], [1, 101], [0, 7]])))),
      message: { dst: 0, src: T, seq: 4, message: { type: 'EVENT', number: 7, kind: 'emergency', boot: 2, uptime: 10 } },
      decodeOnly: true,
    },
  ]
}

export function errors(): Vector[] {
  const good = encodeWire({ dst: 0, src: T, seq: 1, message: { type: 'EVENT', number: 7, kind: 'fire', boot: 2, uptime: 10 } })
  // Flip one bit inside the CRC-protected part, keeping COBS valid (no zero byte made).
  const rawGood = raw([1, 0, T, 0x20, 1], map([[0, 7], [1, 110], [4, 2], [5, 10]]))
  const flipped = rawGood.slice()
  flipped[8]! ^= 0x01
  const badCobs = good.slice()
  badCobs[1] = 0xf0 // the first COBS code now points past the end
  return [
    invalid('bad CRC (one bit flipped in the body)', 'LINK_BAD_CRC', wire(flipped)),
    invalid('bad COBS (code past the end)', 'LINK_BAD_COBS', badCobs),
    invalid('too short (3 bytes)', 'LINK_TOO_SHORT', wire(new Uint8Array([1, 0, 3]))),
    invalid('no delimiter within 251 bytes', 'LINK_OVERSIZE', new Uint8Array([0, ...new Uint8Array(300).fill(0x41), 0])),
    invalid('frame of 260 bytes', 'LINK_OVERSIZE', wire(raw([1, 0, T, 0x21, 1], new Uint8Array(251).fill(0x60)))),
    invalid('version 2', 'LINK_BAD_VERSION', wire(raw([2, 0, T, 0x21, 1], map([[0, 60], [1, true]])))),
    invalid('unknown data type 0x2f', 'LINK_UNKNOWN_TYPE', wire(raw([1, 0, T, 0x2f, 1], map([])))),
    invalid('unknown control type 0x05', 'LINK_UNKNOWN_TYPE', wire(raw([1, 0, T, 0x05, 0], []))),
    invalid('ACK with a body', 'LINK_BAD_HEADER', wire(raw([1, T, 0, 0x01, 1], map([])))),
    invalid('EVENT with an empty body', 'LINK_BAD_CBOR', wire(raw([1, 0, T, 0x20, 1], []))),
    invalid('EVENT body truncated mid-map', 'LINK_BAD_CBOR', wire(raw([1, 0, T, 0x20, 1], [0xa4, 0x00, 0x07]))),
    invalid('EVENT body with trailing bytes', 'LINK_BAD_CBOR', wire(raw([1, 0, T, 0x20, 1], [...map([[0, 7]]), 0x01]))),
    invalid('EVENT body is an array, not a map', 'LINK_BAD_CBOR', wire(raw([1, 0, T, 0x20, 1], [0x82, 0x01, 0x02]))),
    // 2^31 pairs: a skipper that counts 2 x pairs items in 32 bits skips none and accepts it.
    invalid('INDICATE with an unknown key holding a map of 2^31 pairs (truncated)', 'LINK_BAD_CBOR', wire(raw([1, T, 0, 0x30, 1], [0xa3, 0x00, 0x07, 0x01, 0x01, 0x18, 0x18, 0xba, 0x80, 0x00, 0x00, 0x00]))),
    invalid('EVENT with uptime -1', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x20, 1], map([[0, 7], [1, 101], [4, 2], [5, -1]])))),
    invalid('EVENT number 0', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x20, 1], map([[0, 0], [1, 101], [4, 2], [5, 1]])))),
    invalid('EVENT with unknown code 999', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x20, 1], map([[0, 7], [1, 999], [4, 2], [5, 1]])))),
    invalid('EVENT emergency marked restore (no such kind)', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x20, 1], map([[0, 7], [1, 101], [2, true], [4, 2], [5, 1]])))),
    invalid('EVENT number as text', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x20, 1], map([[0, '7'], [1, 101], [4, 2], [5, 1]])))),
    invalid('EVENT number 2^64-1', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x20, 1], [0xa4, 0x00, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x18, 0x65, 0x04, 0x01, 0x05, 0x01]))),
    invalid('INDICATE stage 0', 'LINK_BAD_SCHEMA', wire(raw([1, T, 0, 0x30, 1], map([[0, 7], [1, 0]])))),
    invalid('INDICATE stage 8', 'LINK_BAD_SCHEMA', wire(raw([1, T, 0, 0x30, 1], map([[0, 7], [1, 8]])))),
    invalid('INDICATE stage 9', 'LINK_BAD_SCHEMA', wire(raw([1, T, 0, 0x30, 1], map([[0, 7], [1, 9]])))),
    invalid('INDICATE text of 121 bytes', 'LINK_BAD_SCHEMA', wire(raw([1, T, 0, 0x30, 1], map([[0, 7], [1, 4], [2, `${'警'.repeat(40)}!`]])))),
    invalid('INDICATE without its stage', 'LINK_BAD_SCHEMA', wire(raw([1, T, 0, 0x30, 1], map([[0, 7]])))),
    invalid('HELLO without terminal id', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x10, 0], map([[1, '1.0'], [2, 0], [3, 1], [4, 0], [5, 0]])))),
    invalid('HELLO with capabilities -1', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x10, 0], map([[0, 'SL-T-1'], [1, '1.0'], [2, -1], [3, 1], [4, 0], [5, 0]])))),
    invalid('HELLO with a firmware version that is not printable ASCII', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x10, 0], map([[0, 'SL-T-1'], [1, '固件1.0'], [2, 0], [3, 1], [4, 0], [5, 0]])))),
    invalid('DISPLAY part 3 of 2', 'LINK_BAD_SCHEMA', wire(raw([1, T, 0, 0x31, 1], map([[0, 5], [1, 'x'], [2, 0], [4, 3], [5, 2]])))),
    invalid('DISPLAY part without parts', 'LINK_BAD_SCHEMA', wire(raw([1, T, 0, 0x31, 1], map([[0, 5], [1, 'x'], [2, 0], [4, 1]])))),
    invalid('DISPLAY text of 61 Chinese characters (183 bytes > 180)', 'LINK_BAD_SCHEMA', wire(raw([1, T, 0, 0x31, 1], map([[0, 5], [1, '暴'.repeat(61)], [2, 0]])))),
    invalid('HEARTBEAT mains as the integer 21, not true (f5)', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x21, 1], map([[0, 60], [1, 21]])))),
    invalid('HEARTBEAT battery 101 %', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x21, 1], map([[0, 60], [1, true], [2, 101]])))),
    invalid('HEARTBEAT uptime 60.5 (a float)', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x21, 1], [0xa2, 0x00, 0xfb, 0x40, 0x4e, 0x40, 0, 0, 0, 0, 0, 0x01, 0xf5]))),
    invalid('HEARTBEAT with a CBOR tag (Set)', 'LINK_BAD_SCHEMA', wire(raw([1, 0, T, 0x21, 1], [0xa2, 0x00, 0xd9, 0x01, 0x02, 0x80, 0x01, 0xf5]))),
  ]
}

export const VECTOR_FILES: Record<string, () => Vector[]> = {
  'link-control.json': linkControl,
  'terminal.json': terminalMessages,
  'gateway.json': gatewayMessages,
  'compat.json': compat,
  'errors.json': errors,
}

export const VECTORS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'protocol', 'vectors')

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  mkdirSync(VECTORS_DIR, { recursive: true })
  let total = 0
  for (const [file, make] of Object.entries(VECTOR_FILES)) {
    const vectors = make()
    total += vectors.length
    writeFileSync(join(VECTORS_DIR, file), `${JSON.stringify(vectors, null, 2)}\n`)
  }
  console.log(`wrote ${total} vectors to ${VECTORS_DIR}`)
}
