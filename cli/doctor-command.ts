/**
 * `steppelink doctor`: is this board ready to carry an alarm, and if not, what to do
 * (issue 14). One line per check, ok / warn / FAIL, in plain words with what to do; the
 * checks are in doctor-checks.ts. Exit status 0 when nothing failed (warnings allowed),
 * 1 when something did, 2 when called wrong; `--json` for scripts.
 */

import { parseArgs } from 'node:util'
import { loadConfig, type GatewayConfig, type ReadFile } from '../gateway/config.js'
import { defaultReadFile } from '../gateway/config-file.js'
import { openSerialPort, type OpenPort } from '../io/serial-line.js'
import {
  checkClientCertificate,
  checkClock,
  checkBroker,
  checkDataDir,
  checkDiskSpace,
  checkGateway,
  checkPlatformKeys,
  checkSerialDevice,
  checkStoreIntegrity,
  checkTerminal,
  timedatectlNtp,
  within,
  type CheckResult,
  type DoctorEnv,
  type GatewayStatus,
} from './doctor-checks.js'
import { callApi, DEFAULT_CONFIG, DEFAULT_LOCAL_API_IO, findGateway, LocalApiError } from './local-api.js'
import { numberFlag, parseArgsError, reportUsage, UsageError } from './usage.js'

export const DOCTOR_HELP = `Usage: steppelink doctor [-c FILE] [--json] [--timeout S] [--listen S]

Checks this board, as the gateway would run on it, and says in plain words what is wrong
and what to do: the configuration, whether the gateway runs, the serial device and a
terminal answering, the store (data directory, free space against limits.reserveMB,
integrity), the clock, the broker (DNS, TCP, TLS and the certificates, the MQTT user name
and password), and whether commands are authenticated.

It never disturbs a running gateway: the store is opened read-only, the serial port only
when no gateway runs (else the gateway is asked which terminals answer), the broker with a
client id of its own.

  -c, --config FILE   the gateway's config file (default ${DEFAULT_CONFIG})
  --json              JSON instead of text: { healthy, config, checks: [{ id, level, text, fix }] }
  --timeout S         the longest any one check waits, seconds (default 5)
  --listen S          how long to listen for a terminal when no gateway runs, seconds (default 3)
  -h, --help          this help

Run it as the gateway's user or with sudo, so that it may read what the gateway reads.
Exit status: 0 healthy (warnings allowed), 1 something failed, 2 called wrong.`

export interface DoctorIo {
  stdout: (line: string) => void
  stderr: (line: string) => void
  env: NodeJS.ProcessEnv
  readFile: ReadFile
  fetch: typeof fetch
  openPort: OpenPort
  now: () => number
  ntpSynchronized: (timeoutMs: number) => Promise<boolean | null>
  uid: number
}

const DEFAULT_IO: DoctorIo = {
  stdout: (l) => console.log(l),
  stderr: (l) => console.error(l),
  env: process.env,
  readFile: defaultReadFile,
  fetch: (...a) => fetch(...a),
  openPort: openSerialPort,
  now: () => Date.now(),
  ntpSynchronized: timedatectlNtp,
  uid: process.getuid?.() ?? -1,
}

const LABEL: Record<CheckResult['level'], string> = { ok: 'ok', warn: 'warn', fail: 'FAIL' }

export async function doctorCommand(args: string[], given: Partial<DoctorIo> = {}): Promise<number> {
  const io: DoctorIo = { ...DEFAULT_IO, ...given }
  let values: { config?: string | undefined; json?: boolean | undefined; timeout?: string | undefined; listen?: string | undefined; help?: boolean | undefined }
  let timeoutMs: number
  let listenMs: number
  try {
    try {
      values = parseArgs({
        args,
        options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, timeout: { type: 'string' }, listen: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
        strict: true,
        allowPositionals: false,
      }).values
    } catch (e) {
      throw parseArgsError(e)
    }
    if (values.help) {
      io.stdout(DOCTOR_HELP)
      return 0
    }
    timeoutMs = 1000 * (numberFlag('timeout', values.timeout, (n) => n > 0 && n <= 300, 'a number of seconds from 0 to 300') ?? 5)
    listenMs = 1000 * (numberFlag('listen', values.listen, (n) => n > 0 && n <= 300, 'a number of seconds from 0 to 300') ?? 3)
  } catch (e) {
    return reportUsage(io.stderr, 'doctor', e)
  }
  const file = values.config ?? DEFAULT_CONFIG
  const checks = await runChecks(file, io, timeoutMs, listenMs)
  const healthy = checks.every((c) => c.level !== 'fail')
  if (values.json) {
    io.stdout(JSON.stringify({ healthy, config: file, checks }, null, 2))
  } else {
    for (const line of render(file, checks, io.uid)) io.stdout(line)
  }
  return healthy ? 0 : 1
}

