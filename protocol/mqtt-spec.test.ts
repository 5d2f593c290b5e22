/**
 * MQTT.md agrees with the code: every [MQTT-x.y] cited in the code is defined, the tables
 * (topics, kinds, fields, error codes, limits, config ranges, stages) are the code's, and
 * each worked example of section 7 is what the code encodes, passes its schema and goes on
 * its topic; the rejection examples of [MQTT-5.2] are what parseCommand says.
 */

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Compile } from 'typebox/compile'
import { describe, expect, it } from 'vitest'
import { DISPLAY_MAX_PARTS, DISPLAY_TEXT_MAX_BYTES, splitDisplayText } from './display.js'
import { EVENT_KINDS, STAGES, contactIdOf } from './messages.js'
import * as mqtt from './mqtt.js'
import {
  BATCH_ERROR_CODES,
  BATCH_MAX_BYTES,
  BATCH_MAX_DECOMPRESSED_BYTES,
  BATCH_MAX_ITEMS,
  CLASS_OF,
  COMMAND_ERROR_CODES,
  COMMAND_SCHEMAS,
  DEFAULT_TOPIC_PREFIX,
  GATEWAY_KINDS,
  MAX_COMMAND_BYTES,
  TOPIC_ID_PATTERN,
  decodeBatch,
  decodePayload,
  encodePayload,
  gatewayTopics,
  parseCommand,
  ZSTD_MAGIC,
  ZSTD_MAX_WINDOW_BYTES,
  type CommandType,
} from './mqtt.js'
import { ENCODINGS, json, readPlainCbor, spec, utf8 } from './mqtt.suite.js'

const root = join(import.meta.dirname, '..')
const hexBytes = (text: string) => new Uint8Array(Buffer.from(text.replaceAll(' ', ''), 'hex'))
/** 65536 as MQTT.md writes it: 65 536. */
const spaced = (n: number) => n.toLocaleString('en-US').replaceAll(',', ' ')
/** Characters that do not print, as \\uXXXX, the way MQTT.md shows messages. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters that do not print are what this finds
const visible = (text: string) => text.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\ufeff\ufffd]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
const schemaOf = (name: string) => (mqtt as Record<string, unknown>)[name] as Parameters<typeof Compile>[0] | undefined

// ---------------------------------------------------------------------------------------
// MQTT.md: rule ids, tables and worked examples

const ruleIds = (text: string) => new Set([...text.matchAll(/MQTT-(\d+\.\d+)/g)].map((x) => `MQTT-${x[1]}`))
const defined = [...spec.matchAll(/^\*\*\[(MQTT-\d+\.\d+)\]/gm)].map((x) => x[1]!)

function tsFiles(dir: string, recursive: boolean): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir).flatMap((f) => {
    const path = join(dir, f)
    if (statSync(path).isDirectory()) return recursive && f !== 'node_modules' ? tsFiles(path, true) : []
    return f.endsWith('.ts') ? [path] : []
  })
}

interface Example {
  schema: string
  arrow: '->' | '<-'
  topic: string
  json: string
  cbor: string
  zstd?: string
}
/** The worked examples of MQTT.md section 7: ```text blocks whose first line is `Schema -> topic`. */
function examples(): Example[] {
  const out: Example[] = []
  for (const block of spec.matchAll(/^```text\n([\s\S]*?)\n```$/gm)) {
    const [head, ...rest] = block[1]!.split('\n')
    const h = /^(\w+) (->|<-) (\S+) /.exec(head!)
    if (!h) continue
    const f: Record<string, string> = {}
    let key = ''
    for (const line of rest) {
      const m = /^(json|cbor|zstd) {2}(.*)$/.exec(line)
      if (m) {
        key = m[1]!
        f[key] = m[2]!
      } else if (key && /^ {6}[0-9a-f ]+$/.test(line)) f[key] += ` ${line.trim()}`
      else throw new Error(`MQTT.md example ${head}: unexpected line ${JSON.stringify(line)}`)
    }
    out.push({ schema: h[1]!, arrow: h[2] as '->' | '<-', topic: h[3]!, json: f.json!, cbor: f.cbor!, ...(f.zstd ? { zstd: f.zstd } : {}) })
  }
  return out
}
const EXAMPLES = examples()

