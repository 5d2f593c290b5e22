/**
 * `steppelink demo` (and `npm start`): the whole alarm loop on this machine. See
 * cli/demo.ts. `--line-only` runs the older, smaller demo: the serial link alone,
 * in memory, with simulated time.
 */

import { parseArgs, type ParseArgsConfig } from 'node:util'
import { PROFILE_NAMES, type ProfileName } from '../device-sim/weak-link.js'
import { USAGE_EXIT, parseArgsError, usageLine } from './usage.js'

const HELP = `Usage: steppelink demo [--once] [--link PROFILE] [--baud 9600] [--timeout S] [--page-port N]
       steppelink demo --line-only [--baud 9600] [--noise BER] [--presses N] [--seed N]

Brings up the whole alarm loop on this machine, with no hardware and no external broker:
an embedded MQTT broker (aedes) on a free loopback port, the gateway, a simulated terminal
on a pseudo-terminal pair (socat; in memory if socat is missing), and the operator
console. Presses the button once and prints the timeline of the alarm with milliseconds
since the press: pressed, stored, sent, received by the platform, acknowledged,
dispatched, resolved. Then stays interactive (keys are listed) until q or Ctrl-C.

Options:
  --once            run one alarm to "resolved" and exit: 0, or 1 with the stage that failed
  --link PROFILE    put a weak link between gateway and broker: ${PROFILE_NAMES.join(', ')} (default: none)
  --baud N          serial line rate (default 9600)
  --timeout S       longest wait for the alarm to be resolved, seconds (default 60)
  --memory-serial   use an in-memory serial line even if socat is installed
  --page-port N     the household page's port on 127.0.0.1 (default: a free one; the demo prints it and the PIN)
  --line-only       the serial link alone, in memory, simulated time (see --help there)`

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  once: { type: 'boolean' },
  link: { type: 'string' },
  baud: { type: 'string' },
  timeout: { type: 'string' },
  'memory-serial': { type: 'boolean' },
  'page-port': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

export async function demoCommand(args: string[]): Promise<number> {
  if (args.includes('--line-only')) {
    return (await import('./link-demo.js')).demoCommand(args.filter((a) => a !== '--line-only'))
  }
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS }>>['values']
  try {
    ;({ values } = parseArgs({ args, options: OPTIONS }))
  } catch (e) {
    console.error(usageLine('demo', parseArgsError(e).message))
    return USAGE_EXIT
  }
  if (values.help) {
    console.log(HELP)
    return 0
  }
  const baud = values.baud === undefined ? 9600 : Number(values.baud)
  const timeoutS = values.timeout === undefined ? 60 : Number(values.timeout)
  const pagePort = values['page-port'] === undefined ? 0 : Number(values['page-port'])
  const problems = [
    ...(values.link !== undefined && !(PROFILE_NAMES as readonly string[]).includes(values.link) ? [`--link must be one of ${PROFILE_NAMES.join(', ')}, got '${values.link}'`] : []),
    ...(!Number.isInteger(baud) || baud < 300 || baud > 1_000_000 ? [`--baud must be a line rate from 300 to 1000000, got '${values.baud}'`] : []),
    ...(!(timeoutS > 0) ? [`--timeout must be a positive number of seconds, got '${values.timeout}'`] : []),
    ...(!Number.isInteger(pagePort) || pagePort < 0 || pagePort > 65535 ? [`--page-port must be a TCP port from 0 to 65535, got '${values['page-port']}'`] : []),
  ]
  if (problems.length > 0) {
    for (const p of problems) console.error(`steppelink demo: ${p}.`)
    console.error("See 'steppelink demo --help'.")
    return USAGE_EXIT
  }
  const { runDemo } = await import('./demo.js')
  const controller = new AbortController()
  const onSignal = () => controller.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    return await runDemo({
      baud,
      link: (values.link as ProfileName | undefined) ?? null,
      once: values.once ?? false,
      timeoutS,
      memorySerial: values['memory-serial'] ?? false,
      pagePort,
      out: (line) => console.log(line),
      keys: values.once ? null : keys(controller.signal),
    })
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** Key presses: raw single keys on a terminal, one key per line otherwise; ends on abort or end of input. */
async function* keys(signal: AbortSignal): AsyncGenerator<string> {
  const stdin = process.stdin
  const raw = stdin.isTTY === true
  if (raw) stdin.setRawMode(true)
  stdin.setEncoding('utf8')
  const queue: string[] = []
  let wake: (() => void) | null = null
  let ended = false
  const onData = (chunk: string) => {
    for (const part of raw ? [...chunk] : chunk.split(/\r?\n/)) {
      if (part === '\u0003') {
        ended = true
        break
      }
      if (part !== '') queue.push(part)
    }
    wake?.()
  }
  const onEnd = () => {
    ended = true
    wake?.()
  }
  const onAbort = () => onEnd()
  stdin.on('data', onData)
  stdin.on('end', onEnd)
  signal.addEventListener('abort', onAbort)
  try {
    for (;;) {
      while (queue.length > 0) yield queue.shift()!
      if (ended || signal.aborted) return
      await new Promise<void>((r) => (wake = r))
      wake = null
    }
  } finally {
    stdin.off('data', onData)
    stdin.off('end', onEnd)
    signal.removeEventListener('abort', onAbort)
    if (raw) stdin.setRawMode(false)
    stdin.pause()
  }
}
