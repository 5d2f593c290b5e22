import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { MESSAGES } from './messages.js'
import { baseTimeoutMs } from './timing.js'

const spec = readFileSync(join(import.meta.dirname, 'PROTOCOL.md'), 'utf8')
const ids = (text: string) => new Set(text.match(/LINK-\d+\.\d+/g) ?? [])

describe('PROTOCOL.md and the code agree', () => {
  it('every rule id cited in code or tests is defined in the spec', () => {
    const defined = ids(spec)
    const sources = readdirSync(import.meta.dirname).filter((f) => f.endsWith('.ts'))
    for (const f of sources) {
      for (const id of ids(readFileSync(join(import.meta.dirname, f), 'utf8'))) {
        expect(defined.has(id), `${f} cites [${id}], which PROTOCOL.md does not define`).toBe(true)
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
})
