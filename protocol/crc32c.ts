/**
 * CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, init 0xFFFFFFFF, final XOR
 * 0xFFFFFFFF: the same CRC as iSCSI, SCTP and ext4. [LINK-3.1]
 *
 * Why Castagnoli and not the Ethernet CRC-32: for frames up to 5,243 bits (our largest is
 * 2,000) it detects every error of up to 5 flipped bits (Hamming distance 6), where the
 * Ethernet polynomial only reaches HD 5, and a random corruption slips through with
 * probability 2^-32 (about 2.3e-10). Many Cortex-M parts compute it in hardware.
 *
 * Byte-wise table form: 1 KiB of table, one lookup per byte; an MCU short of flash can use
 * the bit-wise loop given in PROTOCOL.md instead, with the same result.
 */

const TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0xffffffff
  for (let i = start; i < end; i++) {
    crc = TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8)
  }
  return (crc ^ 0xffffffff) >>> 0
}
