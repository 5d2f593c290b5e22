/**
 * Batches (mqtt-batch.ts) [MQTT-4.2]: one zstd frame or the bare encoded map of a gateway
 * without zstd, both read; frames as other encoders write them; and the bounded decoding
 * that refuses what would decompress past BATCH_MAX_DECOMPRESSED_BYTES (zstd and RLE bombs,
 * a window over 8 MiB) or is not a batch, with a BatchDecodeError and nothing else.
 */

import fc from 'fast-check'
import { Compile } from 'typebox/compile'
import { describe, expect, it } from 'vitest'
import * as mqtt from './mqtt.js'
import { BATCH_MAX_DECOMPRESSED_BYTES, BatchDecodeError, decodeBatch, encodeBatch, encodePayload, referenceZstd, ZSTD_MAGIC, ZSTD_MAX_WINDOW_BYTES, type Batch, type BatchErrorCode } from './mqtt.js'
import { ENCODINGS, alarm, status } from './mqtt.suite.js'

describe('batches [MQTT-4.2]', () => {
  const { stage: _stage, ...event } = alarm
  const small: Batch = { v: 1, id: 'gw-0017:b1', gateway: 'gw-0017', items: [status('T4-00123', 1), { ...event, id: 'T4-00123:40', class: 'trouble', kind: 'mains-lost', code: 301 }] }

  it.each(ENCODINGS)('round-trips in %s, as one zstd frame', async (enc) => {
    const z = await encodeBatch(small, enc)
    expect(z.subarray(0, 4).toString('hex')).toBe('28b52ffd')
    expect(await decodeBatch(z)).toEqual(small)
    expect(Compile(mqtt.Batch).Check(await decodeBatch(z))).toBe(true)
  })

  it('compresses a batch of 500 statuses to less than a fifth', async () => {
    const full: Batch = { v: 1, id: 'gw-0017:b2', gateway: 'gw-0017', items: Array.from({ length: 500 }, (_, i) => status(`T4-${String(i).padStart(5, '0')}`, i)) }
    expect(Compile(mqtt.Batch).Check(full)).toBe(true)
    for (const enc of ENCODINGS) {
      const plain = encodePayload(full, enc)
      const z = await encodeBatch(full, enc)
      expect(z.length, `${enc}: ${z.length} of ${plain.length} bytes`).toBeLessThan(plain.length / 5)
      expect(await decodeBatch(z)).toEqual(full)
    }
  })

  it.each(ENCODINGS)('round-trips in %s uncompressed, the bare encoded map of a gateway without zstd', async (enc) => {
    const bare = await encodeBatch(small, enc, null)
    expect(bare).toEqual(encodePayload(small, enc))
    expect(enc === 'cbor' ? bare[0]! >= 0xa0 && bare[0]! <= 0xbf : bare[0] === 0x7b).toBe(true)
    expect(await decodeBatch(bare)).toEqual(small)
  })

  it('reads a zstd frame with the content size in its header (single segment, raw block), as other encoders write it', async () => {
    const encoded = encodePayload(small, 'cbor')
    expect(encoded.length).toBeGreaterThan(255)
    expect(encoded.length).toBeLessThan(256 + 65536)
    // Frame header: single segment, 2-byte content size (size - 256); one raw block, the last.
    const header = Buffer.from([...ZSTD_MAGIC, 0x60, 0, 0])
    header.writeUInt16LE(encoded.length - 256, 5)
    const block = Buffer.alloc(3)
    block.writeUIntLE(1 | (0 << 1) | (encoded.length << 3), 0, 3)
    expect(await decodeBatch(Buffer.concat([header, block, encoded]))).toEqual(small)
  })

  /** Rejects with a BatchDecodeError of `code`; resolves with it. */
  const refusal = async (payload: Uint8Array, code: BatchErrorCode, options?: { maxBytes?: number }) => {
    const err = await decodeBatch(payload, options).then(
      () => null,
      (e: unknown) => e,
    )
    expect(err, Buffer.from(payload.subarray(0, 16)).toString('hex')).toBeInstanceOf(BatchDecodeError)
    expect((err as BatchDecodeError).code).toBe(code)
    return err as BatchDecodeError
  }

  it('holds BATCH_MAX_DECOMPRESSED_BYTES to 1 MiB and refuses a batch one byte over the limit, compressed or not', async () => {
    expect(BATCH_MAX_DECOMPRESSED_BYTES).toBe(1024 * 1024)
    for (const enc of ENCODINGS) {
      const n = encodePayload(small, enc).length
      for (const compress of [referenceZstd, null]) {
        const payload = await encodeBatch(small, enc, compress)
        expect(await decodeBatch(payload, { maxBytes: n })).toEqual(small)
        const err = await refusal(payload, 'BATCH_TOO_LARGE', { maxBytes: n - 1 })
        expect(err.message).toContain(`the limit is ${n - 1}`)
      }
    }
  })

  it('refuses a zstd bomb (4 MiB of text in a few kilobytes), stopping soon after 1 MiB instead of decompressing all of it', async () => {
    const lines = Array.from({ length: 60_000 }, (_, i) => `relay ${i}: 巴图家两只羊走失 ${(i * 7919) % 1000}\n`).join('')
    const plain = Buffer.from(lines).subarray(0, 4 * 1024 * 1024)
    const bomb = await referenceZstd(plain)
    expect(bomb.length).toBeLessThan(plain.length / 8)
    const err = await refusal(bomb, 'BATCH_TOO_LARGE')
    const stoppedAfter = Number(/stopped after (\d+)/.exec(err.message)?.[1])
    expect(stoppedAfter).toBeGreaterThan(BATCH_MAX_DECOMPRESSED_BYTES)
    expect(stoppedAfter).toBeLessThanOrEqual(BATCH_MAX_DECOMPRESSED_BYTES + 128 * 1024) // one block at most past the limit
  })

  it('refuses a bomb of RLE blocks (1.2 GiB in 40 kB) from its block headers alone, before decompressing anything', async () => {
    // 10 000 RLE blocks of 128 KiB each: 3 bytes of header and 1 byte of content apiece.
    const rle = Buffer.alloc(4)
    rle.writeUIntLE(0 | (1 << 1) | ((128 * 1024) << 3), 0, 3)
    const blocks = Array.from({ length: 10_000 }, () => rle)
    const last = Buffer.from(rle)
    last[0]! |= 1
    blocks[blocks.length - 1] = last
    const bomb = Buffer.concat([Buffer.from([...ZSTD_MAGIC, 0x00, 0x58]), ...blocks]) // window 2 MiB, no content size
    expect(bomb.length).toBe(40_006)
    const err = await refusal(bomb, 'BATCH_TOO_LARGE')
    expect(err.message).toMatch(/would decompress to at least \d+ bytes/)
  })

  it('refuses a frame that says it holds more than 1 MiB, or asks for a window over 8 MiB, before allocating either', async () => {
    const emptyLastBlock = [0x01, 0x00, 0x00]
    // Single segment, 4-byte content size of 2 GiB: fzstd would allocate 2 GiB for its window.
    await refusal(Buffer.from([...ZSTD_MAGIC, 0xa0, 0x00, 0x00, 0x00, 0x80, ...emptyLastBlock]), 'BATCH_TOO_LARGE')
    // Window descriptor 2^30 (exponent 20), no content size.
    const err = await refusal(Buffer.from([...ZSTD_MAGIC, 0x00, 20 << 3, ...emptyLastBlock]), 'BATCH_TOO_LARGE')
    expect(err.message).toContain(`the limit is ${ZSTD_MAX_WINDOW_BYTES}`)
    // Within the limits, an empty frame is read, and is not a batch.
    await refusal(Buffer.from([...ZSTD_MAGIC, 0x00, 0x58, ...emptyLastBlock]), 'BATCH_UNDECODABLE')
  })

  it('refuses garbage and damaged frames with BATCH_UNDECODABLE', async () => {
    const z = await encodeBatch(small, 'cbor')
    const garbage: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['text', Buffer.from('not zstd at all')],
      ['bytes', Buffer.from([0xff, 0x00, 0x13, 0x37])],
      ['the magic number alone', Buffer.from(ZSTD_MAGIC)],
      ['a truncated frame', z.subarray(0, z.length - 5)],
      ['a frame and a byte after it', Buffer.concat([z, Buffer.from([0])])],
      ['two frames', Buffer.concat([z, z])],
      ['a skippable frame (not a batch)', Buffer.from([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])],
      ['a block of the reserved type', Buffer.from([...ZSTD_MAGIC, 0x00, 0x58, 0x07, 0x00, 0x00])],
      ['a frame that needs a dictionary', Buffer.from([...ZSTD_MAGIC, 0x01, 0x58, 0x07, 0x01, 0x00, 0x00])],
      ['a zstd frame of text', await referenceZstd(Buffer.from('not a map, not JSON'))],
      ['a CBOR array', encodePayload([small], 'cbor')],
      ['truncated CBOR', encodePayload(small, 'cbor').subarray(0, 40)],
      ['truncated JSON', encodePayload(small, 'json').subarray(0, 40)],
    ]
    for (const [name, payload] of garbage) {
      const err = await refusal(payload, 'BATCH_UNDECODABLE')
      expect(err.message, name).toMatch(/^batch of \d+ bytes: /)
    }
  })

  it('never fails but with a BatchDecodeError, whatever is done to a frame (seeded: the same cases every run)', async () => {
    const frames = await Promise.all(ENCODINGS.map((enc) => encodeBatch(small, enc)))
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...frames), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), async (frame, edits, cut) => {
        const b = Buffer.from(frame.subarray(0, Math.max(5, frame.length - (cut % 8))))
        for (const [at, value] of edits) b[4 + (at % (b.length - 4))] = value
        await decodeBatch(b).catch((e: unknown) => {
          if (!(e instanceof BatchDecodeError)) throw e
        })
      }),
      { seed: 20260105, numRuns: 2000 },
    )
  })
})
