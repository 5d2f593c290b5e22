/**
 * mosquitto as a child process on 127.0.0.1: the broker most deployments run. The tests,
 * the soak script and the benchmarks start it from here (it must be compiled, so it lives
 * beside startAedes rather than in tests/).
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { mosquittoAcl } from '../protocol/mqtt-acl.js'
import { listen, type BrokerAcl } from './broker.js'

export const MOSQUITTO_PATH = '/usr/sbin/mosquitto'
export const MOSQUITTO_PASSWD_PATH = '/usr/bin/mosquitto_passwd'
/** The message of the error thrown when mosquitto is missing: the line to run. */
export const MOSQUITTO_INSTALL = 'apt-get update && apt-get install -y mosquitto'

export interface MosquittoBroker {
  /** mqtt://127.0.0.1:port, or mqtts:// with `tls`. */
  url: string
  port: number
  /** Holds mosquitto.conf and, with persistence, mosquitto.db. */
  dir: string
  /** SIGTERM (mosquitto saves its persistence), wait for exit; removes dir if it made it. */
  close(): Promise<void>
  /** Stops (SIGTERM, persistence saved) and starts again on the same port and dir. */
  restart(): Promise<void>
  /** The running process's pid (undefined while stopped): for /proc sampling. */
  readonly pid: number | undefined
}

const live = new Set<ChildProcess>()
/** The last 4 kB of each child's stderr, for error messages. */
const tails = new WeakMap<ChildProcess, () => string>()
let exitHookInstalled = false

/**
 * Spawns /usr/sbin/mosquitto with a generated config: a listener on 127.0.0.1:port,
 * anonymous access, persistence in `dir` when asked. Resolves once it accepts connections.
 * With `acl`, the topic permissions of MQTT.md [MQTT-2.7]-[MQTT-2.10] as deployed: no
 * anonymous access, a password file made by `mosquitto_passwd` from the accounts, and
 * the ACL file generated from the rules for them (`aclText` instead, if given: the
 * shipped deploy/mosquitto/acl and its area lines, say).
 */
export async function startMosquitto(
  opts: {
    port?: number
    persistence?: boolean
    dir?: string
    /** Extra mosquitto.conf lines, appended (a bridge's `connection`, `address`, `topic` ...). */
    conf?: string[]
    /** Called when mosquitto exits by itself (not by close or restart), with its last stderr. */
    onCrash?: (how: string, stderr: string) => void
    /**
     * A TLS listener instead of plain TCP (file paths, PEM): the CA that client
     * certificates must be signed by, and the broker's own certificate and key. With
     * `requireCertificate` (mutual TLS) a client without a valid certificate is refused in
     * the handshake.
     */
    tls?: { cafile: string; certfile: string; keyfile: string; requireCertificate?: boolean }
    /** Topic permissions: the accounts (password file) and the rules (acl_file). */
    acl?: BrokerAcl
    /** The acl_file's text; default: mosquittoAcl of `acl`'s accounts. */
    aclText?: string
  } = {},
): Promise<MosquittoBroker> {
  if (!existsSync(MOSQUITTO_PATH)) throw new Error(MOSQUITTO_INSTALL)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once('exit', () => {
      for (const child of live) child.kill('SIGKILL')
    })
  }
  const ownDir = opts.dir === undefined
  const dir = opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'steppelink-mosquitto-')))
  const confPath = path.join(dir, 'mosquitto.conf')
  const persistence = opts.persistence ?? false
  const auth = opts.acl ? await writeAuthFiles(dir, opts.acl, opts.aclText) : null

  const writeConf = (port: number) =>
    writeFile(
      confPath,
      [
        `listener ${port} 127.0.0.1`,
        ...(auth ? ['allow_anonymous false', `password_file ${auth.passwordFile}`, `acl_file ${auth.aclFile}`] : ['allow_anonymous true']),
        ...(opts.tls ? [`cafile ${opts.tls.cafile}`, `certfile ${opts.tls.certfile}`, `keyfile ${opts.tls.keyfile}`, `require_certificate ${opts.tls.requireCertificate ?? false}`] : []),
        // With both, the client certificate's CN is the user name the ACL sees (deploy/mosquitto/mosquitto.conf, port 8884).
        ...(opts.tls?.requireCertificate && auth ? ['use_identity_as_username true'] : []),
        `persistence ${persistence}`,
        `persistence_location ${dir}${path.sep}`,
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        'log_type notice',
        // Run as root, mosquitto drops to the `mosquitto` user, which cannot write a
        // temporary dir made by root; "root" tells it to stay.
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        ...(opts.conf ?? []),
        '',
      ].join('\n'),
    )

  let port = opts.port ?? 0
  let child: ChildProcess | undefined
  for (let tries = 0; child === undefined; tries++) {
    const candidate = port !== 0 ? port : await freePort()
    await writeConf(candidate)
    try {
      child = await spawnReady(confPath, candidate)
      port = candidate
    } catch (e) {
      // A free port found by binding can be taken again before mosquitto binds it.
      if (opts.port !== undefined || tries >= 3 || !/address already in use/i.test((e as Error).message)) throw e
    }
  }

  let running: ChildProcess | undefined
  const watch = (c: ChildProcess) => {
    running = c
    c.once('exit', (code, signal) => {
      if (running === c) opts.onCrash?.(`${code ?? signal}`, tails.get(c)?.() ?? '')
    })
  }
  watch(child)
  const stop = async () => {
    const c = running
    running = undefined
    if (c !== undefined) await terminate(c)
  }
  let closing: Promise<void> | undefined
  return {
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    port,
    dir,
    close: () =>
      (closing ??= (async () => {
        await stop()
        if (ownDir) await rm(dir, { recursive: true, force: true })
      })()),
    restart: async () => {
      await stop()
      watch(await spawnReady(confPath, port))
    },
    get pid() {
      return running?.pid
    },
  }
}