async function runChecks(file: string, io: DoctorIo, timeoutMs: number, listenMs: number): Promise<CheckResult[]> {
  const loaded = loadConfig(['--config', file], io.env, io.readFile)
  if (!loaded.ok) {
    return [
      {
        id: 'config',
        level: 'fail',
        text: `the configuration ${file} does not load: ${loaded.errors.map((e) => e.replace(/^config error: /, '')).join(' | ')}`,
        fix: loaded.errors.some((e) => e.includes('cannot read the config file'))
          ? `give the gateway's config with -c FILE (the service runs with ${DEFAULT_CONFIG}); nothing else was checked`
          : `fix ${file} as each error says (steppelink gateway --help shows a full file); nothing else was checked`,
      },
    ]
  }
  const config = loaded.config
  const configLine: CheckResult = {
    id: 'config',
    level: 'ok',
    text: `the configuration ${file} loads and is valid: gateway ${config.gateway.id}, serial ${config.serial.path} at ${config.serial.baud} baud, ${config.mqtt.brokers.length} broker${config.mqtt.brokers.length === 1 ? '' : 's'}, data in ${config.data}`,
  }
  let asking: ReturnType<DoctorEnv['askGateway']> | null = null
  const env: DoctorEnv = {
    timeoutMs,
    listenMs,
    now: io.now,
    openPort: io.openPort,
    ntpSynchronized: () => io.ntpSynchronized(timeoutMs),
    uid: io.uid,
    askGateway: () => (asking ??= askGateway(file, config, io, timeoutMs)),
  }
  const dataDir = checkDataDir(config, io.uid)
  const disk = checkDiskSpace(config)
  const { result: integrity, lock } = await checkStoreIntegrity(config)
  const serial = checkSerialDevice(config, io.uid)
  const [gateway, terminal, clock, ...brokers] = await Promise.all([
    env.askGateway().then((asked) => checkGateway(asked, lock)),
    serial.level === 'fail' ? Promise.resolve(null) : checkTerminal(config, lock, env),
    checkClock(config, env),
    ...config.mqtt.brokers.map((url) =>
      within(timeoutMs * 5, checkBroker(config, url, env), () => ({ id: 'broker', level: 'fail' as const, text: `broker ${url}: no answer within ${timeoutMs * 5} ms`, fix: 'check the uplink' })),
    ),
  ])
  // A fallback broker that is down is a warning while another one takes the gateway.
  const anyBroker = brokers.some((b) => b.level === 'ok')
  const brokerLines = brokers.map((b) =>
    anyBroker && b.level === 'fail' ? { ...b, level: 'warn' as const, fix: `${b.fix ?? ''} (another broker works, so the gateway is connected meanwhile)`.trim() } : b,
  )
  const certificate = checkClientCertificate(config, io.now())
  return [configLine, gateway, serial, ...(terminal ? [terminal] : []), dataDir, disk, integrity, clock, ...(certificate ? [certificate] : []), ...brokerLines, checkPlatformKeys(config)]
}

/** The running gateway's status from its local API (GET /api/status), within the timeout. */
async function askGateway(file: string, config: GatewayConfig, io: DoctorIo, timeoutMs: number): Promise<{ ok: true; status: GatewayStatus } | { ok: false; why: string }> {
  if (!config.household.enabled) return { ok: false, why: 'the household page is off (household.enabled = false), and the gateway is asked through it' }
  const apiIo = { ...DEFAULT_LOCAL_API_IO, readFile: io.readFile, fetch: io.fetch }
  try {
    const at = findGateway({ config: file }, apiIo)
    const answer = await within(timeoutMs, callApi(at, apiIo, 'GET', '/api/status'), () => {
      throw new LocalApiError('GATEWAY_NOT_RUNNING', `its page did not answer within ${timeoutMs / 1000} s`)
    })
    if (answer.status !== 200) return { ok: false, why: `its page answered ${answer.status}` }
    return { ok: true, status: answer.value as GatewayStatus }
  } catch (err) {
    if (err instanceof LocalApiError || err instanceof UsageError) return { ok: false, why: err.message }
    throw err
  }
}

function render(file: string, checks: CheckResult[], uid: number): string[] {
  const width = Math.max(...checks.map((c) => c.id.length))
  const lines = [`steppelink doctor: ${file}${uid === 0 ? ' (as root)' : uid > 0 ? ` (as uid ${uid})` : ''}`, '']
  for (const c of checks) {
    lines.push(`${LABEL[c.level].padEnd(4)}  ${c.id.padEnd(width)}  ${c.text}`)
    if (c.fix !== undefined && c.level !== 'ok') lines.push(`${' '.repeat(4 + 2 + width + 2)}what to do: ${c.fix}`)
  }
  const failed = checks.filter((c) => c.level === 'fail').length
  const warned = checks.filter((c) => c.level === 'warn').length
  lines.push('')
  lines.push(
    failed > 0
      ? `NOT HEALTHY: ${failed} failed${warned > 0 ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}. Fix the FAIL lines first, then run steppelink doctor again.`
      : `healthy${warned > 0 ? `, with ${warned} warning${warned === 1 ? '' : 's'}` : ''}.`,
  )
  return lines
}
