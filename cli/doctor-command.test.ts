/**
 * `steppelink doctor` (issue 14) on a temporary config: each fault a board meets says FAIL
 * with what to do; a healthy setup (a pseudo-terminal with a simulated terminal on its other
 * end, a broker with the ACL) exits 0; `--json` has the shape scripts read.
 */

import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { Aedes } from 'aedes'
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest'
import { ramMemory, TerminalDevice } from '../device-sim/terminal.js'
import { waitUntil } from '../device-sim/wait.js'
import { runOnSerial, type RunningTerminal } from '../device-sim/serial-runner.js'
import { aclHooks, brokerAcl, credentialsOf, startAedes } from '../device-sim/broker.js'
import { tokenPath } from '../gateway/household/web/secrets.js'
import { SqliteStore } from '../gateway/sqlite-store.js'
import { makeTestPki, type TestPki } from '../tests/helpers/tls-certs.js'
import { openPtyPair, type PtyPair } from '../tests/helpers/pty.js'
import type { CheckResult } from './doctor-checks.js'
import { doctorCommand, type DoctorIo } from './doctor-command.js'

const GATEWAY = 'gw-doc'
const acl = brokerAcl('steppelink/v1', { gateways: [{ id: GATEWAY, area: null }] })
const password = credentialsOf(acl, GATEWAY).password

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'steppelink-doctor-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A config file in a temp dir: a writable data directory, the page off, `over` merged on top. */
function configFile(over: { serial?: string; brokers?: string[]; data?: string; limits?: object; tls?: object; password?: string | null; household?: object }): string {
  const dir = tempDir()
  const data = over.data ?? join(dir, 'data')
  mkdirSync(data, { recursive: true })
  const file = join(dir, 'gateway.json')
  writeFileSync(
    file,
    JSON.stringify({
      data,
      gateway: { id: GATEWAY },
      serial: { path: over.serial ?? join(dir, 'no-such-tty') },
      mqtt: {
        brokers: over.brokers ?? ['mqtt://127.0.0.1:1'],
        username: GATEWAY,
        ...(over.password === null ? {} : { password: over.password ?? password }),
        ...(over.tls ? { tls: over.tls } : {}),
      },
      ...(over.limits ? { limits: over.limits } : {}),
      household: over.household ?? { enabled: false },
    }),
  )
  return file
}

async function doctor(args: string[], io: Partial<DoctorIo> = {}): Promise<{ code: number; out: string; err: string; checks: CheckResult[] }> {
  const out: string[] = []
  const err: string[] = []
  const run = (a: string[]) => doctorCommand(a, { stdout: (l) => out.push(l), stderr: (l) => err.push(l), env: {}, ntpSynchronized: async () => null, ...io })
  const code = await run(['--timeout', '2', '--listen', '2', ...args])
  // The same run as JSON, for the lines as data.
  const json: string[] = []
  await doctorCommand(['--timeout', '2', '--listen', '2', ...args, '--json'], { stdout: (l) => json.push(l), stderr: () => {}, env: {}, ntpSynchronized: async () => null, ...io })
  const parsed = JSON.parse(json.join('\n')) as { checks: CheckResult[] }
  return { code, out: out.join('\n'), err: err.join('\n'), checks: parsed.checks }
}

const check = (checks: CheckResult[], id: string) => {
  const c = checks.find((x) => x.id === id)
  if (!c) throw new Error(`no ${id} check in ${JSON.stringify(checks)}`)
  return c
}

let broker: Awaited<ReturnType<typeof startAedes>>
beforeAll(async () => {
  broker = await startAedes({ acl })
})
afterAll(async () => {
  await broker.close()
})

