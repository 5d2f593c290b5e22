import { readFileSync, readdirSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { encodeFrame, encodeWire, MAX_WIRE_FRAME } from './codec.js'
import { DISPLAY_MAX_PARTS, DISPLAY_TEXT_MAX_BYTES } from './display.js'
import { MESSAGE_BY_TYPE, MESSAGES, type Message } from './messages.js'
import { baseTimeoutMs } from './timing.js'

const spec = readFileSync(join(import.meta.dirname, 'PROTOCOL.md'), 'utf8')
const flat = spec.replace(/\s+/g, ' ')
const ids = (text: string) => new Set(text.match(/LINK-\d+\.\d+/g) ?? [])

describe('PROTOCOL.md and the code agree', () => {
  it('every rule id cited in code or tests is defined in the spec', () => {
    const defined = ids(spec)
    // The protocol's code and tests, and the tools that make its vectors and fuzz it.
    const tools = join(import.meta.dirname, '..', 'tools')
    const sources = [import.meta.dirname, tools].flatMap((dir) =>
      readdirSync(dir)
        .filter((f) => f.endsWith('.ts'))
        .map((f) => join(dir, f)),
    )
    expect(sources).toContain(join(tools, 'vectors-gen.ts'))
    for (const f of sources) {
      for (const id of ids(readFileSync(f, 'utf8'))) {
        expect(defined.has(id), `${relative(join(import.meta.dirname, '..'), f)} cites [${id}], which PROTOCOL.md does not define`).toBe(true)
      }
    }
  })

  it('lists every message type with its type byte', () => {
    for (const m of MESSAGES) {
      expect(spec).toContain(`| 0x${m.code.toString(16).padStart(2, '0')} | ${m.type} |`)
    }
  })

  it('states the retransmission timeouts the code computes', () => {
    expect(spec).toContain(`${baseTimeoutMs(9600)} ms at 9600 baud`)
    expect(spec).toContain(`| 115200 | ${baseTimeoutMs(115200)} ms |`)
  })

  it('states the size of the largest DISPLAY that the codec makes [LINK-5.8]', () => {
    const largest = {
      type: 'DISPLAY',
      id: 0xffffffff,
      text: '暴'.repeat(DISPLAY_TEXT_MAX_BYTES / 3),
      urgency: 'urgent',
      expires: 0xffffffff,
      part: DISPLAY_MAX_PARTS,
      parts: DISPLAY_MAX_PARTS,
    }
    const sizes = (message: object) => {
      const frame = { dst: 254, src: 0, seq: 255, message: message as Message }
      return { frame: encodeFrame(frame).length, wire: encodeWire(frame).length }
    }
    const plain = sizes(largest)
    // `revision` (key 6, at most 65 535) adds `06 19 ff ff`; once the codec knows the key, it says so itself.
    const full = 'revision' in MESSAGE_BY_TYPE.get('DISPLAY')!.keys ? sizes({ ...largest, revision: 0xffff }) : { frame: plain.frame + 4, wire: plain.wire + 4 }
    for (const sentence of [
      `is a ${full.frame}-byte frame, ${full.wire} bytes on the wire (without \`revision\`: ${plain.frame} and ${plain.wire})`,
      `| DISPLAY, every field at its maximum (\`revision\` included) | ${full.wire} |`,
    ]) {
      expect(flat.includes(sentence), `PROTOCOL.md should say: ${sentence}`).toBe(true)
    }
  })

  it('gives wire times that follow from the byte counts [LINK-6.1]', () => {
    const table = spec.slice(spec.indexOf('| Frame | Bytes on the wire |'))
    const rows = [...table.slice(0, table.indexOf('\n\n')).matchAll(/^\| (.+?) \| (\d+) \| ([\d.]+) ms \| ([\d.]+) ms \|$/gm)]
    expect(rows.length).toBeGreaterThan(5)
    for (const [, name, bytes, slow, fast] of rows) {
      const ms = (baud: number) => (Number(bytes) * 10 * 1000) / baud
      expect([name, slow, fast]).toEqual([name, ms(9600).toFixed(1), ms(115200).toFixed(2)])
    }
    expect(table).toContain(`| Largest possible frame | ${MAX_WIRE_FRAME} |`)
  })
})