/**
 * The password file (`mosquitto_passwd -U` over `user:password` lines, which hashes them in
 * place) and the ACL file of `acl`, in `dir`.
 */
async function writeAuthFiles(dir: string, acl: BrokerAcl, aclText?: string): Promise<{ passwordFile: string; aclFile: string }> {
  const passwordFile = path.join(dir, 'passwd')
  const aclFile = path.join(dir, 'acl')
  const users = Object.entries(acl.accounts)
  for (const [user, a] of users)
    if (/[:\n]/.test(user) || a.password.includes('\n')) throw new Error(`mosquitto password file: user name ${JSON.stringify(user)} or its password has ':' or a new line`)
  await writeFile(passwordFile, users.map(([user, a]) => `${user}:${a.password}\n`).join(''), { mode: 0o600 })
  const made = spawnSync(MOSQUITTO_PASSWD_PATH, ['-U', passwordFile], { encoding: 'utf8' })
  if (made.status !== 0) throw new Error(`mosquitto_passwd -U ${passwordFile} failed (${made.status ?? made.error?.message}): ${made.stderr}`)
  const text =
    aclText ??
    mosquittoAcl({
      prefix: acl.prefix,
      platformUsers: users.filter(([, a]) => a.who.role === 'platform').map(([user]) => user),
      gateways: users.flatMap(([user, a]) => (a.who.role === 'gateway' ? [{ id: user, area: a.who.area }] : [])),
    })
  await writeFile(aclFile, text, { mode: 0o600 })
  return { passwordFile, aclFile }
}

async function spawnReady(confPath: string, port: number): Promise<ChildProcess> {
  const child = spawn(MOSQUITTO_PATH, ['-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] })
  live.add(child)
  child.once('exit', () => live.delete(child))
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (s: string) => {
    stderr = (stderr + s).slice(-4000)
  })
  tails.set(child, () => stderr)
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`mosquitto exited (${child.exitCode ?? child.signalCode}) before accepting connections:\n${stderr}`)
    }
    if (await canConnect(port)) {
      // Something else may own the port; mosquitto then exits with "Address already in use".
      if (child.exitCode === null && child.signalCode === null) return child
      continue
    }
    if (Date.now() > deadline) {
      await terminate(child)
      throw new Error(`mosquitto did not accept connections on 127.0.0.1:${port} within 10 s:\n${stderr}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** A port that was free a moment ago (and so refuses connections until someone binds it). */
export async function freePort(): Promise<number> {
  const server = net.createServer()
  await listen(server, 0)
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
