/**
 * What the serial link's tests share (link-*.test.ts): a gateway end and a terminal end
 * (address 3) on a simulated line at 9600 baud, each end's events drained into a log with
 * every message accepted at once unless a test holds them (the gateway's manual mode), and
 * the HELLO, EVENT and log readers the tests build on. Not a test file itself; tsconfig.json
 * leaves *.suite.ts out of the build, and no-io.test.ts out of the protocol's shipped files.
 */

import { SimLine, onLine, type Impairments } from '../device-sim/sim-line.js'
import { GatewayLink, TerminalLink, type LinkEvent } from './link.js'
import type { Event, Hello } from './messages.js'
import { seededRandom } from './random.js'

export const BAUD = 9600

export function hello(boot: number, terminal = 'SL-T-0001'): () => Omit<Hello, 'type' | 'session'> {
  return () => ({ terminal, firmware: '1.0.0', capabilities: ['buzzer', 'keys'], boot, lastEvent: 0 })
}

export function event(number: number): Event {
  return { type: 'EVENT', number, kind: 'emergency', boot: 1, uptime: number }
}

/** Drains a link end's events into `log`, accepting every message at once (gateway manual mode). */
export function drain(end: TerminalLink | GatewayLink, log: LinkEvent[], accept = true): void {
  for (let e = end.nextEvent(); e; e = end.nextEvent()) {
    log.push(e)
    if (accept && e.kind === 'message') end.accept(e.ref)
  }
}

/** An end on the line whose events go to `log`, each message accepted at once. */
export function drained(end: TerminalLink | GatewayLink, log: LinkEvent[], accept = true) {
  return onLine(end, (e) => {
    log.push(e)
    if (accept && e.kind === 'message') end.accept(e.ref)
  })
}

/** A gateway (boot 7) and a terminal (address 3, boot 1) on a line with `impairments`, both drained into logs. */
export function setup(impairments: Impairments = {}, seed = 1) {
  const line = new SimLine(BAUD, impairments, seed)
  const random = seededRandom(seed + 1000)
  const gateway = new GatewayLink({ gateway: 'gw-1', boot: 7, baud: BAUD, random })
  const terminal = new TerminalLink({ address: 3, hello: hello(1), baud: BAUD, random })
  const gLog: LinkEvent[] = []
  const tLog: LinkEvent[] = []
  line.add(drained(gateway, gLog))
  line.add(drained(terminal, tLog))
  return { line, gateway, terminal, gLog, tLog }
}

export const messages = (log: LinkEvent[]) => log.flatMap((e) => (e.kind === 'message' ? [e.message] : []))
export const eventNumbers = (log: LinkEvent[]) => messages(log).flatMap((m) => (m.type === 'EVENT' ? [m.number] : []))
