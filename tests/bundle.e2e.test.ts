/**
 * The board bundle, installed as a technician installs it, where there is no network
 * (issue 14). The x64 bundle (`npm run bundle -- --arch x64`, or the one in
 * $STEPPELINK_BUNDLE) is unpacked and installed with its own install.sh into a fresh
 * directory tree, inside a network namespace this test makes (`ip netns`) that has a
 * loopback interface and nothing else. Everything after that runs from the installed tree
 * with the bundled runtime, never this machine's Node.js or node_modules:
 *   - `steppelink keygen` makes the platform's key pair; the technician's edit of the
 *     config template (gateway id, serial port, broker, data directory, platform key);
 *   - mosquitto in the namespace stands for the 110 platform's broker, and the bundle's
 *     own `steppelink console` for its operators (auto-acknowledge, dispatch, resolve);
 *   - the installed `steppelink gateway` with a simulated terminal on a real
 *     pseudo-terminal pair (`steppelink sim terminal`, from the bundle too): one press
 *     reaches the console and comes back to the button as resolved;
 *   - `steppelink doctor --json` on that running board says healthy.
 * The gateway runs as root here: the tree's `steppelink` user exists only in the tree's
 * /etc/passwd (that it is made, in dialout, is checked).
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildBundle, releaseName, systemTree } from './helpers/bundle.js'
import { startGateway, type GatewayProcess } from './helpers/gateway-process.js'
import { openPtyPair, type PtyPair } from './helpers/pty.js'
import { requireTool, waitUntil } from './helpers/system.js'

const _ROOT = resolve(import.meta.dirname, '..')
const mosquitto = requireTool('mosquitto')
requireTool('socat')
if (spawnSync('ip', ['-V']).status !== 0) throw new Error('apt-get update && apt-get install -y iproute2')

const NS = `slbundle${process.pid}`
const inNs = (...cmd: string[]) => ['ip', 'netns', 'exec', NS, ...cmd]

interface Ran {
  status: number | null
  stdout: string
  stderr: string
}

function run(cmd: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Ran {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, env: { ...process.env, ...opts.env } })
  if (r.error) throw r.error
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** A long-running child: its output kept, killed at the end. */
function start(cmd: string[]): { child: ChildProcess; out: () => string; exited: Promise<number | string> } {
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] })
  let text = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (text += c))
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (text += c))
  const exited = new Promise<number | string>((res) => child.once('exit', (code, signal) => res(code ?? signal ?? -1)))
  return { child, out: () => text, exited }
}

/** The bundle to test: $STEPPELINK_BUNDLE, or one built now. */
function theBundle(out: string): string {
  const given = process.env.STEPPELINK_BUNDLE
  return given ? resolve(given) : buildBundle('x64', out).bundle
}

/** The technician's edit of the template: each key must be there to be set, so a template that lost one fails here. */
function configure(template: string, values: Record<string, string>): string {
  let text = template
  for (const [key, value] of Object.entries(values)) {
    const [section, name] = key.includes('.') ? key.split('.') : [null, key]
    const lines = text.split('\n')
    let current: string | null = null
    let done = false
    for (let i = 0; i < lines.length; i++) {
      const header = /^\s*\[([^\]]+)\]/.exec(lines[i]!)
      if (header) current = header[1]!.trim()
      const m = new RegExp(`^\\s*#?\\s*${name}\\s*=`).exec(lines[i]!)
      if (!done && m && current === section && !lines[i]!.trimStart().startsWith('##')) {
        lines[i] = `${name} = ${value}`
        done = true
      }
    }
    if (!done) throw new Error(`the config template has no line for ${key}`)
    text = lines.join('\n')
  }
  return text
}

