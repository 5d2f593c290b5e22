/**
 * `steppelink demo`: the serial link alone, end to end in memory. A terminal boots,
 * shakes hands with the gateway, the button is pressed, and the gateway answers with
 * the alert's stage, over a line with the bit error rate you choose. Time is simulated
 * at the line rate, so the figures are what a real cable at that baud rate would give
 * (less the terminal's and the gateway's own processing).
 */

import { parseArgs } from 'node:util'
import { SimLine, onLine } from '../device-sim/sim-line.js'
import { GatewayLink, TerminalLink, type LinkEvent } from '../protocol/link.js'
import { contactIdOf, type DataMessage } from '../protocol/messages.js'
import { seededRandom } from '../protocol/random.js'
import { numberFlag, reportUsage } from './usage.js'

const HELP = `Usage: steppelink demo --line-only [--baud 9600] [--noise BER] [--presses N] [--seed N]

Runs a terminal and a gateway link end against each other over a simulated serial line
and prints the timeline of each alarm: pressed, stored at the gateway (ACK), and the
stage shown on the terminal. Time is simulated at the line rate.

Options:
  --baud N      line rate in baud (default 9600; 115200 supported)
  --noise BER   bit error rate on the line, e.g. 1e-3 (default 0)
  --presses N   how many alarms to press, one second apart (default 1)
  --seed N      seed for the noise and the retry jitter (default 1)`

function describe(m: DataMessage): string {
  switch (m.type) {
    case 'EVENT':
      return `EVENT #${m.number} ${m.kind} (Contact ID ${contactIdOf(m.kind) ?? 'none'})`
    case 'INDICATE':
      return `INDICATE #${m.event} ${m.stage}`
    default:
      return m.type
  }
}

export async function demoCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      help: { type: 'boolean', short: 'h' },
      baud: { type: 'string' },
      noise: { type: 'string' },
      presses: { type: 'string' },
      seed: { type: 'string' },
    },
  })
  if (values.help) {
    console.log(HELP)
    return 0
  }
  let baud: number, ber: number, presses: number, seed: number
  try {
    baud = numberFlag('baud', values.baud, (n) => n >= 300 && n <= 1_000_000, 'a line rate from 300 to 1000000') ?? 9600
    ber = numberFlag('noise', values.noise, (n) => n >= 0 && n < 0.05, 'a bit error rate from 0 to 0.05') ?? 0
    presses = numberFlag('presses', values.presses, (n) => Number.isInteger(n) && n >= 1 && n <= 1000, 'a whole number from 1 to 1000') ?? 1
    seed = numberFlag('seed', values.seed, Number.isInteger, 'a whole number') ?? 1
  } catch (e) {
    return reportUsage((line) => console.error(line), 'demo --line-only', e)
  }

  // A chunk of ~20 bytes (200 bits) at this BER has a flip with probability ~200*BER.
  const line = new SimLine(baud, { corrupt: Math.min(0.9, 200 * ber) }, seed)
  const random = seededRandom(seed + 1)
  const gateway = new GatewayLink({ gateway: 'gw-demo', boot: 1, baud, random })
  let nextEvent = 1
  const terminal = new TerminalLink({
    address: 1,
    baud,
    random,
    hello: () => ({ terminal: 'SL-T-DEMO', firmware: '1.0.0', capabilities: ['buzzer', 'keys', 'battery'], boot: 1, lastEvent: nextEvent - 1 }),
  })
  const pressedAt = new Map<number, number>()
  const shown = new Map<number, number>()
  const say = (who: string, text: string) => console.log(`${line.now.toFixed(1).padStart(9)} ms  ${who.padEnd(8)}  ${text}`)

  const onGateway = (e: LinkEvent) => {
    if (e.kind === 'session') say('gateway', `session open with ${e.hello?.terminal} (firmware ${e.hello?.firmware}, boot ${e.hello?.boot})`)
    if (e.kind === 'message' && e.message.type === 'EVENT') {
      say('gateway', `${describe(e.message)} received; acknowledged (a real gateway writes it to disk first)`)
      gateway.accept(e.ref)
      gateway.send(1, { type: 'INDICATE', event: e.message.number, stage: 'stored' }, { coalesce: `indicate:${e.message.number}` })
    }
  }
  const onTerminal = (e: LinkEvent) => {
    if (e.kind === 'session') say('terminal', `session open with gateway ${e.welcome?.gateway}`)
    if (e.kind === 'delivered' && e.message.type === 'EVENT') say('terminal', `${describe(e.message)} acknowledged by the gateway`)
    if (e.kind === 'message' && e.message.type === 'INDICATE') {
      shown.set(e.message.event, line.now)
      say('terminal', `LEDs show alert #${e.message.event}: ${e.message.stage} (${(line.now - pressedAt.get(e.message.event)!).toFixed(1)} ms after the press)`)
    }
    if (e.kind === 'liveness') say('terminal', e.up ? 'gateway answers again' : 'gateway not answering; still trying')
  }
  line.add(onLine(gateway, onGateway))
  line.add(onLine(terminal, onTerminal))

  console.log(`Serial link at ${baud} baud, bit error rate ${ber}; times are simulated line time.\n`)
  say('terminal', 'boots and sends HELLO')
  for (let i = 0; i < presses; i++) {
    line.run(line.now + (i === 0 ? 200 : 1000))
    const n = nextEvent++
    pressedAt.set(n, line.now)
    say('terminal', `button pressed: alert #${n}, kept in non-volatile memory until acknowledged`)
    terminal.send({ type: 'EVENT', number: n, kind: 'emergency', boot: 1, uptime: Math.floor(line.now / 1000) }, { priority: 10 })
  }
  line.run(line.now + 600_000, () => shown.size === presses)
  const stats = { terminal: terminal.stats(), gateway: gateway.stats() }
  console.log(`\nlink counters: ${JSON.stringify(stats)}`)
  if (shown.size !== presses) {
    console.error(`steppelink demo: only ${shown.size} of ${presses} alerts reached the terminal's display within 10 simulated minutes`)
    return 1
  }
  const latencies = [...shown].map(([n, t]) => t - pressedAt.get(n)!).sort((a, b) => a - b)
  console.log(`press to "stored" on the terminal: median ${latencies[Math.floor(latencies.length / 2)]!.toFixed(1)} ms, worst ${latencies.at(-1)!.toFixed(1)} ms`)
  console.log('\nThis is the serial link alone; the gateway, its durable store, MQTT and the operator console are described in README.md.')
  return 0
}
