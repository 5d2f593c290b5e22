/**
 * The soak run's flags (`npm run soak -- --help`), checked once here. A wrong flag is a
 * usage error: the message and the help on standard error, exit status 2.
 */

import { parseArgs, type ParseArgsConfig } from 'node:util'
import { PROFILE_NAMES, type ProfileName } from '../device-sim/weak-link.js'
import type { AckMode } from '../platform/index.js'
import type { BrokerKind } from './loop.js'

export const HELP = `Usage: npm run soak -- --hours N [options]
       node dist/loop/soak.js --hours N [options]      (after npm run build)

Runs the whole alarm loop on 127.0.0.1 for N hours: broker, weak link, the gateway as a
real process, terminals on a pseudo-terminal pair, the operator console. Presses alarms
and lower-class events at random, kills the gateway with SIGKILL every so often, and
checks the promise: every alarm reaches the console, once after deduplication, in each
terminal's order, and the terminal ends showing it received. A progress line every
minute, a report at the end. Exit 0 if the promise held, 1 if not (naming the alarms).

Options:
  --hours N                 how long to press and kill, hours; fractions allowed (0.05 = 3 min) (required)
  --broker aedes|mosquitto  the platform's broker (default mosquitto, with persistence)
  --link PROFILE            a weak link between gateway and broker: gprs, storm, edge,
                            satellite or perfect (default: none)
  --kill-every S            SIGKILL the gateway about every S seconds (uniform 0.5 S to 1.5 S),
                            half of the time 0-150 ms after a press; 0: never (default 45)
  --presses-per-minute N    presses per minute over all terminals, 70 % alarms (default 10)
  --terminals N             terminals sharing the serial line, addresses 1..N (default 1)
  --ack none|auto           the console sends receipts only, or also acknowledges (default none)
  --deadline S              an alarm not received at the terminal within S s of its press is
                            reported late at once; also the longest drain at the end
                            (default 60; gprs 120; storm 300)
  --seed N                  seed of the schedule of presses and kills (default: random, printed)
  --keep                    keep the run's directory (gateway log, store) even if it passed
  --help                    this help

Needs socat (and mosquitto for --broker mosquitto): apt-get install -y socat mosquitto.`

export interface SoakOptions {
  /** How long to press and kill, hours. */
  hours: number
  broker: BrokerKind
  /** The weak link's profile; null: none. */
  link: ProfileName | null
  /** About how often the gateway is SIGKILLed, s; 0: never. */
  killEveryS: number
  pressesPerMinute: number
  terminals: number
  ack: Extract<AckMode, 'none' | 'auto'>
  /** An alarm not received within this long of its press is late, s; also the longest drain. */
  deadlineS: number
  seed: number
  keep: boolean
}

/** What the flags ask for: a run, the help, or a usage error (its message). */
export type SoakRequest = { kind: 'run'; options: SoakOptions } | { kind: 'help' } | { kind: 'usage'; message: string }

/** A flag is wrong: thrown inside this file only, returned as `{ kind: 'usage' }`. */
class Usage extends Error {}

const usage = (message: string): never => {
  throw new Usage(message)
}

/** Deadlines of the slow profiles, s: a storm's round trips take seconds. */
const PROFILE_DEADLINE_S: Partial<Record<ProfileName, number>> = { gprs: 120, storm: 300 }

export function parseSoakOptions(argv: readonly string[]): SoakRequest {
  try {
    return parse(argv)
  } catch (e) {
    if (e instanceof Usage) return { kind: 'usage', message: e.message }
    throw e
  }
}

const OPTIONS = {
  hours: { type: 'string' },
  broker: { type: 'string', default: 'mosquitto' },
  link: { type: 'string' },
  'kill-every': { type: 'string', default: '45' },
  'presses-per-minute': { type: 'string', default: '10' },
  terminals: { type: 'string', default: '1' },
  ack: { type: 'string', default: 'none' },
  deadline: { type: 'string' },
  seed: { type: 'string' },
  keep: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>

function parse(argv: readonly string[]): SoakRequest {
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; strict: true }>>['values']
  try {
    ;({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true }))
  } catch (e) {
    return usage((e as Error).message)
  }
  if (values.help) return { kind: 'help' }
  const number = (name: 'hours' | 'kill-every' | 'presses-per-minute' | 'terminals' | 'deadline' | 'seed', { min, max, integer = false }: { min: number; max: number; integer?: boolean }): number => {
    const raw = values[name]
    const n = Number(raw)
    if (raw === undefined || raw.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      usage(`--${name}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${raw === undefined ? 'nothing' : JSON.stringify(raw)}`)
    }
    return n
  }
  if (values.hours === undefined) usage('--hours is required (how long to run; 0.05 is 3 minutes)')
  const hours = number('hours', { min: 0.001, max: 24 * 14 })
  const killEveryS = number('kill-every', { min: 0, max: 86_400 })
  const pressesPerMinute = number('presses-per-minute', { min: 0.1, max: 600 })
  const terminals = number('terminals', { min: 1, max: 32, integer: true })
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : number('seed', { min: 0, max: 2 ** 32 - 1, integer: true })
  const broker = values.broker
  if (broker !== 'aedes' && broker !== 'mosquitto') return usage(`--broker: expected aedes or mosquitto, got ${JSON.stringify(broker)}`)
  const ack = values.ack
  if (ack !== 'none' && ack !== 'auto') return usage(`--ack: expected none or auto, got ${JSON.stringify(ack)}`)
  if (killEveryS > 0 && killEveryS < 2) usage('--kill-every: at least 2 s (the gateway needs a moment to start), or 0 for never')
  const link = values.link ?? null
  if (link !== null && !(PROFILE_NAMES as readonly string[]).includes(link)) usage(`--link: expected one of ${PROFILE_NAMES.join(', ')}, got ${JSON.stringify(link)}`)
  const profile = link as ProfileName | null
  const deadlineS = values.deadline === undefined ? ((profile !== null ? PROFILE_DEADLINE_S[profile] : undefined) ?? 60) : number('deadline', { min: 5, max: 86_400 })
  return { kind: 'run', options: { hours, broker, link: profile, killEveryS, pressesPerMinute, terminals, ack, deadlineS, seed, keep: values.keep } }
}