describe('MQTT.md agrees with the code', () => {
  it('defines every [MQTT-x.y] cited in protocol/*.ts, gateway/**/*.ts and platform/**/*.ts', () => {
    const sources = [...tsFiles(import.meta.dirname, false), ...tsFiles(join(root, 'gateway'), true), ...tsFiles(join(root, 'platform'), true)]
    const defs = new Set(defined)
    for (const f of sources) {
      for (const id of ruleIds(readFileSync(f, 'utf8'))) {
        expect(defs.has(id), `${f.slice(root.length + 1)} cites [${id}], which MQTT.md does not define`).toBe(true)
      }
    }
  })

  it('defines each rule id once, and every id it cites itself', () => {
    expect(defined.length).toBeGreaterThanOrEqual(30)
    expect(new Set(defined).size).toBe(defined.length)
    for (const id of ruleIds(spec)) expect(defined, `MQTT.md cites [${id}] without defining it`).toContain(id)
    for (const id of ['MQTT-2.2', 'MQTT-3.2', 'MQTT-3.3', 'MQTT-3.4', 'MQTT-4.1', 'MQTT-4.2', 'MQTT-5.1', 'MQTT-5.2']) expect(defined).toContain(id)
  })

  it('cites only [LINK-x.y] rules that PROTOCOL.md defines', () => {
    const link = readFileSync(join(import.meta.dirname, 'PROTOCOL.md'), 'utf8')
    for (const [id] of spec.matchAll(/LINK-\d+\.\d+/g)) expect(link, id).toContain(`**[${id}]`)
  })

  it('lists every topic of gatewayTopics() with its key', () => {
    for (const [key, topic] of Object.entries(gatewayTopics(DEFAULT_TOPIC_PREFIX, 'gw-0017', 'abag-03'))) {
      expect(spec).toContain(`| \`${topic}\` | \`${key}\` |`)
    }
    expect(spec).toContain(`\`${DEFAULT_TOPIC_PREFIX}\``)
    expect(spec).toContain(`\`${TOPIC_ID_PATTERN}\``)
  })

  it('lists every kind with its class, Contact ID code and qualifier', () => {
    for (const k of Object.keys(EVENT_KINDS) as (keyof typeof EVENT_KINDS)[]) {
      expect(spec).toContain(`| \`${k}\` | ${CLASS_OF[k]} | terminal | ${contactIdOf(k) ?? 'null'} | ${EVENT_KINDS[k].restore} |`)
    }
    for (const k of Object.keys(GATEWAY_KINDS) as (keyof typeof GATEWAY_KINDS)[]) {
      expect(spec).toContain(`| \`${k}\` | ${CLASS_OF[k]} | gateway | ${GATEWAY_KINDS[k].code ?? 'null'} | ${GATEWAY_KINDS[k].restore} |`)
    }
  })

  it('has a table row for every field of every schema', () => {
    const props = (s: unknown) => Object.keys((s as { properties: Record<string, unknown> }).properties)
    const schemas: [string, unknown][] = [
      ['UplinkEvent', mqtt.UplinkEvent],
      ['TerminalStatus', mqtt.TerminalStatus],
      ['TerminalStatus.latest', (mqtt.TerminalStatus as unknown as { properties: { latest: unknown } }).properties.latest],
      ['Time', mqtt.Time],
      ['Birth', mqtt.Birth],
      ['Batch', mqtt.Batch],
      ['Reply', mqtt.Reply],
      ['GatewayStatus', mqtt.GatewayStatus],
      ['SignedCommand', mqtt.SignedCommand],
      ...Object.entries(COMMAND_SCHEMAS),
    ]
    for (const [name, s] of schemas) {
      for (const p of props(s)) expect(spec, `${name}.${p}`).toMatch(new RegExp(`^\\|(?: \`[a-z-]+\` \\|| \\|)? \`${p}\` \\|`, 'm'))
    }
  })

  it('lists exactly the command error codes of COMMAND_ERROR_CODES, which has every code the gateway uses [MQTT-5.2]', () => {
    const listed = [...spec.matchAll(/^\| [0-9–] \| `(CMD_[A-Z_]+)` \|/gm)].map((x) => x[1]!)
    expect(listed).toEqual([...COMMAND_ERROR_CODES])
    const contract = tsFiles(import.meta.dirname, false).filter((f) => /\/mqtt(-[a-z-]+)?\.ts$/.test(f))
    expect(contract).toContain(join(import.meta.dirname, 'mqtt-commands.ts'))
    const sources = [...contract, ...tsFiles(join(root, 'gateway'), true)]
    const used = new Set(sources.flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/'(CMD_[A-Z_]+)'/g)].map((x) => x[1]!)))
    for (const c of used) expect(COMMAND_ERROR_CODES, c).toContain(c)
  })

  it('states the command size limit the code has', () => {
    expect(spec).toContain(`over ${spaced(MAX_COMMAND_BYTES)} bytes (\`MAX_COMMAND_BYTES\`)`)
    expect(spec).toContain(`command size limit of ${spaced(MAX_COMMAND_BYTES)} bytes`)
    expect(spec).not.toMatch(/16 384|16384/)
  })

  it('states the batch limits the code has [MQTT-4.2]', () => {
    expect(BATCH_MAX_BYTES).toBe(64 * 1024)
    expect(spec).toContain(`at most ${BATCH_MAX_ITEMS} items (\`BATCH_MAX_ITEMS\`) and at most 64 KiB (${spaced(BATCH_MAX_BYTES)} bytes,`)
  })

  it('states the two forms of a batch, the limit on what one decodes to, and the codes of a refusal [MQTT-4.2]', () => {
    const rule = spec.slice(spec.indexOf('**[MQTT-4.2]'), spec.indexOf('**[MQTT-4.3]'))
    expect(rule).toContain(`\`${ZSTD_MAGIC.map((b) => b.toString(16)).join(' ')}\`, the zstd magic number`)
    expect(rule).toContain('Receivers MUST accept both forms')
    expect(BATCH_MAX_DECOMPRESSED_BYTES).toBe(1024 * 1024)
    expect(rule).toContain(`more\nthan 1 MiB (${spaced(BATCH_MAX_DECOMPRESSED_BYTES)} bytes, \`BATCH_MAX_DECOMPRESSED_BYTES\`)`)
    expect(ZSTD_MAX_WINDOW_BYTES).toBe(8 * 1024 * 1024)
    expect(rule).toContain('window over 8 MiB (`ZSTD_MAX_WINDOW_BYTES`')
    expect([...rule.matchAll(/^\| `(BATCH_[A-Z_]+)` \|/gm)].map((x) => x[1])).toEqual([...BATCH_ERROR_CODES])
    expect(spec.replace(/\s+/g, ' ')).toContain('`compression`, how it compresses its batches ([MQTT-4.2])')
  })

  it('states the range of every config setting the schema has [MQTT-5.9]', () => {
    const props = (mqtt.Configure as unknown as { properties: Record<string, { minimum: number; maximum: number }> }).properties
    for (const k of ['heartbeat', 'supervision', 'receiptTimeout', 'statusInterval']) {
      const { minimum, maximum } = props[k]!
      expect(spec, k).toContain(`| \`${k}\` | integer ${spaced(minimum)}–${spaced(maximum)}, s |`)
    }
    const { minimum, maximum } = props.receiptTimeout!
    expect(spec).toContain(`\`config.receiptTimeout\`, ${spaced(minimum)}–${spaced(maximum)} s`)
  })

  it('states the broadcast text limit: what 15 DISPLAY parts hold [MQTT-5.7]', () => {
    const most = DISPLAY_TEXT_MAX_BYTES * DISPLAY_MAX_PARTS
    expect(spec).toContain(`| \`text\` | text, 1–${most} characters, within ${DISPLAY_MAX_PARTS} DISPLAY parts |`)
    expect(splitDisplayText('白'.repeat(most / 3))).toEqual({ parts: Array(DISPLAY_MAX_PARTS).fill('白'.repeat(DISPLAY_TEXT_MAX_BYTES / 3)), truncated: false })
    expect(parseCommand(json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: 'x'.repeat(most), urgency: 'info' })).ok).toBe(true)
    expect(parseCommand(json({ v: 1, id: 'c-1', type: 'broadcast', broadcast: 1, text: '白'.repeat(most / 3 + 1), urgency: 'info' })).ok).toBe(false)
  })

  it('lists the seven stages of the code, all set by the gateway, in order [MQTT-4.7]', () => {
    const section = spec.slice(spec.indexOf('**[MQTT-4.7]'), spec.indexOf('### What the platform MUST do'))
    const rows = [...section.matchAll(/^\| `([a-z]+)` \|/gm)].map((x) => x[1]!)
    expect(rows).toEqual(Object.keys(STAGES))
    expect(section).toContain('All seven are set by the gateway')
  })

  it('has worked examples of every payload and every command type', () => {
    const names = new Set(EXAMPLES.map((e) => e.schema))
    for (const n of ['UplinkEvent', 'TerminalStatus', 'Birth', 'Reply', 'Batch', 'GatewayStatus']) expect(names).toContain(n)
    const types = new Set(EXAMPLES.filter((e) => e.arrow === '<-' && e.schema !== 'SignedCommand').map((e) => (JSON.parse(e.json) as { type: string }).type))
    expect(EXAMPLES.some((e) => e.schema === 'SignedCommand')).toBe(true)
    expect(types).toEqual(new Set(Object.keys(COMMAND_SCHEMAS)))
    const states = new Set(EXAMPLES.filter((e) => e.schema === 'Birth').map((e) => (JSON.parse(e.json) as { type: string }).type))
    expect(states).toEqual(new Set(['birth', 'death']))
  })

  // A signed command [MQTT-5.12]: each encoding carries its own body, so the two lines are
  // two payloads; each is the code's signature, with the vector key, of a body that parses.
  describe.each(EXAMPLES.filter((e) => e.schema === 'SignedCommand').map((e) => [e.topic, e] as const))('signed example on %s [MQTT-5.12]', (_, e) => {
    const key = mqtt.privateKeyFromSeed(Buffer.from(mqtt.SIGNING_VECTOR.seed, 'hex'))
    it('is what the code signs, in JSON and in CBOR, and verifies with the vector key', () => {
      const payloads = { json: utf8(e.json), cbor: hexBytes(e.cbor) }
      const bodies = ENCODINGS.map((enc) => {
        const value = decodePayload(payloads[enc])
        const c = Compile(mqtt.SignedCommand)
        expect(c.Check(value) ? null : [...c.Errors(value)][0]).toBeNull()
        const opened = mqtt.openEnvelope(value)
        if (opened.kind !== 'signed') throw new Error(`${enc}: not a signed command`)
        expect(opened.key).toBe(mqtt.SIGNING_VECTOR.keyId)
        expect(mqtt.verifyBody(opened.body, opened.sig, mqtt.publicKeyFromRaw(Buffer.from(mqtt.SIGNING_VECTOR.publicKey, 'hex')))).toBe(true)
        const parsed = parseCommand(opened.body)
        if (!parsed.ok) throw new Error(parsed.message)
        expect(Buffer.from(mqtt.signCommand(parsed.command as never, key, enc))).toEqual(Buffer.from(payloads[enc]))
        expect(parsed.command.aud).toBe(mqtt.audienceOfTopic(DEFAULT_TOPIC_PREFIX, e.topic))
        return parsed.command
      })
      expect(bodies[0]).toEqual(bodies[1])
      // The body is the example after it in MQTT.md.
      expect(EXAMPLES.some((x) => x.schema !== 'SignedCommand' && x.json === encodePayload(bodies[0], 'json').toString())).toBe(true)
    })
  })

  describe.each(EXAMPLES.filter((e) => e.schema !== 'SignedCommand').map((e, i) => [`${i + 1}. ${e.schema} ${e.arrow} ${e.topic}`, e] as const))('worked example %s', (_, e) => {
    const value = JSON.parse(e.json) as Record<string, unknown>

    it('is what the code encodes, in JSON and in CBOR', () => {
      expect(encodePayload(value, 'json').toString('utf8')).toBe(e.json)
      expect(Buffer.from(hexBytes(e.cbor)).toString('hex')).toBe(encodePayload(value, 'cbor').toString('hex'))
      expect(decodePayload(hexBytes(e.cbor))).toEqual(value)
      expect(readPlainCbor(hexBytes(e.cbor))).toEqual(value)
    })

    it('passes its schema', () => {
      const schema = schemaOf(e.schema)
      expect(schema, `${e.schema} is not a schema of mqtt.ts`).toBeDefined()
      expect(value.v).toBe(1)
      const c = Compile(schema!)
      expect(c.Check(value) ? null : [...c.Errors(value)][0]).toBeNull()
    })

    it('goes on the topic and in the class the contract says', () => {
      const t = gatewayTopics(DEFAULT_TOPIC_PREFIX, 'gw-0017', 'abag-03')
      if (e.arrow === '<-') {
        expect([t.command, t.areaCommand, t.allCommand]).toContain(e.topic)
        for (const enc of ENCODINGS) {
          const r = parseCommand(encodePayload(value, enc))
          expect(r.ok && r.command).toEqual(value)
        }
        expect(COMMAND_SCHEMAS[value.type as CommandType]).toBe(schemaOf(e.schema))
        return
      }
      const expected = { UplinkEvent: value.class === 'alarm' ? t.alert : t.event, TerminalStatus: t.event, Birth: t.state, Reply: t.reply, Batch: t.batch, GatewayStatus: t.status }[e.schema]
      expect(e.topic).toBe(expected)
      if (e.schema === 'UplinkEvent') {
        const kind = value.kind as keyof typeof CLASS_OF
        expect(value.class).toBe(CLASS_OF[kind])
        expect(value.code).toBe(kind in EVENT_KINDS ? contactIdOf(kind as keyof typeof EVENT_KINDS) : GATEWAY_KINDS[kind as keyof typeof GATEWAY_KINDS].code)
        expect(value.stage !== undefined).toBe(value.class === 'alarm')
      }
    })

    if (e.zstd) {
      it('decompresses (zstd line) to the batch; the cbor line alone is the same batch from a gateway without zstd', async () => {
        expect(await decodeBatch(Buffer.from(hexBytes(e.zstd!)))).toEqual(value)
        expect(await decodeBatch(hexBytes(e.cbor))).toEqual(value)
        expect((value.items as { class: string }[]).every((i) => i.class !== 'alarm')).toBe(true)
      })
    }
  })

  it('gives, for every rejection example of [MQTT-5.2], the code and message parseCommand gives', () => {
    const rows = [...spec.matchAll(/^\| `(json|hex) (.+?)` \| `(CMD_[A-Z_]+)` \| (null|`[^`]*`) \| (.*) \|$/gm)]
    expect(rows.length).toBeGreaterThanOrEqual(14)
    // After this prefix comes the decoder's own message (JSON.parse or cbor-x), whose wording
    // depends on the Node.js version: MQTT.md shows Node.js 20's, and says so.
    const decoder = 'payload is neither JSON nor CBOR: '
    for (const [, form, text, code, id, message] of rows) {
      const r = parseCommand(form === 'json' ? utf8(text!) : hexBytes(text!))
      expect(r.ok).toBe(false)
      if (r.ok) continue
      expect(r.code, text).toBe(code)
      expect(r.id === null ? 'null' : `\`${r.id}\``).toBe(id)
      const shown = visible(r.message).replaceAll('`', "'")
      if (r.code === 'CMD_UNDECODABLE' && !process.versions.node.startsWith('20.')) expect(shown.slice(0, decoder.length)).toBe(message!.slice(0, decoder.length))
      else expect(shown, text).toBe(message)
    }
    expect(spec).toContain('these are from Node.js 20')
  })
})
