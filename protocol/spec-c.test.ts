/**
 * The C in PROTOCOL.md works as written: every ```c block, in order, compiled with the
 * system C compiler (C99, warnings as errors, undefined-behaviour sanitizer) together with
 * protocol/spec-c-driver.c, and run against the COBS table, the CRC check value and every
 * test vector. A firmware engineer wrote a terminal from this text alone; the C is the part
 * most likely to be copied, so it is the part that must not be wrong. [LINK-2.1] [LINK-2.4]
 * [LINK-3.1] [LINK-5.1] [LINK-5.2]
 *
 * No C compiler is a failure with the line that installs one, never a skip.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { Vector } from '../tools/vectors-gen.js'
import { cobsDecode, cobsEncode } from './cobs.js'
import { encodeWire } from './codec.js'
import { crc32c } from './crc32c.js'
import { WIRE_ERROR_CODES } from './errors.js'

const SPEC = 'PROTOCOL.md'
const spec = readFileSync(join(import.meta.dirname, SPEC), 'utf8')
const CC = process.env.CC || 'cc'
const INSTALL = 'apt-get update && apt-get install -y gcc'
const FLAGS = ['-std=c99', '-O1', '-Wall', '-Wextra', '-Wpedantic', '-Wconversion', '-Wshadow', '-Werror', '-fsanitize=undefined', '-fno-sanitize-recover=all']

/** The ```c blocks, each behind a #line so that compiler messages name PROTOCOL.md lines. */
function cBlocks(): string[] {
  const blocks: string[] = []
  for (const m of spec.matchAll(/^```c\n([\s\S]*?)^```$/gm)) {
    const line = spec.slice(0, m.index).split('\n').length + 1
    blocks.push(`#line ${line} "protocol/${SPEC}"\n${m[1]}`)
  }
  return blocks
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const unspaced = (s: string) => s.replace(/[`\s]/g, '')
// The files a firmware engineer is given (codec.test.ts keeps them equal to the generator's output).
const VECTORS = join(import.meta.dirname, 'vectors')
const vectors: [string, Vector][] = readdirSync(VECTORS)
  .filter((f) => f.endsWith('.json'))
  .flatMap((file) => (JSON.parse(readFileSync(join(VECTORS, file), 'utf8')) as Vector[]).map((v): [string, Vector] => [file, v]))

let dir = ''
let built: string | Error | undefined

/**
 * Compiles the driver with the spec's C once; every test that needs it fails with the same
 * message when it cannot be built (no compiler: the line that installs one).
 */
function driver(): string {
  if (built === undefined) {
    dir = mkdtempSync(join(tmpdir(), 'steppelink-spec-c-'))
    const exe = join(dir, 'driver')
    writeFileSync(join(dir, 'protocol-md.c'), cBlocks().join('\n'))
    const r = spawnSync(CC, [...FLAGS, '-I', dir, '-o', exe, join(import.meta.dirname, 'spec-c-driver.c')], { encoding: 'utf8' })
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      built = new Error(`No C compiler (${CC}) to check the C of ${SPEC}. Install one, then run the tests again:\n  ${INSTALL}`)
    } else if (r.error) {
      built = r.error
    } else if (r.status !== 0) {
      built = new Error(`The C of ${SPEC} does not compile (${CC} ${FLAGS.join(' ')}):\n${r.stderr}`)
    } else {
      built = exe
    }
  }
  if (built instanceof Error) throw built
  return built
}

/** Runs the driver on the commands, one answer line per command. */
function run(commands: string[]): string[] {
  const r = spawnSync(driver(), { input: `${commands.join('\n')}\n`, encoding: 'utf8', maxBuffer: 1 << 24 })
  if (r.status !== 0) throw new Error(`the C driver stopped (status ${r.status}, signal ${r.signal}); SIGSEGV is a read at or past the end of its input\n${r.stderr}`)
  const lines = r.stdout.split('\n').slice(0, -1)
  expect(lines).toHaveLength(commands.length)
  return lines
}

describe('the C of PROTOCOL.md', () => {
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('compiles as C99 with the system C compiler, warnings as errors', () => {
    expect(driver()).toMatch(/driver$/)
  })

  it('has every piece the text names', () => {
    const c = cBlocks().join('\n')
    for (const f of [
      'cobs_encode',
      'cobs_decode',
      'rx_byte',
      'crc32c',
      'frame_check',
      'cbor_put',
      'cbor_head',
      'cbor_skip_rest',
      'cbor_skip',
      'cbor_uint',
      'cbor_text',
      'cbor_bool',
      'decode_indicate',
    ]) {
      expect(c, f).toMatch(new RegExp(`^\\w[\\w\\s*]*\\b${f}\\(`, 'm'))
    }
  })

  it('numbers the wire error codes in the order of errors.ts [LINK-9.1]', () => {
    const body = /enum link_error \{([^}]*)\}/.exec(spec)?.[1] ?? ''
    const names = body.split(',').map((s) => s.replace(/=.*$/s, '').trim())
    expect(names).toEqual([...WIRE_ERROR_CODES])
    expect(body).toMatch(/LINK_BAD_COBS = 1\b/)
  })

  it('computes the CRC check value the text states [LINK-3.1]', () => {
    const stated = /check\s+value\s+of\s+the\s+ASCII\s+string\s+`123456789`\s+is\s+\*\*0x([0-9A-F]{8})\*\*/.exec(spec)?.[1]
    expect(stated).toBe('E3069283')
    const data = Buffer.from('123456789')
    const [empty, check, frame] = run([`crc `, `crc ${hex(data)}`, `crc 010003200018`])
    expect(empty).toBe('00000000')
    expect(check).toBe(stated!.toLowerCase())
    expect(frame).toBe(crc32c(Buffer.from('010003200018', 'hex'), 0, 6).toString(16).padStart(8, '0'))
  })

  it('encodes and decodes the COBS table of the text [LINK-2.1]', () => {
    const table = spec.slice(spec.indexOf('| Frame bytes | COBS block |'))
    const rows = [...table.slice(0, table.indexOf('\n\n')).matchAll(/^\| (`[0-9a-f ]+`) \| (`[0-9a-f ]+`) \|$/gm)].map((m) => [unspaced(m[1]!), unspaced(m[2]!)] as const)
    expect(rows.length).toBeGreaterThanOrEqual(5)
    // A run of 254 non-zero bytes closes a full group; 250 of them are the largest frame.
    const long = (n: number) => hex(new Uint8Array(n).map((_, i) => (i % 255) + 1))
    const frames = [...rows.map(([frame]) => frame), long(250), long(254), `${long(254)}00${long(3)}`, '']
    const blocks = frames.map((f) => hex(cobsEncode(Buffer.from(f, 'hex'))))
    const answers = run([...frames.map((f) => `cobs ${f}`), ...rows.map(([, block]) => `uncobs ${block}`), ...blocks.map((b) => `uncobs ${b}`)])
    frames.forEach((f, i) => {
      expect(answers[i], `cobs ${f}`).toBe(blocks[i])
      expect(answers[frames.length + rows.length + i], `uncobs ${blocks[i]}`).toBe(f)
    })
    rows.forEach(([frame, block], i) => {
      expect(answers[i], `table row ${frame}`).toBe(block)
      expect(answers[frames.length + i], `uncobs ${block}`).toBe(frame)
      expect(hex(cobsDecode(Buffer.from(block, 'hex')))).toBe(frame)
    })
    expect(run(['uncobs 0511', 'uncobs 0311', 'uncobs 021100', 'uncobs 01'])).toEqual(['LINK_BAD_COBS', 'LINK_BAD_COBS', 'LINK_BAD_COBS', ''])
  })

  it('writes CBOR heads in shortest form [LINK-5.1]', () => {
    const cases = [0, 1, 3, 5].flatMap((major) => [0, 23, 24, 255, 256, 65_535, 65_536, 0xffffffff].map((v) => [major, v] as const))
    const answers = run(cases.map(([major, v]) => `put ${major} ${v}`))
    cases.forEach(([major, v], i) => {
      const ai = v < 24 ? v : v <= 0xff ? 24 : v <= 0xffff ? 25 : 26
      const arg = v < 24 ? '' : v.toString(16).padStart(2 ** (ai - 23), '0')
      expect(answers[i], `major ${major}, ${v}`).toBe(((major << 5) | ai).toString(16).padStart(2, '0') + arg)
    })
  })

  it('skips any item within its limits, and no further [LINK-5.1]', () => {
    const nest = (n: number) => `${'81'.repeat(n)}00`
    const items: [string, string][] = [
      ['00', 'ok:1'],
      ['1affffffff', 'ok:5'],
      ['3901f3', 'ok:3'],
      ['f5', 'ok:1'],
      ['f93e00', 'ok:3'],
      ['fa3fc00000', 'ok:5'],
      ['42cafe', 'ok:3'],
      ['6378797a', 'ok:4'],
      ['8301617981', 'fail'],
      ['830161798102', 'ok:6'],
      ['a201f60280', 'ok:5'],
      ['c11a6955b900', 'ok:6'],
      [nest(8), 'ok:9'],
      [nest(9), 'fail'],
      ['1bffffffffffffffff', 'fail'],
      ['fb3ff8000000000000', 'fail'],
      ['9fff', 'fail'],
      ['5f41ff', 'fail'],
      ['', 'fail'],
      ['7a00000005616263', 'fail'],
      ['ba80000000', 'fail'],
      ['9affffffff00', 'fail'],
    ]
    const answers = run(items.map(([h]) => `skip ${h}`))
    items.forEach(([h, want], i) => {
      expect(answers[i], h).toBe(want)
    })
  })

  it('gives every test vector the reference verdict, and makes the same bytes again', () => {
    const answers = run(vectors.map(([, v]) => `wire ${v.hex}`))
    vectors.forEach(([file, v], i) => {
      const what = `${file}: ${v.name}`
      const words = answers[i]!.split(' ')
      expect(words, what).toHaveLength(1)
      const [verdict, type, again] = words[0]!.split(':')
      if (v.error === 'LINK_BAD_CBOR' || v.error === 'LINK_BAD_SCHEMA') {
        // Either code gets the same answer on the wire, NAK `invalid` [LINK-5.1].
        expect(['LINK_BAD_CBOR', 'LINK_BAD_SCHEMA'], what).toContain(verdict)
      } else if (v.error) {
        expect(verdict, what).toBe(v.error)
      } else {
        expect([verdict, type], what).toEqual(['ok', v.message!.message.type])
        // Decode-only entries carry keys the C must have skipped: it makes the reference's bytes.
        expect(again, what).toBe(v.decodeOnly ? hex(encodeWire(v.message!)) : v.hex)
      }
    })
    const kinds = new Set(vectors.filter(([, v]) => !v.error).map(([, v]) => v.message!.message.type))
    expect([...kinds].sort()).toEqual(['ACK', 'CONFIG', 'DISPLAY', 'DISPLAY_READ', 'EVENT', 'HEARTBEAT', 'HELLO', 'INDICATE', 'NAK', 'PING', 'TIME', 'WELCOME'])
    expect(vectors.some(([, v]) => v.decodeOnly && v.message?.message.type === 'INDICATE')).toBe(true)
  })

  it('reads all the vectors as one stream through rx_byte() [LINK-2.3] [LINK-2.4]', () => {
    const each = run(vectors.map(([, v]) => `wire ${v.hex}`))
    const [all] = run([`wire ${vectors.map(([, v]) => v.hex).join('')}`])
    expect(all).toBe(each.join(' '))
  })
})