describe('steppelink doctor', () => {
  it('a missing serial device: FAIL with what to do, exit 1', async () => {
    const file = configFile({ brokers: [broker.url] })
    const r = await doctor(['-c', file])
    expect(r.code).toBe(1)
    const serial = check(r.checks, 'serial')
    expect(serial.level).toBe('fail')
    expect(serial.text).toMatch(/the serial device .*no-such-tty does not exist/)
    expect(serial.fix).toMatch(/ls -l \/dev\/serial\/by-id/)
    expect(r.out).toMatch(/^FAIL {2}serial /m)
    expect(r.out).toMatch(/what to do: check that the terminal's USB adapter is plugged in/)
    expect(r.out).toMatch(/NOT HEALTHY: 1 failed/)
    // No terminal check without a device; the rest still ran.
    expect(r.checks.map((c) => c.id)).not.toContain('terminal')
    expect(check(r.checks, 'broker').level).toBe('ok')
  })

  it('a data directory it may not write: FAIL', async () => {
    const dir = tempDir()
    const data = join(dir, 'data')
    mkdirSync(data)
    // Root writes anywhere the permission bits forbid: make the directory immutable instead.
    if (process.getuid?.() === 0) {
      execFileSync('chattr', ['+i', data])
      cleanups.push(() => {
        execFileSync('chattr', ['-i', data])
      })
    } else {
      chmodSync(data, 0o500)
      cleanups.push(() => chmodSync(data, 0o700))
    }
    const r = await doctor(['-c', configFile({ data, brokers: [broker.url] })])
    expect(r.code).toBe(1)
    const store = check(r.checks, 'store')
    expect(store.level).toBe('fail')
    expect(store.text).toMatch(/cannot write in the data directory/)
    expect(store.fix).toMatch(/chown|read-only/)
  })

  it('free space against limits.reserveMB: FAIL below the reserve, warn close to it', async () => {
    const below = await doctor(['-c', configFile({ brokers: [broker.url], limits: { reserveMB: 1_048_576 } })])
    expect(check(below.checks, 'disk')).toMatchObject({ level: 'fail', text: expect.stringMatching(/below the reserve: .* MB free of .* MB, 1048576 MB kept for alarms/) })
    const { statfsSync } = await import('node:fs')
    const s = statfsSync(tmpdir())
    const freeMB = Math.floor((Number(s.bavail) * Number(s.bsize)) / 1048576)
    const close = await doctor(['-c', configFile({ brokers: [broker.url], limits: { reserveMB: Math.floor(freeMB / 2) } })])
    expect(check(close.checks, 'disk').level).toBe('warn')
  })

  it('a broker that refuses the credentials: FAIL with the CONNACK and the settings to check', async () => {
    const r = await doctor(['-c', configFile({ brokers: [broker.url], password: 'wrong-password' })])
    expect(r.code).toBe(1)
    const b = check(r.checks, 'broker')
    expect(b.level).toBe('fail')
    expect(b.text).toMatch(/TCP \d+ open; MQTT CONNECT: the broker refused our user name\/password .*CONNACK 4, bad user name or password/)
    expect(b.fix).toMatch(/mqtt.username \(gw-doc\)/)
    // The password is never said.
    expect(r.out).not.toContain('wrong-password')
    expect(JSON.stringify(r.checks)).not.toContain(password)
  })

  it('a broker that is down: connection refused, and a fallback that works makes it a warning', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as net.AddressInfo).port
        s.close(() => resolve(port))
      })
    })
    const down = `mqtt://127.0.0.1:${closed}`
    const r = await doctor(['-c', configFile({ brokers: [down] })])
    expect(r.code).toBe(1)
    expect(check(r.checks, 'broker')).toMatchObject({ level: 'fail', text: `broker ${down}: TCP to 127.0.0.1:${closed} refused`, fix: expect.stringMatching(/the broker is down/) })
    const withFallback = await doctor(['-c', configFile({ brokers: [down, broker.url] })])
    expect(withFallback.checks.filter((c) => c.id === 'broker').map((c) => c.level)).toEqual(['warn', 'ok'])
  })

  it('a link that goes silent: doctor gives up at --timeout, never hangs', async () => {
    // Takes the TCP connection and never answers, as a broker behind a dead link does.
    const silent = net.createServer(() => {})
    const held = new Set<net.Socket>()
    silent.on('connection', (s) => held.add(s))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()))
    cleanups.push(async () => {
      for (const s of held) s.destroy()
      await new Promise<void>((resolve) => silent.close(() => resolve()))
    })
    const url = `mqtt://127.0.0.1:${(silent.address() as net.AddressInfo).port}`
    const started = performance.now()
    const r = await doctor(['-c', configFile({ brokers: [url] }), '--timeout', '1'])
    // Two runs (text and JSON), each bounded by the 1 s timeout and its slack.
    expect(performance.now() - started).toBeLessThan(8_000)
    expect(check(r.checks, 'broker')).toMatchObject({ level: 'fail', text: expect.stringMatching(/TCP \d+ open; MQTT CONNECT: no CONNACK within 1 s/) })
  })

  describe('TLS', () => {
    let pki: TestPki
    let tlsBroker: { url: string; close: () => Promise<void> }
    const startTlsBroker = async (server: { cert: string; key: string }) => {
      const aedes = await Aedes.createBroker(aclHooks(acl))
      const sockets = new Set<net.Socket>()
      const srv = tls.createServer({ cert: readFileSync(server.cert), key: readFileSync(server.key), ca: readFileSync(pki.ca.cert), requestCert: true, rejectUnauthorized: true }, (socket) => {
        sockets.add(socket)
        socket.on('close', () => sockets.delete(socket))
        aedes.handle(socket)
      })
      srv.on('tlsClientError', () => {})
      await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()))
      const port = (srv.address() as net.AddressInfo).port
      return {
        url: `mqtts://127.0.0.1:${port}`,
        close: async () => {
          for (const s of sockets) s.destroy()
          await new Promise<void>((resolve) => srv.close(() => resolve()))
          await new Promise<void>((resolve) => aedes.close(() => resolve()))
        },
      }
    }
    beforeAll(() => {
      pki = makeTestPki()
    })
    afterAll(() => {
      pki.remove()
    })

    it('healthy TLS: the chain verifies, the days left of both certificates are said', async () => {
      tlsBroker = await startTlsBroker(pki.server)
      cleanups.push(() => tlsBroker.close())
      const r = await doctor(['-c', configFile({ brokers: [tlsBroker.url], tls: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key } })])
      expect(check(r.checks, 'broker')).toMatchObject({
        level: 'ok',
        text: expect.stringMatching(/TLS ok \(the broker's certificate for localhost verifies, 36\d days left\); MQTT CONNECT accepted for user gw-doc/),
      })
      expect(check(r.checks, 'certificate')).toMatchObject({ level: 'ok', text: expect.stringMatching(/the client certificate \(CN gw-test\) is valid until .* \(36\d days\)/) })
    })

    it('an expired client certificate: FAIL, and the broker refuses it', async () => {
      tlsBroker = await startTlsBroker(pki.server)
      cleanups.push(() => tlsBroker.close())
      const r = await doctor(['-c', configFile({ brokers: [tlsBroker.url], tls: { ca: pki.ca.cert, cert: pki.expiredClient.cert, key: pki.expiredClient.key } })])
      expect(r.code).toBe(1)
      expect(check(r.checks, 'certificate')).toMatchObject({ level: 'fail', text: expect.stringMatching(/CN gw-expired\) expired on 2020-02-01/) })
      expect(check(r.checks, 'broker')).toMatchObject({
        level: 'fail',
        text: expect.stringMatching(/TLS: the broker (refused our client certificate|closed the TLS connection right after the handshake: it refused our client certificate)/),
      })
    })

    it('a broker whose certificate is for another name: FAIL, with the names it is for', async () => {
      tlsBroker = await startTlsBroker(pki.server)
      cleanups.push(() => tlsBroker.close())
      const r = await doctor(['-c', configFile({ brokers: [tlsBroker.url], tls: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, servername: 'broker.other.example' } })])
      expect(r.code).toBe(1)
      expect(check(r.checks, 'broker')).toMatchObject({ level: 'fail', text: expect.stringMatching(/certificate name mismatch: the broker's certificate is for DNS:localhost, IP Address:127.0.0.1/) })
    })

    it("a broker with a foreign CA's certificate: FAIL, not signed by mqtt.tls.ca", async () => {
      tlsBroker = await startTlsBroker(pki.foreignServer)
      cleanups.push(() => tlsBroker.close())
      const r = await doctor(['-c', configFile({ brokers: [tlsBroker.url], tls: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key } })])
      expect(r.code).toBe(1)
      expect(check(r.checks, 'broker')).toMatchObject({
        level: 'fail',
        text: expect.stringMatching(/TCP \d+ open; the broker's certificate \(CN localhost\) does not verify: the broker's certificate is not signed by the CA in mqtt.tls.ca/),
      })
    })
  })

  it('healthy: a pseudo-terminal with a terminal answering, a broker that takes the credentials; exit 0; --json', async () => {
    const pty: PtyPair = await openPtyPair()
    cleanups.push(() => pty.close())
    const device = new TerminalDevice({ address: 3, terminal: 'SL-T-DOC', memory: ramMemory(), now: Date.now() })
    const terminal: RunningTerminal = runOnSerial(device, { path: pty.b })
    cleanups.push(() => terminal.stop())
    await waitUntil(() => terminal.line.state === 'open', { timeoutMs: 10_000, what: "the terminal's end of the cable open" })
    if (process.getuid?.() === 0) {
      // As a USB adapter is (root:dialout 0660): checked as root, doctor asks whether the service's group may open it.
      const dialout = Number(readFileSync('/etc/group', 'utf8').match(/^dialout:[^:]*:(\d+):/m)?.[1])
      const device = realpathSync(pty.a)
      chownSync(device, 0, dialout)
      chmodSync(device, 0o660)
    }
    const file = configFile({ serial: pty.a, brokers: [broker.url] })
    const r = await doctor(['-c', file, '--listen', '10'])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/^healthy/m)
    expect(check(r.checks, 'config')).toMatchObject({ level: 'ok', text: expect.stringContaining(`the configuration ${file} loads and is valid: gateway gw-doc`) })
    expect(check(r.checks, 'serial').level).toBe('ok')
    expect(check(r.checks, 'terminal')).toMatchObject({ level: 'ok', text: `a terminal answers on ${pty.a}: SL-T-DOC (address 3)` })
    expect(check(r.checks, 'integrity').level).toBe('ok')
    expect(check(r.checks, 'broker')).toMatchObject({ level: 'ok', text: `broker ${broker.url}: TCP ${broker.port} open; MQTT CONNECT accepted for user gw-doc` })
    expect(check(r.checks, 'platform-keys').level).toBe('warn')

    const json: string[] = []
    expect(await doctorCommand(['-c', file, '--json', '--timeout', '2', '--listen', '10'], { stdout: (l) => json.push(l), env: {}, ntpSynchronized: async () => true })).toBe(0)
    const report = JSON.parse(json.join('\n')) as { healthy: boolean; config: string; checks: CheckResult[] }
    expect(Object.keys(report)).toEqual(['healthy', 'config', 'checks'])
    expect(report).toMatchObject({ healthy: true, config: file })
    expect(report.checks.map((c) => c.id)).toEqual(['config', 'gateway', 'serial', 'terminal', 'store', 'disk', 'integrity', 'clock', 'broker', 'platform-keys'])
    for (const c of report.checks) {
      expect(['ok', 'warn', 'fail']).toContain(c.level)
      expect(typeof c.text).toBe('string')
      if (c.level !== 'ok') expect(typeof c.fix).toBe('string')
    }
    expect(check(report.checks, 'clock').text).toMatch(/synchronised by NTP/)
  })

  it('a store held by a running gateway: not fought over, the serial port left alone', async () => {
    const dir = tempDir()
    const data = join(dir, 'data')
    const store = new SqliteStore({ path: join(data, 'gateway.db') })
    store.bump('gateway-boot')
    cleanups.push(() => store.close())
    const pty = await openPtyPair()
    cleanups.push(() => pty.close())
    let opened = 0
    const r = await doctor(['-c', configFile({ data, serial: pty.a, brokers: [broker.url] })], {
      openPort: async () => {
        opened++
        throw new Error('doctor must not open the port of a running gateway')
      },
    })
    expect(opened).toBe(0)
    expect(check(r.checks, 'integrity')).toMatchObject({ level: 'ok', text: expect.stringMatching(/held by the running gateway \(locked\)/) })
    expect(check(r.checks, 'gateway')).toMatchObject({ level: 'ok', text: expect.stringMatching(/^the gateway is running \(it holds the store\)/) })
    expect(check(r.checks, 'terminal').level).toBe('warn')
  })

  it('a running gateway is asked through its local API which terminals answer', async () => {
    const dir = tempDir()
    const data = join(dir, 'data')
    const store = new SqliteStore({ path: join(data, 'gateway.db') })
    store.bump('gateway-boot')
    cleanups.push(() => store.close())
    const token = 'a'.repeat(43)
    writeFileSync(tokenPath(data), token)
    const pty = await openPtyPair()
    cleanups.push(() => pty.close())
    const asked: string[] = []
    const snapshot = {
      verdict: 'an alarm pressed now would get through',
      uplink: { online: true },
      terminals: [
        { terminal: 'SL-T-0001', address: 1, answering: true, lost: false },
        { terminal: 'SL-T-0002', address: 2, answering: false, lost: true },
      ],
    }
    const fetchStub = (async (url: string | URL | Request, init?: RequestInit) => {
      asked.push(`${String(url)} ${new Headers(init?.headers).get('authorization')}`)
      return new Response(JSON.stringify(snapshot), { status: 200, headers: { 'content-type': 'application/json' } })
    }) as typeof fetch
    const r = await doctor(['-c', configFile({ data, serial: pty.a, brokers: [broker.url], household: { enabled: true, listen: '127.0.0.1', port: 18099 } })], {
      fetch: fetchStub,
      openPort: async () => {
        throw new Error('doctor must not open the port of a running gateway')
      },
    })
    expect(asked[0]).toBe(`http://127.0.0.1:18099/api/status Bearer ${token}`)
    expect(check(r.checks, 'gateway')).toMatchObject({ level: 'ok', text: 'the gateway is running, uplink online; its page says: an alarm pressed now would get through' })
    expect(check(r.checks, 'terminal')).toMatchObject({ level: 'ok', text: 'the running gateway hears SL-T-0001 (address 1)' })
    expect(r.out).not.toContain(token)
  })

  it('a configuration that does not load: FAIL, nothing else checked', async () => {
    const dir = tempDir()
    const file = join(dir, 'gateway.toml')
    writeFileSync(file, '[mqtt]\nkeepalive = "sixty"\n')
    const r = await doctor(['-c', file])
    expect(r.code).toBe(1)
    expect(r.checks).toHaveLength(1)
    expect(check(r.checks, 'config')).toMatchObject({ level: 'fail', text: expect.stringMatching(/mqtt.keepalive: expected an integer from 5 to 3600/) })
  })

  it('called wrong: exit 2 with the usage line', async () => {
    const err: string[] = []
    expect(await doctorCommand(['--timeout', 'soon'], { stderr: (l) => err.push(l) })).toBe(2)
    expect(err.join('\n')).toMatch(/steppelink doctor: --timeout must be a number of seconds/)
  })
})
