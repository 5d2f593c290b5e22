/**
 * `steppelink sim link`: the weak-link proxy (device-sim/weak-link.ts) at the command line.
 * Put it between the gateway and the MQTT broker; it runs until SIGINT or SIGTERM and
 * logs one line per thing it does, as text or as JSON lines (--json) that a test can line
 * up with the gateway's own log by `time`.
 */

import { parseArgs, type ParseArgsConfig } from 'node:util'
import {
  PROFILES,
  PROFILE_NAMES,
  WeakLinkArgumentError,
  describeEvent,
  describeShape,
  parseBlackout,
  parseDropEvery,
  parseHostPort,
  parseKbps,
  parseMs,
  parseProfile,
  startWeakLink,
  type LinkOverrides,
  type WeakLink,
  type WeakLinkEvent,
  type WeakLinkOptions,
} from '../device-sim/weak-link.js'
import { USAGE_EXIT, UsageError, parseArgsError, reportUsage, usageLine } from './usage.js'

const PROFILE_HELP: Record<(typeof PROFILE_NAMES)[number], string> = {
  perfect: 'forwards only',
  gprs: '2G data, as in the outer grassland',
  edge: '2.5G data, near a township',
  satellite: 'geostationary VSAT',
  storm: 'gprs in a white disaster: lost every minute, dark 20 s every 5 minutes',
}

export function simLinkHelp(): string {
  const width = Math.max(...PROFILE_NAMES.map((n) => n.length))
  return `Usage: steppelink sim link --target HOST:PORT [--listen HOST:PORT] [--profile NAME] [options]

Runs a TCP proxy that makes a good link bad. Put it between the gateway and the MQTT
broker (steppelink gateway --broker mqtt://LISTEN-HOST:PORT): it delays, throttles, drops,
blacks out and stalls the connections through it, and logs each thing it does, until
SIGINT or SIGTERM.

Options (flags override the profile's values):
  --target HOST:PORT   where connections go, e.g. the broker at 127.0.0.1:1883 (required)
  --listen HOST:PORT   where the gateway connects (default 127.0.0.1:0: a free port, logged at start)
  --profile NAME       ${PROFILE_NAMES.join(', ')} (default perfect); see below
  --latency MS         one-way delay added in each direction, ms (default: the profile's)
  --jitter MS          the delay varies uniformly within +/- this, ms; bytes are never
                       reordered, a late segment holds back the ones after it (default: the profile's)
  --kbps N|DOWN/UP     bandwidth cap per direction, kbit/s, shared by all connections:
                       N both ways, or DOWN/UP (down: broker to gateway); 0: no cap (default: the profile's)
  --drop-every S       reset every open connection every S seconds from start, RST to both
                       ends; 0: never (default: the profile's)
  --blackout D@T[/P]   dark for D seconds starting T seconds after start, again every P
                       seconds if /P is given; repeat the flag for several; replaces the
                       profile's blackouts (default: the profile's)
  --stall              from the start, for ever: connections open, but no bytes and no
                       FIN pass either way (default off)
  --seed N             seed for the jitter, a whole number (default 1)
  --json               log one JSON object per line: { t: ms since start, time: epoch ms,
                       event, conn, ... } (default: text)
  --help, -h           this help

Profiles (one-way latency +/- jitter, bandwidth down/up):
${PROFILE_NAMES.map((n) => `  ${n.padEnd(width)}  ${PROFILE_HELP[n]}: ${describeShape(PROFILES[n])}`).join('\n')}

What the gateway sees:
  drop       ECONNRESET on its socket at once (the proxy sends RST to both ends); a drop
             that falls in a blackout or a stall is skipped (nothing would reach it)
  blackout   open connections stall half-open: bytes stop both ways, no FIN, no RST; what
             was sent meanwhile arrives after it (TCP retransmits). New connections are
             accepted but reach the broker only when it ends: its connect timeout fires.
  stall      like a blackout, but new connections reach the broker (no bytes pass)

Examples:
  steppelink sim link --listen 127.0.0.1:1884 --target 127.0.0.1:1883 --profile gprs
  steppelink sim link --listen 127.0.0.1:1884 --target 127.0.0.1:1883 --profile storm --json
  steppelink sim link --listen 127.0.0.1:1884 --target 127.0.0.1:1883 --blackout 60@30 --blackout 3600@600`
}

/** What the command talks to; each has the real thing as default. */
export interface SimLinkIo {
  /** Log lines and help (default: standard output). */
  stdout: (text: string) => void
  /** Usage and start-up errors (default: standard error). */
  stderr: (text: string) => void
  /** Resolves when the proxy should stop (default: the first SIGINT or SIGTERM). */
  until: Promise<unknown>
}

