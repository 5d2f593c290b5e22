/**
 * Batches [MQTT-4.2]: lower-class items published together. The Batch schema and its
 * limits, its two forms on the wire (one zstd frame, or bare from a gateway without
 * zstd), and bounded decoding, so that a hostile payload costs little.
 */

import { Decompress as ZstdDecompress } from 'fzstd'
import Type, { type Static } from 'typebox'
import { ProtocolError } from './errors.js'
import { MQTT_CONTRACT_VERSION } from './mqtt-contract.js'
import { decodePayload, encodePayload, type Encoding } from './mqtt-encoding.js'
import { TerminalStatus, UplinkEvent } from './mqtt-uplink.js'

/** Batches stay small enough for a slow link and a small board. [MQTT-4.2] */
export const BATCH_MAX_ITEMS = 500
export const BATCH_MAX_BYTES = 64 * 1024

export const Batch = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    id: Type.String(),
    gateway: Type.String(),
    items: Type.Array(Type.Union([UplinkEvent, TerminalStatus])),
  },
  { additionalProperties: true },
)
export type Batch = Static<typeof Batch>

/** The first bytes of a zstd frame: its magic number 0xFD2FB528, little-endian (RFC 8878). */
export const ZSTD_MAGIC: readonly number[] = [0x28, 0xb5, 0x2f, 0xfd]
/** The zstd level of the reference encoder. */
export const ZSTD_LEVEL = 3
/**
 * A receiver refuses a batch that decodes to more than this (1 MiB). A full batch is at
 * most 64 KiB before compression (BATCH_MAX_BYTES); the limit leaves room for that to grow,
 * and none for a "zip bomb" of a few kilobytes that decompresses to gigabytes.
 */
export const BATCH_MAX_DECOMPRESSED_BYTES = 1024 * 1024
/**
 * The largest zstd window the reference decoder allocates (8 MiB, the size RFC 8878 asks
 * every decoder to support; zstd levels up to 19 stay within it, and the reference
 * encoder writes 2 MiB). The decoder allocates the window a frame asks for, before the
 * first block: a frame must not make it allocate gigabytes.
 */
export const ZSTD_MAX_WINDOW_BYTES = 8 * 1024 * 1024
/** The largest block of a zstd frame: RFC 8878 Block_Maximum_Size is at most 128 KiB. */
const ZSTD_MAX_BLOCK_BYTES = 128 * 1024

/** Stable codes of a batch payload that cannot be read. Never renamed, only added to. [MQTT-4.2] */
export const BATCH_ERROR_CODES = [
  /** It decodes, or says it would, to more than the limit (BATCH_MAX_DECOMPRESSED_BYTES), or its zstd frame asks for a window over ZSTD_MAX_WINDOW_BYTES. */
  'BATCH_TOO_LARGE',
  /** Neither a zstd frame nor a CBOR or JSON map; a damaged or truncated zstd frame, or one with bytes after it; a frame whose contents are neither CBOR nor JSON. */
  'BATCH_UNDECODABLE',
] as const
export type BatchErrorCode = (typeof BATCH_ERROR_CODES)[number]