describe('the x64 bundle installed and run with no network (issue 14)', () => {
  let work: string
  let tree: string
  let release: string
  let pty: PtyPair | null = null
  let gateway: GatewayProcess | null = null
  const children: ChildProcess[] = []

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'steppelink-bundle-'))
    const bundle = theBundle(join(work, 'build'))
    expect(statSync(bundle).size).toBeGreaterThan(10e6)
    run(['ip', 'netns', 'del', NS])
    const made = run(['ip', 'netns', 'add', NS])
    if (made.status !== 0) throw new Error(`ip netns add failed (root needed): ${made.stderr}`)
    run(['ip', '-n', NS, 'link', 'set', 'lo', 'up'])
    tree = systemTree(join(work, 'root'))
    const unpacked = join(work, 'unpacked')
    mkdirSync(unpacked)
    const tar = run(inNs('tar', '-xzf', bundle, '-C', unpacked))
    expect(tar.status, tar.stderr).toBe(0)
    release = join(unpacked, releaseName(bundle))
  }, 900_000)

  afterAll(async () => {
    await gateway?.kill('SIGTERM')
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
    await pty?.close()
    run(['ip', 'netns', 'del', NS])
    if (work) rmSync(work, { recursive: true, force: true })
  })

  it('the namespace has no network: no name resolves, no address outside is reachable', () => {
    const dns = run(inNs('getent', 'hosts', 'registry.npmjs.org'), { timeoutMs: 20_000 })
    expect(dns.status).not.toBe(0)
    const tcp = run(inNs('bash', '-c', 'exec 3<>/dev/tcp/104.16.0.35/443'), { timeoutMs: 20_000 })
    expect(tcp.status).not.toBe(0)
    expect(tcp.stderr).toMatch(/unreachable/i)
  })

  it('install.sh installs it into a fresh tree: manifest checked, selftest run, user in dialout, config from the template, unit and journald drop-in', () => {
    const r = run(inNs(join(release, 'install.sh'), '--root', tree), { timeoutMs: 300_000 })
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0)
    const current = join(tree, 'opt', 'steppelink', 'current')
    expect(existsSync(join(current, 'bin', 'steppelink'))).toBe(true)
    expect(readlinkSync(join(tree, 'usr', 'local', 'bin', 'steppelink'))).toBe('/opt/steppelink/current/bin/steppelink')
    const passwd = readFileSync(join(tree, 'etc', 'passwd'), 'utf8')
    expect(passwd).toMatch(/^steppelink:/m)
    expect(readFileSync(join(tree, 'etc', 'group'), 'utf8')).toMatch(/^dialout:[^:]*:\d+:(.*,)?steppelink(,|$)/m)
    expect(existsSync(join(tree, 'etc', 'steppelink', 'gateway.toml'))).toBe(true)
    expect(existsSync(join(tree, 'var', 'lib', 'steppelink'))).toBe(true)
    const unit = readFileSync(join(tree, 'etc', 'systemd', 'system', 'steppelink-gateway.service'), 'utf8')
    expect(unit).toMatch(/^Type=notify$/m)
    expect(unit).toMatch(/^ExecStart=\/opt\/steppelink\/current\/runtime\/bin\/node /m)
    expect(readFileSync(join(tree, 'etc', 'systemd', 'journald.conf.d', 'steppelink.conf'), 'utf8')).toMatch(/^Storage=volatile$/m)
    // The bundle's runtime, not this machine's.
    const v = run(inNs(join(current, 'runtime', 'bin', 'node'), '--version'))
    expect(v.stdout.trim()).toBe(JSON.parse(readFileSync(join(current, 'bundle.json'), 'utf8')).node)
  }, 320_000)

  it('the installed gateway carries an alarm from a simulated terminal to the broker and the answer back; doctor says healthy', async () => {
    const current = join(tree, 'opt', 'steppelink', 'current')
    const steppelink = join(current, 'bin', 'steppelink')
    const etc = join(tree, 'etc', 'steppelink')
    const data = join(tree, 'var', 'lib', 'steppelink')

    const keys = run(inNs(steppelink, 'keygen', '--out', join(etc, 'keys')))
    expect(keys.status, keys.stderr).toBe(0)
    pty = await openPtyPair()
    const config = join(etc, 'gateway.toml')
    writeFileSync(
      config,
      configure(readFileSync(config, 'utf8'), {
        data: JSON.stringify(data),
        'gateway.id': '"xlg-test-0001"',
        'serial.path': JSON.stringify(pty.a),
        'mqtt.brokers': '["mqtt://127.0.0.1:1883"]',
        'mqtt.username': '"xlg-test-0001"',
        'platformKeys.current': JSON.stringify(join(etc, 'keys', 'platform.pub')),
      }),
    )

    // The platform: mosquitto and the bundle's console, both in the namespace.
    const conf = join(work, 'mosquitto.conf')
    writeFileSync(conf, 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n')
    const broker = start(inNs(mosquitto, '-c', conf))
    children.push(broker.child)
    // Listening is seen from inside the namespace only: a TCP connect there.
    await waitUntil(() => broker.child.exitCode !== null || run(inNs('bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/1883')).status === 0, {
      timeoutMs: 10_000,
      what: 'mosquitto in the namespace',
    })
    expect(broker.child.exitCode, broker.out()).toBeNull()
    const console_ = start(
      inNs(steppelink, 'console', '--broker', 'mqtt://127.0.0.1:1883', '--ack', 'auto', '--dispatch-after', '1', '--resolve-after', '2', '--signing-key', join(etc, 'keys', 'platform.key'), '--json'),
    )
    children.push(console_.child)

    gateway = startGateway(['--config', config], {}, [], { launcher: inNs(steppelink) })
    await gateway.waitForLog((l) => l.msg === 'gateway ready', 'the installed gateway is ready', 60_000)

    const terminal = start(inNs(steppelink, 'sim', 'terminal', '--serial', pty.b, '--id', 'SL-T-0001', '--press', 'emergency', '--until', 'resolved', '--timeout', '120'))
    children.push(terminal.child)
    const code = await terminal.exited
    expect(code, `terminal:\n${terminal.out()}\nconsole:\n${console_.out().slice(-3000)}\ngateway:\n${JSON.stringify(gateway.logs.slice(-10))}`).toBe(0)
    expect(terminal.out()).toMatch(/resolved/i)
    // The console saw the alarm from this gateway, through the broker.
    expect(console_.out()).toMatch(/xlg-test-0001/)
    expect(existsSync(join(data, 'gateway.db'))).toBe(true)

    const doctor = run(inNs(steppelink, 'doctor', '-c', config, '--json'), { timeoutMs: 120_000 })
    const report = JSON.parse(doctor.stdout) as { healthy: boolean; checks: { id: string; level: string; text: string }[] }
    expect(report.healthy, doctor.stdout).toBe(true)
    expect(doctor.status).toBe(0)
    const level = (id: string) => report.checks.find((c) => c.id === id)?.level
    expect(level('config')).toBe('ok')
    expect(level('gateway')).toBe('ok')
    expect(level('broker')).toBe('ok')
    expect(level('store')).toBe('ok')
    expect(level('platform-keys')).toBe('ok')
  }, 300_000)
})