interface Parsed {
  options: WeakLinkOptions
  json: boolean
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  target: { type: 'string' },
  listen: { type: 'string' },
  profile: { type: 'string' },
  latency: { type: 'string' },
  jitter: { type: 'string' },
  kbps: { type: 'string' },
  'drop-every': { type: 'string' },
  blackout: { type: 'string', multiple: true },
  stall: { type: 'boolean' },
  seed: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

function parse(args: string[]): Parsed | 'help' {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof OPTIONS }>>
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: OPTIONS })
  } catch (e) {
    throw parseArgsError(e)
  }
  const { values, positionals } = parsed
  if (values.help) return 'help'
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' (options start with --)`)
  const flag = <T>(name: string, raw: string | undefined, parseValue: (raw: string) => T): T | undefined => {
    if (raw === undefined) return undefined
    try {
      return parseValue(raw)
    } catch (e) {
      if (e instanceof WeakLinkArgumentError) throw new UsageError(`--${name}: ${e.message}`)
      throw e
    }
  }
  if (values.target === undefined) throw new UsageError('--target HOST:PORT is required: where the broker listens, e.g. --target 127.0.0.1:1883')
  const target = flag('target', values.target, (r) => parseHostPort(r))!
  const listen = flag('listen', values.listen, (r) => parseHostPort(r, true))
  const overrides: LinkOverrides = {
    latencyMs: flag('latency', values.latency, (r) => parseMs(r, 'latency')),
    jitterMs: flag('jitter', values.jitter, (r) => parseMs(r, 'jitter')),
    ...flag('kbps', values.kbps, parseKbps),
    dropEveryMs: flag('drop-every', values['drop-every'], parseDropEvery),
    blackouts: values.blackout?.map((b) => flag('blackout', b, parseBlackout)!),
    stall: values.stall,
  }
  const seed = flag('seed', values.seed, (r) => {
    if (!/^\d+$/.test(r)) throw new WeakLinkArgumentError(`must be a whole number, got '${r}'`)
    return Number(r)
  })
  const options: WeakLinkOptions = { target, ...overrides }
  if (listen) options.listen = listen
  const profile = flag('profile', values.profile, parseProfile)
  if (profile) options.profile = profile
  if (seed !== undefined) options.seed = seed
  return { options, json: values.json === true }
}

function signalled(): { promise: Promise<unknown>; dispose: () => void } {
  let dispose = () => {}
  const promise = new Promise<NodeJS.Signals>((resolve) => {
    const on = (signal: NodeJS.Signals) => resolve(signal)
    process.once('SIGINT', on)
    process.once('SIGTERM', on)
    dispose = () => {
      process.off('SIGINT', on)
      process.off('SIGTERM', on)
    }
  })
  return { promise, dispose }
}

/** Runs until SIGINT or SIGTERM (or `io.until`), then stops the proxy and answers 0; 2 on a usage error, 1 if it cannot listen. */
export async function simLinkCommand(args: string[], io: Partial<SimLinkIo> = {}): Promise<number> {
  const stdout = io.stdout ?? ((text: string) => process.stdout.write(`${text}\n`))
  const stderr = io.stderr ?? ((text: string) => process.stderr.write(`${text}\n`))
  let parsed: Parsed | 'help'
  try {
    parsed = parse(args)
  } catch (e) {
    return reportUsage(stderr, 'sim link', e)
  }
  if (parsed === 'help') {
    stdout(simLinkHelp())
    return 0
  }
  const { json } = parsed
  const log = (e: WeakLinkEvent) => stdout(json ? JSON.stringify(e) : `${(e.t / 1000).toFixed(3).padStart(10)} s  ${describeEvent(e)}`)
  // Listen for signals before the proxy starts, so a SIGTERM at start-up still stops it cleanly.
  const signals = io.until ? null : signalled()
  try {
    let link: WeakLink
    try {
      link = await startWeakLink({ ...parsed.options, onEvent: log })
    } catch (e) {
      const err = e as NodeJS.ErrnoException
      if (e instanceof WeakLinkArgumentError) {
        stderr(usageLine('sim link', err.message))
        return USAGE_EXIT
      }
      const where = parsed.options.listen ? `${parsed.options.listen.host}:${parsed.options.listen.port}` : '127.0.0.1'
      stderr(`steppelink sim link: cannot listen on ${where}: ${err.code ?? err.message}${err.code === 'EADDRINUSE' ? ' (the port is taken; choose another with --listen)' : ''}`)
      return 1
    }
    await (io.until ?? signals!.promise)
    await link.stop()
    return 0
  } finally {
    signals?.dispose()
  }
}
