/**
 * `steppelink decode` and `steppelink encode`: the codec at the command line, for firmware
 * engineers checking their bytes against ours (a logic-analyser capture, a test vector).
 */

import { parseArgs } from 'node:util'
import { FrameDecoder, encodeWire, type Frame } from '../protocol/codec.js'
import { ProtocolError } from '../protocol/errors.js'
import { USAGE_EXIT, usageLine } from './usage.js'

const DECODE_HELP = `Usage: steppelink decode HEX...   (or the hex on standard input)

Decodes serial-link bytes into frames, one JSON line per frame or error. Spaces, colons
and 0x prefixes in the hex are ignored; the bytes may hold any number of frames.

Example:
  steppelink decode 00020103032002a410182a011864041105190e10e4863d8100`

const ENCODE_HELP = `Usage: steppelink encode JSON   (or the JSON on standard input)

Encodes one frame {"dst":0,"src":3,"seq":0,"message":{...}} into wire bytes (hex),
both 0x00 delimiters included. The message is checked against its schema first.

Example:
  steppelink encode '{"dst":0,"src":3,"seq":0,"message":{"type":"EVENT","number":1,"kind":"emergency","boot":1,"uptime":5}}'`

async function input(positionals: string[]): Promise<string> {
  if (positionals.length > 0) return positionals.join(' ')
  if (process.stdin.isTTY) return ''
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export async function decodeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } })
  if (values.help) {
    console.log(DECODE_HELP)
    return 0
  }
  const text = (await input(positionals)).replace(/0x/gi, '').replace(/[\s:,]/g, '')
  if (text.length === 0 || !/^([0-9a-fA-F]{2})+$/.test(text)) {
    console.error(usageLine('decode', `expected hex bytes (pairs of 0-9a-f), got ${JSON.stringify(text.slice(0, 40))}`))
    return USAGE_EXIT
  }
  const d = new FrameDecoder()
  // A trailing delimiter makes a last, unterminated frame come out too.
  d.push(Buffer.from(`${text}00`, 'hex'))
  let errors = 0
  for (let r = d.next(); r; r = d.next()) {
    if (r.kind === 'frame') console.log(JSON.stringify(r.frame))
    else {
      errors++
      console.log(JSON.stringify({ error: r.error.code, detail: r.error.message, ...(r.header ? { header: r.header } : {}) }))
    }
  }
  return errors > 0 ? 1 : 0
}

export async function encodeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } })
  if (values.help) {
    console.log(ENCODE_HELP)
    return 0
  }
  let frame: Frame
  try {
    frame = JSON.parse(await input(positionals)) as Frame
  } catch (e) {
    console.error(usageLine('encode', `the frame is not valid JSON (${(e as Error).message})`))
    return USAGE_EXIT
  }
  try {
    console.log(Buffer.from(encodeWire(frame)).toString('hex'))
    return 0
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e
    console.error(`steppelink encode: ${e.code}: ${e.message}`)
    return USAGE_EXIT
  }
}
