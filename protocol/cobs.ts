/**
 * Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999). [LINK-2.1]
 *
 * Removes every 0x00 from a frame so that 0x00 can delimit frames on the wire: a receiver
 * that has lost its place (noise, a cable plugged in mid-frame) needs only wait for the
 * next 0x00 to be back in step. Overhead is at most one byte per 254, plus one.
 */

import { RemoteProtocolError } from './errors.js'

/** Largest COBS encoding of `n` bytes (without the delimiter). */
export function cobsMaxEncodedLength(n: number): number {
  return n + Math.floor(n / 254) + 1
}

export function cobsEncode(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(cobsMaxEncodedLength(input.length))
  let codeIndex = 0
  let code = 1
  let o = 1
  for (let i = 0; i < input.length; i++) {
    const b = input[i]!
    if (b === 0) {
      out[codeIndex] = code
      codeIndex = o++
      code = 1
      continue
    }
    out[o++] = b
    code++
    if (code === 0xff) {
      out[codeIndex] = code
      codeIndex = o++
      code = 1
    }
  }
  out[codeIndex] = code
  return out.subarray(0, o)
}

/**
 * Decodes one COBS block (delimiter already stripped). Throws RemoteProtocolError
 * LINK_BAD_COBS on a zero byte inside the block or a code that runs past the end: both
 * mean the bytes were damaged on the line.
 */
export function cobsDecode(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(input.length)
  let o = 0
  let i = 0
  while (i < input.length) {
    const code = input[i]!
    if (code === 0) throw new RemoteProtocolError('LINK_BAD_COBS', `zero byte at offset ${i} inside a COBS block`)
    const end = i + code
    if (end > input.length) {
      throw new RemoteProtocolError('LINK_BAD_COBS', `COBS code ${code} at offset ${i} runs past the end (${input.length} bytes)`)
    }
    for (let j = i + 1; j < end; j++) {
      const b = input[j]!
      if (b === 0) throw new RemoteProtocolError('LINK_BAD_COBS', `zero byte at offset ${j} inside a COBS block`)
      out[o++] = b
    }
    i = end
    if (code !== 0xff && i < input.length) out[o++] = 0
  }
  return out.subarray(0, o)
}