/** A batch payload that cannot be read: garbage from the wire, to count and drop, never fatal. */
export class BatchDecodeError extends ProtocolError {
  declare readonly code: BatchErrorCode
  constructor(code: BatchErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}

/** Compresses an encoded Batch into one zstd frame. */
export type ZstdCompress = (encoded: Buffer) => Promise<Buffer>

/** The reference compressor: @mongodb-js/zstd (a native binding) at ZSTD_LEVEL, imported when first used. */
export const referenceZstd: ZstdCompress = async (encoded) => {
  const { compress } = await import('@mongodb-js/zstd')
  return compress(encoded, ZSTD_LEVEL)
}

/**
 * A batch on the wire [MQTT-4.2]: the Batch encoded like every payload [MQTT-4.3], then
 * compressed into one zstd frame by `compress` (default: referenceZstd). With `compress`
 * null, the encoded Batch as it is: what a gateway that has no zstd sends.
 */
export async function encodeBatch(batch: Batch, encoding: Encoding, compress: ZstdCompress | null = referenceZstd): Promise<Buffer> {
  const encoded = encodePayload(batch, encoding)
  return compress ? compress(encoded) : encoded
}

export interface DecodeBatchOptions {
  /** Refuse a batch that decodes to more than this many bytes. Default BATCH_MAX_DECOMPRESSED_BYTES (1 MiB). */
  maxBytes?: number
}

/**
 * Reads a batch payload [MQTT-4.2]. Its first bytes tell which form it has: a zstd frame
 * (`28 b5 2f fd`) is decompressed and its contents decoded as a payload [MQTT-4.3];
 * anything else is the bare encoded Batch of a gateway that cannot compress (a CBOR map,
 * `a0`-`bf`, or a JSON object, `{`), decoded as it is. Resolves with the decoded value,
 * which the caller checks against `Batch`; rejects with a BatchDecodeError.
 *
 * Decompression is bounded, so a hostile or broken payload costs little: a frame that says
 * it holds more than `maxBytes`, whose raw and RLE blocks alone add up to more, or that
 * asks for a window over ZSTD_MAX_WINDOW_BYTES is refused before anything is
 * decompressed; any other is decompressed block by block (fzstd: pure JavaScript, so
 * every platform and board has it) and abandoned as soon as its output passes `maxBytes`.
 */
export async function decodeBatch(payload: Uint8Array, { maxBytes = BATCH_MAX_DECOMPRESSED_BYTES }: DecodeBatchOptions = {}): Promise<unknown> {
  const zstd = payload.length >= ZSTD_MAGIC.length && ZSTD_MAGIC.every((b, i) => payload[i] === b)
  if (!zstd && payload.length > maxBytes) {
    throw new BatchDecodeError('BATCH_TOO_LARGE', `uncompressed batch of ${payload.length} bytes; the limit is ${maxBytes}`)
  }
  const encoded = zstd ? decompressBounded(payload, maxBytes) : payload
  try {
    return decodePayload(encoded)
  } catch (e) {
    const what = zstd ? `the ${encoded.length} bytes in its zstd frame are neither CBOR nor JSON` : 'neither a zstd frame (28 b5 2f fd) nor CBOR nor JSON'
    throw new BatchDecodeError('BATCH_UNDECODABLE', `batch of ${payload.length} bytes: ${what}: ${(e as Error).message}`, { cause: e })
  }
}

/**
 * Checks one zstd frame's header and block headers (RFC 8878 section 3.1.1) before
 * anything is decompressed. fzstd trusts what a frame says: it allocates any window up to 2 GiB, an
 * RLE block of any size the 21-bit field can hold (2 MiB), and decodes whatever frames
 * follow; this walk refuses all of that first.
 */
function checkZstdFrame(b: Uint8Array, maxBytes: number): void {
  const bad = (why: string) => new BatchDecodeError('BATCH_UNDECODABLE', `batch of ${b.length} bytes: damaged zstd frame: ${why}`)
  const descriptor = b[4]
  if (descriptor === undefined) throw bad('truncated frame header')
  const singleSegment = (descriptor & 0x20) !== 0
  if (descriptor & 0x08) throw bad('reserved bit set in the frame header')
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]!
  const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6]!
  let p = 5
  let windowBytes = 0
  if (!singleSegment) {
    const w = b[p++]
    if (w === undefined) throw bad('truncated frame header')
    const base = 2 ** (10 + (w >> 3))
    windowBytes = base + (base / 8) * (w & 7)
  }
  const headerEnd = p + dictionaryBytes + contentSizeBytes
  if (headerEnd > b.length) throw bad('truncated frame header')
  let dictionary = 0
  for (let i = 0; i < dictionaryBytes; i++) dictionary += b[p + i]! * 2 ** (8 * i)
  if (dictionary !== 0) throw bad(`it needs dictionary ${dictionary}, and batches use none`)
  p += dictionaryBytes
  let contentBytes: number | null = null
  if (contentSizeBytes > 0) {
    contentBytes = 0
    for (let i = 0; i < contentSizeBytes; i++) contentBytes += b[p + i]! * 2 ** (8 * i)
    if (contentSizeBytes === 2) contentBytes += 256
    if (singleSegment) windowBytes = contentBytes
  }
  p = headerEnd
  const tooLarge = (why: string) => new BatchDecodeError('BATCH_TOO_LARGE', `batch of ${b.length} bytes: zstd frame ${why}; the limit is ${maxBytes} bytes`)
  if (contentBytes !== null && contentBytes > maxBytes) throw tooLarge(`says it holds ${contentBytes} bytes`)
  if (windowBytes > ZSTD_MAX_WINDOW_BYTES) {
    throw new BatchDecodeError('BATCH_TOO_LARGE', `batch of ${b.length} bytes: zstd frame asks for a window of ${windowBytes} bytes; the limit is ${ZSTD_MAX_WINDOW_BYTES}`)
  }
  const maxBlock = Math.min(windowBytes, ZSTD_MAX_BLOCK_BYTES)
  let plainBytes = 0
  for (let last = false; !last; ) {
    if (p + 3 > b.length) throw bad('truncated: a block header is missing')
    const header = b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16)
    p += 3
    last = (header & 1) === 1
    const type = (header >> 1) & 3
    const size = header >>> 3
    if (type === 3) throw bad('block of the reserved type 3')
    if (size > maxBlock) throw bad(`a block of ${size} bytes, over the frame's largest block of ${maxBlock}`)
    if (type !== 2) plainBytes += size
    if (plainBytes > maxBytes) throw tooLarge(`would decompress to at least ${plainBytes} bytes (raw and RLE blocks)`)
    p += type === 1 ? 1 : size
  }
  if (descriptor & 0x04) p += 4 // Content_Checksum
  if (p > b.length) throw bad('truncated: the last block or the checksum is cut short')
  if (p < b.length) throw bad(`${b.length - p} bytes after the frame (a batch is one frame)`)
}

/** Decompresses one zstd frame, stopping as soon as its output passes `maxBytes`. */
function decompressBounded(frame: Uint8Array, maxBytes: number): Uint8Array {
  checkZstdFrame(frame, maxBytes)
  const chunks: Uint8Array[] = []
  let total = 0
  const stop = new Error('over the limit')
  const stream = new ZstdDecompress((chunk) => {
    total += chunk.length
    // Thrown out of push(): fzstd calls back synchronously, block by block.
    if (total > maxBytes) throw stop
    chunks.push(chunk)
  })
  try {
    stream.push(frame, true)
  } catch (e) {
    if (e === stop) {
      throw new BatchDecodeError('BATCH_TOO_LARGE', `batch of ${frame.length} bytes: zstd frame decompresses to more than ${maxBytes} bytes (stopped after ${total}); the limit is ${maxBytes} bytes`)
    }
    throw new BatchDecodeError('BATCH_UNDECODABLE', `batch of ${frame.length} bytes: damaged zstd frame: ${(e as Error).message}`, { cause: e })
  }
  return Buffer.concat(chunks, total)
}
