/**
 * The checks of `steppelink doctor` (issue 14), each a line for a member of the household
 * or a technician on the phone: ok, warn or fail, what was found, and what to do.
 *
 * Rules they keep:
 * - Never disturb a running gateway: the store is opened read-only (the gateway holds it
 *   under an exclusive lock, so a busy store also says "a gateway runs here"); the serial
 *   port is opened only when no gateway runs (else the running gateway is asked, through
 *   its local API, which terminals answer); the broker is reached with a client id of its
 *   own, a clean session and no will, so the gateway's session is never taken over.
 * - Never hang: every check that waits on something outside runs under `timeoutMs`.
 * - Never print a secret: passwords, keys and tokens are not in any line.
 */

import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { lookup } from 'node:dns/promises'
import { accessSync, constants, existsSync, readFileSync, realpathSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs'
import { isIP, connect as netConnect, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls'
import { GatewayLink } from '../protocol/link.js'
import { connackRefusal } from '../protocol/mqtt-acl.js'
import type { GatewayConfig } from '../gateway/config.js'
import { readPlatformKeys } from '../gateway/platform-keys.js'
import { APPLICATION_ID } from '../gateway/sqlite-db.js'
import { certInfo, EXPIRY_WARNING_MS, isTlsUrl, type TlsMaterial } from '../gateway/tls.js'
import { describeTlsError } from '../gateway/uplink-client.js'
import { describeOpenError, type OpenPort } from '../io/serial-line.js'

export type Level = 'ok' | 'warn' | 'fail'

/** One line of the report. */
export interface CheckResult {
  /** Stable name for scripts: 'config', 'serial', 'terminal', 'store', 'disk', 'integrity', 'clock', 'broker', 'certificate', 'platform-keys', 'gateway'. */
  id: string
  level: Level
  /** What was found, in plain words. */
  text: string
  /** What to do about it; absent when nothing is to be done. */
  fix?: string
}

export interface DoctorEnv {
  timeoutMs: number
  now: () => number
  /** How to open the serial port (default: the serialport package, as the gateway). */
  openPort: OpenPort
  /** How long to listen for a terminal after announcing, ms (default 3,000, within timeoutMs). */
  listenMs: number
  /** The running gateway's status through its local API, or why not (cli/local-api.ts). */
  askGateway: () => Promise<{ ok: true; status: GatewayStatus } | { ok: false; why: string }>
  /** `timedatectl show`'s NTPSynchronized, or null when it cannot be asked (no systemd). */
  ntpSynchronized: () => Promise<boolean | null>
  /** The user doctor runs as, for the permission checks. */
  uid: number
}

/** The part of GET /api/status (HouseholdSnapshot) doctor reads. */
export interface GatewayStatus {
  verdict?: string
  uplink?: { online?: boolean }
  terminals?: { terminal: string; address: number; answering: boolean; lost: boolean }[]
}

/**
 * No time before this is plausible for this build: the clock of a board without a
 * real-time clock that was not told the time reads 1970, or the day its image was made.
 * Raised with each release (the day it was made).
 */
export const BUILT_NOT_BEFORE = Date.UTC(2026, 11, 1)

const DAY = 86_400_000

/** Runs `work`, or says after `ms` that it did not finish. */
export async function within<T>(ms: number, work: Promise<T>, onTimeout: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(onTimeout())
      } catch (err) {
        reject(err)
      }
    }, ms)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`
const mb = (bytes: number) => `${Math.round(bytes / 1048576)} MB`
const errText = (err: unknown) => ((err as Error)?.message ?? String(err)).replace(/^Error:?\s*/, '')
const errCode = (err: unknown) => (err as { code?: unknown })?.code

// ------------------------------------------------------------------ the store

/** Whether a gateway holds the store: it keeps it under an exclusive lock from start to stop. */
export type StoreLock = 'locked' | 'free' | 'absent'

function storePath(config: GatewayConfig): string {
  return join(config.data, 'gateway.db')
}

/** The mount that holds `dir`: the longest mount point that is a prefix of it, from /proc/self/mounts' text. */
export function mountOf(dir: string, mounts: string): { mountpoint: string; fstype: string } | null {
  // Octal escapes: a space in a mount point is \040.
  const unoctal = (f: string) => f.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)))
  let best: { mountpoint: string; fstype: string } | null = null
  for (const line of mounts.split('\n')) {
    const [, point, fstype] = line.split(' ')
    if (point === undefined || fstype === undefined) continue
    const mountpoint = unoctal(point)
    const inside = mountpoint === '/' || dir === mountpoint || dir.startsWith(`${mountpoint}/`)
    // The later of two mounts on one point is the one in force.
    if (inside && (best === null || mountpoint.length >= best.mountpoint.length)) best = { mountpoint, fstype }
  }
  return best
}

function readMounts(): string {
  try {
    return readFileSync('/proc/self/mounts', 'utf8')
  } catch {
    return ''
  }
}

/**
 * The data directory: there, writable by this user, and on a file system that outlives a
 * reboot. A store in RAM (tmpfs; the upper layer of Raspberry Pi OS's overlay root) would
 * lose every alarm not yet receipted at a power cut, which is exactly when they matter.
 */
export function checkDataDir(config: GatewayConfig, uid: number, mounts: string = readMounts()): CheckResult {
  const dir = config.data
  let st: ReturnType<typeof statSync>
  try {
    st = statSync(dir)
  } catch {
    const parent = dirname(dir)
    const canMake = (() => {
      try {
        accessSync(parent, constants.W_OK)
        return statSync(parent).isDirectory()
      } catch {
        return false
      }
    })()
    if (canMake) return { id: 'store', level: 'warn', text: `the data directory ${dir} does not exist yet`, fix: 'the gateway makes it at its first start; nothing to do if that is this user' }
    return {
      id: 'store',
      level: 'fail',
      text: `the data directory ${dir} does not exist, and ${parent} is not writable by this user`,
      fix: `make it for the gateway's user: sudo install -d -o steppelink -g steppelink -m 0750 ${dir} (the service unit's StateDirectory= makes /var/lib/steppelink)`,
    }
  }
  if (!st.isDirectory()) return { id: 'store', level: 'fail', text: `${dir} (data) is not a directory`, fix: 'give the gateway a directory of its own as data' }
  // A file made and removed: the real test, whatever the permission bits, ACLs or a read-only mount say.
  const probe = join(dir, `.doctor-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    writeFileSync(probe, 'doctor')
    rmSync(probe, { force: true })
  } catch (err) {
    const code = errCode(err)
    const fix =
      code === 'EROFS'
        ? 'the file system is read-only: a failing SD card remounts itself read-only (dmesg says), or the data directory is on a read-only root: give it a writable partition'
        : `let the gateway's user write there: sudo chown -R steppelink:steppelink ${dir}`
    return { id: 'store', level: 'fail', text: `cannot write in the data directory ${dir} (${errText(err)})`, fix }
  }
  let real = dir
  try {
    real = realpathSync(dir)
  } catch {}
  const mount = mountOf(real, mounts)
  if (mount && ['tmpfs', 'ramfs'].includes(mount.fstype)) {
    return {
      id: 'store',
      level: 'fail',
      text: `the data directory ${dir} is in RAM (${mount.fstype} on ${mount.mountpoint}): the store, and every alarm in it, would be gone at a reboot or a power cut`,
      fix: 'put data on a disk partition (README.md, "A read-only root": a partition of its own for the store), then restart the gateway',
    }
  }
  if (mount?.fstype === 'overlay') {
    return {
      id: 'store',
      level: 'warn',
      text: `the data directory ${dir} is on an overlay (${mount.mountpoint}): with Raspberry Pi OS's overlay file system its writes are in RAM and gone at a reboot`,
      fix: 'if the overlay file system is on (raspi-config), give the store a partition of its own (README.md, "A read-only root"); an overlay on disk (a container) is fine',
    }
  }
  const owner = uid === 0 && st.uid !== 0 ? '' : uid === 0 ? ' (owned by root: the service runs as steppelink and may not write it)' : ''
  return owner === ''
    ? { id: 'store', level: 'ok', text: `the data directory ${dir} is there and writable` }
    : { id: 'store', level: 'warn', text: `the data directory ${dir} is writable by root${owner}`, fix: `sudo chown -R steppelink:steppelink ${dir}` }
}

/** Free space on the data partition against limits.reserveMB. */
export function checkDiskSpace(config: GatewayConfig, free: (dir: string) => { free: number; size: number } | null = statfsOf): CheckResult {
  const space = free(existsSync(config.data) ? config.data : dirname(config.data))
  const reserve = config.limits.reserveMB * 1048576
  if (space === null) return { id: 'disk', level: 'warn', text: `cannot read the free space of ${config.data}`, fix: 'check that the data directory is on a mounted file system' }
  const said = `${mb(space.free)} free of ${mb(space.size)}, ${config.limits.reserveMB} MB kept for alarms (limits.reserveMB)`
  if (space.free < reserve) {
    return {
      id: 'disk',
      level: 'fail',
      text: `the data partition is below the reserve: ${said}; only alarms are stored now, status and requests are refused`,
      fix: 'free space on the partition (old logs: journalctl --vacuum-size=16M; other files), or give the store a larger card or partition',
    }
  }
  if (space.free < 4 * reserve || space.size < 4 * reserve) {
    return { id: 'disk', level: 'warn', text: `the data partition is close to the reserve: ${said}`, fix: 'free space on it, or give the store a larger partition, before only alarms fit' }
  }
  return { id: 'disk', level: 'ok', text: `disk: ${said}` }
}

function statfsOf(dir: string): { free: number; size: number } | null {
  try {
    const s = statfsSync(dir)
    return { free: Number(s.bavail) * Number(s.bsize), size: Number(s.blocks) * Number(s.bsize) }
  } catch {
    return null
  }
}

/**
 * The store's integrity (PRAGMA quick_check), opened read-only; and whether a gateway holds
 * it (SQLITE_BUSY: the exclusive lock of a running gateway, which doctor does not fight).
 */
export async function checkStoreIntegrity(config: GatewayConfig): Promise<{ result: CheckResult; lock: StoreLock }> {
  const path = storePath(config)
  if (!existsSync(path)) return { result: { id: 'integrity', level: 'ok', text: `no store yet at ${path}: the gateway makes it at its first start` }, lock: 'absent' }
  const { default: Database } = await import('better-sqlite3')
  let db: InstanceType<typeof Database> | null = null
  try {
    db = new Database(path, { readonly: true, fileMustExist: true, timeout: 0 })
    const appId = db.pragma('application_id', { simple: true }) as number
    if (appId !== APPLICATION_ID && appId !== 0) {
      return {
        result: {
          id: 'integrity',
          level: 'fail',
          text: `${path} is not a Steppelink store (SQLite application id ${appId})`,
          fix: "data points at another program's files: give the gateway its own data directory",
        },
        lock: 'free',
      }
    }
    const rows = db.pragma('quick_check') as { quick_check: string }[]
    const said = rows.map((r) => r.quick_check)
    if (said.length === 1 && said[0] === 'ok') return { result: { id: 'integrity', level: 'ok', text: `the store ${path} passes its integrity check (quick_check)` }, lock: 'free' }
    return {
      result: {
        id: 'integrity',
        level: 'fail',
        text: `the store ${path} is damaged: ${said.slice(0, 3).join('; ')}${said.length > 3 ? ` (and ${said.length - 3} more)` : ''}`,
        fix: `stop the gateway, keep a copy (cp ${path} ${path}.damaged), and call support: the terminals still hold every event not acknowledged; a failing SD card is the usual cause`,
      },
      lock: 'free',
    }
  } catch (err) {
    const code = String(errCode(err) ?? '')
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
      return { result: { id: 'integrity', level: 'ok', text: `the store ${path} is held by the running gateway (locked): its integrity is checked when the gateway is stopped` }, lock: 'locked' }
    }
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      return {
        result: {
          id: 'integrity',
          level: 'fail',
          text: `the store ${path} cannot be read as a database (${errText(err)})`,
          fix: `stop the gateway, move it aside (mv ${path} ${path}.lost) and call support`,
        },
        lock: 'free',
      }
    }
    return {
      result: { id: 'integrity', level: 'warn', text: `cannot open the store ${path} read-only to check it (${errText(err)})`, fix: "run doctor as the gateway's user or root (sudo)" },
      lock: 'free',
    }
  } finally {
    db?.close()
  }
}

// ------------------------------------------------------------------ the serial line

/** The serial device: there, a character device, and this user may open it. */
export function checkSerialDevice(config: GatewayConfig, uid: number): CheckResult {
  const path = config.serial.path
  let st: ReturnType<typeof statSync>
  try {
    st = statSync(path)
  } catch (err) {
    return {
      id: 'serial',
      level: 'fail',
      text: `the serial device ${path} does not exist (${errCode(err) ?? errText(err)})`,
      fix: 'check that the terminal\'s USB adapter is plugged in and powered; list ports with "ls -l /dev/serial/by-id/" and set serial.path to that stable path',
    }
  }
  if (!st.isCharacterDevice()) {
    return { id: 'serial', level: 'fail', text: `${path} is not a serial device (not a character device)`, fix: 'set serial.path to the adapter\'s device: "ls -l /dev/serial/by-id/"' }
  }
  try {
    accessSync(path, constants.R_OK | constants.W_OK)
  } catch {
    return {
      id: 'serial',
      level: 'fail',
      text: `this user may not open ${path} (its group is ${st.gid === groupId('dialout') ? 'dialout' : `gid ${st.gid}`}, mode ${(st.mode & 0o777).toString(8)})`,
      fix: 'add the user to the dialout group: sudo usermod -aG dialout steppelink (the service unit gives the gateway SupplementaryGroups=dialout), then log in again',
    }
  }
  if (uid === 0) {
    // Root opens anything: what counts is whether the service, a user with the dialout
    // group (SupplementaryGroups=dialout in its unit), may.
    const dialout = groupId('dialout')
    if (dialout === null || st.gid !== dialout || (st.mode & 0o060) !== 0o060) {
      return {
        id: 'serial',
        level: 'warn',
        text: `${path} is not read-write for the dialout group (group ${st.gid === dialout ? 'dialout' : `gid ${st.gid}`}, mode ${(st.mode & 0o777).toString(8)}): root may open it, the service may not`,
        fix: 'a udev rule that gives the adapter GROUP="dialout", MODE="0660" (USB serial adapters get that by default)',
      }
    }
    return { id: 'serial', level: 'ok', text: `the serial device ${path} is there, read-write for the dialout group the service runs with` }
  }
  return { id: 'serial', level: 'ok', text: `the serial device ${path} is there and this user may open it` }
}

function groupId(name: string): number | null {
  try {
    const line = readFileSync('/etc/group', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${name}:`))
    return line ? Number(line.split(':')[2]) : null
  } catch {
    return null
  }
}

/**
 * Whether a terminal answers: from the running gateway (its local API), or, when no gateway
 * runs, by opening the port for `listenMs`, announcing a gateway (a broadcast WELCOME, as
 * the gateway does at start [LINK-7.3]) and listening for a HELLO.
 */
export async function checkTerminal(config: GatewayConfig, lock: StoreLock, env: DoctorEnv): Promise<CheckResult> {
  const asked = await env.askGateway()
  if (asked.ok) {
    const terminals = asked.status.terminals ?? []
    const answering = terminals.filter((t) => t.answering)
    if (answering.length > 0) return { id: 'terminal', level: 'ok', text: `the running gateway hears ${answering.map((t) => `${t.terminal} (address ${t.address})`).join(', ')}` }
    if (terminals.length > 0)
      return {
        id: 'terminal',
        level: 'warn',
        text: `the running gateway knows ${terminals.map((t) => t.terminal).join(', ')}, and none answers now`,
        fix: "check the terminal's power and its cable to the adapter",
      }
    return { id: 'terminal', level: 'warn', text: 'the running gateway has not heard any terminal yet', fix: "check the terminal's power and its cable; press its test button" }
  }
  if (lock === 'locked') {
    return {
      id: 'terminal',
      level: 'warn',
      text: `a gateway runs (it holds the store), but it could not be asked: ${asked.why}`,
      fix: "run doctor as the gateway's user or root (sudo), which may read the local API's token",
    }
  }
  if (!existsSync(config.serial.path)) return { id: 'terminal', level: 'warn', text: 'not checked: the serial device is missing' }
  return listenForTerminal(config, env)
}

async function listenForTerminal(config: GatewayConfig, env: DoctorEnv): Promise<CheckResult> {
  const path = config.serial.path
  let port: Awaited<ReturnType<OpenPort>>
  const opening = env.openPort(path, config.serial.baud)
  try {
    port = await within(env.timeoutMs, opening, () => {
      // An open that returns after all is closed at once, so that doctor can exit.
      opening.then((p) => p.close()).catch(() => undefined)
      throw new Error(`opening ${path} did not return within ${seconds(env.timeoutMs)}`)
    })
  } catch (err) {
    const { code, message } = describeOpenError(err, path)
    if (code === 'SERIAL_BUSY') return { id: 'terminal', level: 'warn', text: `${path} is in use by another program, so no terminal could be asked`, fix: `find it with "fuser -v ${path}"` }
    return { id: 'terminal', level: 'fail', text: message.replace(/ Retrying.*$/, '') }
  }
  // A boot no gateway start reaches (the store counts from 1) and new at every run: a
  // terminal says HELLO at once only to a gateway boot it does not know [LINK-7.3]. The
  // gateway's own announcement at its next start brings each terminal back to it.
  const boot = 0x8000_0000 + randomBytes(4).readUInt32BE() / 2
  const link = new GatewayLink({ gateway: config.gateway.id, boot: Math.floor(boot), baud: config.serial.baud })
  const heard: string[] = []
  let garbage = 0
  const flush = () => {
    for (let b = link.transmit(); b !== null; b = link.transmit()) port.write(b)
  }
  const drain = () => {
    for (let e = link.nextEvent(); e !== null; e = link.nextEvent()) {
      if (e.kind === 'session' && e.hello) heard.push(`${e.hello.terminal} (address ${e.peer})`)
      else if (e.kind === 'frame-error') garbage++
    }
  }
  const done = new Promise<void>((resolve) => {
    port.on('data', (bytes) => {
      link.receive(bytes, env.now())
      drain()
      flush()
      if (heard.length > 0) resolve()
    })
    port.on('close', () => resolve())
    port.on('error', () => resolve())
  })
  link.announce()
  flush()
  await within(Math.min(env.listenMs, env.timeoutMs), done, () => undefined)
  await port.close()
  if (heard.length > 0) return { id: 'terminal', level: 'ok', text: `a terminal answers on ${path}: ${[...new Set(heard)].join(', ')}` }
  if (garbage > 0)
    return {
      id: 'terminal',
      level: 'warn',
      text: `bytes come in on ${path}, but not as frames of a terminal (${garbage} bad)`,
      fix: `check serial.baud (${config.serial.baud}) against the terminal's, and that the device is the terminal's adapter`,
    }
  return {
    id: 'terminal',
    level: 'warn',
    text: `no terminal answered on ${path} within ${seconds(Math.min(env.listenMs, env.timeoutMs))}`,
    fix: "check the terminal's power and its cable to the adapter, and serial.baud against the terminal's",
  }
}

// ------------------------------------------------------------------ the clock

export async function checkClock(config: GatewayConfig, env: DoctorEnv): Promise<CheckResult> {
  const now = env.now()
  // A certificate issued before now is a floor the operator's machine vouched for.
  let floor = BUILT_NOT_BEFORE
  let floorWhat = 'this version was made'
  const cert = config.mqtt.tls?.cert
  if (cert !== undefined) {
    try {
      const info = certInfo(readFileSync(cert))
      if (info.validFrom > floor) [floor, floorWhat] = [info.validFrom, 'the client certificate was issued']
    } catch {
      // Said by the certificate check.
    }
  }
  const at = new Date(now).toISOString()
  if (now < floor) {
    return {
      id: 'clock',
      level: 'fail',
      text: `the clock says ${at}, before ${floorWhat} (${new Date(floor).toISOString().slice(0, 10)}): it is wrong`,
      fix: 'set it: sudo timedatectl set-ntp true (with a network), or sudo date -s "YYYY-MM-DD HH:MM"; a board without a real-time clock needs NTP or fake-hwclock. TLS to the broker fails on a wrong clock',
    }
  }
  const ntp = await within(env.timeoutMs, env.ntpSynchronized(), () => null)
  if (ntp === true) return { id: 'clock', level: 'ok', text: `the clock says ${at}, synchronised by NTP` }
  if (ntp === false) {
    return {
      id: 'clock',
      level: 'warn',
      text: `the clock says ${at}, not synchronised by NTP`,
      fix: "sudo timedatectl set-ntp true; without a network the gateway takes the platform's time once connected, and stamps events with its own until then",
    }
  }
  return { id: 'clock', level: 'ok', text: `the clock says ${at} (plausible; NTP state unknown: no timedatectl)` }
}

/** `timedatectl show -p NTPSynchronized --value`: yes, no, or null when it cannot be asked. */
export function timedatectlNtp(timeoutMs: number): Promise<boolean | null> {
  return new Promise((resolve) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: timeoutMs }, (err, stdout) => {
      if (err) return resolve(null)
      const v = String(stdout).trim()
      resolve(v === 'yes' ? true : v === 'no' ? false : null)
    })
  })
}

// ------------------------------------------------------------------ the broker

/** The client certificate of mqtt.tls.cert: its expiry, by this board's clock. */
export function checkClientCertificate(config: GatewayConfig, now: number): CheckResult | null {
  const path = config.mqtt.tls?.cert
  if (path === undefined) return null
  let info: ReturnType<typeof certInfo>
  try {
    info = certInfo(readFileSync(path))
  } catch (err) {
    return { id: 'certificate', level: 'fail', text: `cannot read the client certificate ${path} (${errText(err)})`, fix: "check the path, and that the gateway's user may read it" }
  }
  const until = new Date(info.validTo).toISOString().slice(0, 10)
  const days = Math.floor((info.validTo - now) / DAY)
  if (now >= info.validTo) {
    return {
      id: 'certificate',
      level: 'fail',
      text: `the client certificate (CN ${info.subject}) expired on ${until}: the broker refuses it`,
      fix: 'put a renewed certificate and key in place of the files (mqtt.tls.cert, mqtt.tls.key); the gateway reads them at its next connection attempt',
    }
  }
  if (now < info.validFrom) return { id: 'certificate', level: 'warn', text: `the client certificate (CN ${info.subject}) is not valid yet by this clock`, fix: 'check the clock' }
  if (info.validTo - now <= EXPIRY_WARNING_MS) {
    return {
      id: 'certificate',
      level: 'warn',
      text: `the client certificate (CN ${info.subject}) expires on ${until}, in ${days} day${days === 1 ? '' : 's'}`,
      fix: 'renew it, and copy the new certificate and key over the files',
    }
  }
  return { id: 'certificate', level: 'ok', text: `the client certificate (CN ${info.subject}) is valid until ${until} (${days} days)` }
}

function tlsMaterial(config: GatewayConfig): TlsMaterial | undefined {
  const t = config.mqtt.tls
  if (t === undefined) return undefined
  return {
    ...(t.ca !== undefined ? { ca: readFileSync(t.ca) } : {}),
    ...(t.cert !== undefined ? { cert: readFileSync(t.cert) } : {}),
    ...(t.key !== undefined ? { key: readFileSync(t.key) } : {}),
    ...(t.servername !== undefined ? { servername: t.servername } : {}),
  }
}

const DEFAULT_PORTS: Record<string, number> = { 'mqtt:': 1883, 'tcp:': 1883, 'mqtts:': 8883, 'tls:': 8883, 'ssl:': 8883, 'ws:': 80, 'wss:': 443 }

/**
 * One broker, step by step, stopping at the first that fails: DNS, TCP, TLS (the chain
 * against mqtt.tls.ca, the name on the certificate), MQTT CONNECT with the configured user
 * name and password (what the broker answered).
 */
export async function checkBroker(config: GatewayConfig, url: string, env: DoctorEnv): Promise<CheckResult> {
  const u = new URL(url)
  const host = u.hostname.replace(/^\[|\]$/g, '')
  const port = u.port === '' ? (DEFAULT_PORTS[u.protocol] ?? 1883) : Number(u.port)
  const steps: string[] = []
  const fail = (text: string, fix: string): CheckResult => ({ id: 'broker', level: 'fail', text: `broker ${url}: ${[...steps, text].join('; ')}`, fix })

  // DNS
  let address = host
  if (isIP(host) === 0) {
    try {
      const found = await within(env.timeoutMs, lookup(host), () => {
        throw Object.assign(new Error(`no answer within ${seconds(env.timeoutMs)}`), { code: 'ETIMEOUT' })
      })
      address = found.address
      steps.push(`DNS ${host} is ${address}`)
    } catch (err) {
      return fail(`cannot resolve ${host} (${errCode(err) ?? errText(err)})`, 'check the uplink (modem, Wi-Fi) and the DNS server (resolvectl status, /etc/resolv.conf); a typo in mqtt.brokers')
    }
  }

  // TCP
  let tcpSocket: Socket | null = null
  const tcp = await within(
    env.timeoutMs,
    new Promise<{ ok: true; socket: Socket } | { ok: false; err: unknown }>((resolve) => {
      const s = netConnect({ host: address, port })
      tcpSocket = s
      s.once('connect', () => resolve({ ok: true, socket: s }))
      s.once('error', (err) => resolve({ ok: false, err }))
    }),
    () => ({ ok: false as const, err: Object.assign(new Error(`no answer within ${seconds(env.timeoutMs)}`), { code: 'ETIMEDOUT' }) }),
  )
  ;(tcpSocket as Socket | null)?.destroy()
  if (!tcp.ok) {
    const code = errCode(tcp.err)
    const fix =
      code === 'ECONNREFUSED'
        ? 'the broker is down, or the port is wrong: call the platform, and check the port in mqtt.brokers'
        : 'no route or a silent link: check the uplink (signal, data plan), or a firewall between'
    return fail(`TCP to ${address}:${port} ${code === 'ECONNREFUSED' ? 'refused' : `failed (${code ?? errText(tcp.err)})`}`, fix)
  }
  steps.push(`TCP ${port} open`)

  // TLS
  let material: TlsMaterial | undefined
  try {
    material = tlsMaterial(config)
  } catch (err) {
    return fail(`cannot read the TLS files (${errText(err)})`, 'check mqtt.tls (steppelink gateway --config ... says which file)')
  }
  if (isTlsUrl(url)) {
    const servername = material?.servername ?? (isIP(host) === 0 ? host : undefined)
    let tlsSocket: TLSSocket | null = null
    const hs = await within(
      env.timeoutMs,
      new Promise<{ ok: true; socket: TLSSocket } | { ok: false; err: unknown }>((resolve) => {
        // Unverified here, so that what is wrong with the broker's certificate can be said
        // (the MQTT step below verifies, as the gateway does).
        const s = tlsConnect({ host: address, port, ...(material ?? {}), ...(servername ? { servername } : {}), rejectUnauthorized: false })
        tlsSocket = s
        s.once('secureConnect', () => resolve({ ok: true, socket: s }))
        s.once('error', (err) => resolve({ ok: false, err }))
      }),
      () => ({ ok: false as const, err: new Error(`no TLS handshake within ${seconds(env.timeoutMs)}`) }),
    )
    if (!hs.ok) (tlsSocket as TLSSocket | null)?.destroy()
    if (!hs.ok) return fail(`TLS failed: ${describeTlsError(hs.err as Error, material) ?? errText(hs.err)}`, 'check mqtt.tls (ca, cert, key) against what the platform gave this gateway')
    const peer: PeerCertificate = hs.socket.getPeerCertificate()
    const authorized = hs.socket.authorized
    const why = hs.socket.authorizationError
    // Under TLS 1.3 the broker judges our client certificate after the handshake the client
    // sees: its refusal comes as an alert a moment later, its acceptance with a session
    // ticket. Waited for here, so that a refused certificate is said as one.
    const refusal = material?.cert === undefined || hs.socket.getProtocol() !== 'TLSv1.3' ? null : await clientCertVerdict(hs.socket, Math.min(env.timeoutMs, 2000))
    hs.socket.destroy()
    if (refusal !== null) {
      return fail(
        `TLS: ${describeTlsError(refusal as Error, material) ?? errText(refusal)}`,
        'renew the client certificate (mqtt.tls.cert, mqtt.tls.key) from the CA the platform trusts, and copy it over the files',
      )
    }
    if (!authorized) {
      // Node keeps only the code; for a name that does not match, the check again gives the names.
      const code = typeof why === 'string' ? why : String((why as { code?: unknown } | null)?.code ?? why)
      const err: Error = (code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? checkServerIdentity(servername ?? host, peer) : undefined) ?? Object.assign(new Error(code), { code })
      return fail(
        `the broker's certificate (CN ${peer.subject?.CN ?? '?'}) does not verify: ${describeTlsError(err, material) ?? String(why)}`,
        'check mqtt.tls.ca (the CA the platform gave), mqtt.tls.servername, and the clock',
      )
    }
    const days = Math.floor((Date.parse(peer.valid_to) - env.now()) / DAY)
    steps.push(`TLS ok (the broker's certificate for ${peer.subject?.CN ?? '?'} verifies, ${days} days left)`)
  }

  // MQTT CONNECT, as the gateway would, but with a client id of its own, a clean session
  // and no will: the running gateway's session is never taken over.
  const { connect } = await import('mqtt')
  type Answer = { ok: true } | { ok: false; text: string; fix: string }
  const CREDENTIALS = `check mqtt.username (${config.mqtt.username ?? 'not set'}) and the password (STEPPELINK_MQTT_PASSWORD in /etc/steppelink/gateway.env) against what the platform gave this gateway`
  const answer = await new Promise<Answer>((resolve) => {
    const client = connect(url, {
      ...(material ? { ...material, rejectUnauthorized: true } : {}),
      protocolVersion: 4,
      clientId: `steppelink-doctor-${config.gateway.id}-${randomBytes(3).toString('hex')}`.slice(0, 64),
      ...(config.mqtt.username !== undefined ? { username: config.mqtt.username } : {}),
      ...(config.mqtt.password !== undefined ? { password: config.mqtt.password } : {}),
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: env.timeoutMs,
    })
    let settled = false
    const end = (r: Answer) => {
      if (settled) return
      settled = true
      client.end(true)
      resolve(r)
    }
    client.once('connect', () => end({ ok: true }))
    client.on('error', (err) => {
      const refusal = connackRefusal(errCode(err), 'mqtt.username and its password')
      if (refusal !== null) return end({ ok: false, text: refusal, fix: CREDENTIALS })
      const tlsSaid = describeTlsError(err, material)
      if (tlsSaid !== null) return end({ ok: false, text: tlsSaid, fix: 'check mqtt.tls (ca, cert, key) against what the platform gave this gateway' })
      if (err.message === 'connack timeout') return end(noConnack())
      end({
        ok: false,
        text: `the answer is not MQTT (${errText(err)})`,
        fix: 'something else listens on that port, or the scheme is wrong (mqtts:// for a TLS port, mqtt:// for a plain one): check mqtt.brokers',
      })
    })
    client.once('close', () =>
      end({
        ok: false,
        text: 'the broker closed the connection before its CONNACK',
        fix: 'the broker took the connection but not the CONNECT: its ACL or its client certificate check (mqtt.tls.cert) refused it; call the platform',
      }),
    )
    const noConnack = (): Answer => ({
      ok: false,
      text: `no CONNACK within ${seconds(env.timeoutMs)}`,
      fix: 'the link is too slow or drops packets (check the signal), or what listens on that port is not an MQTT broker',
    })
    setTimeout(() => end(noConnack()), env.timeoutMs + 500).unref()
  })
  if (!answer.ok) return fail(`MQTT CONNECT: ${answer.text}`, answer.fix)
  steps.push(`MQTT CONNECT accepted${config.mqtt.username !== undefined ? ` for user ${config.mqtt.username}` : ' (no user name)'}`)
  return { id: 'broker', level: 'ok', text: `broker ${url}: ${steps.join('; ')}` }
}

/** The broker's verdict on our client certificate after a TLS 1.3 handshake: its alert, or null (a session ticket, or nothing within `ms`). */
function clientCertVerdict(socket: TLSSocket, ms: number): Promise<unknown> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms)
    const done = (v: unknown) => {
      clearTimeout(timer)
      resolve(v)
    }
    socket.once('session', () => done(null))
    socket.once('error', (err) => done(err))
    socket.once('close', () => done(new Error('the broker closed the TLS connection right after the handshake: it refused our client certificate (expired, or not from a CA it trusts)')))
    // The alert is read only while the socket reads.
    socket.resume()
  })
}

// ------------------------------------------------------------------ the rest

export function checkPlatformKeys(config: GatewayConfig): CheckResult {
  let keys: ReturnType<typeof readPlatformKeys>
  try {
    keys = readPlatformKeys(config)
  } catch (err) {
    return { id: 'platform-keys', level: 'fail', text: errText(err), fix: 'the gateway does not start with this: fix platformKeys in the config' }
  }
  if (keys === null) {
    return {
      id: 'platform-keys',
      level: 'warn',
      text: 'commands are NOT authenticated: no platform key is configured, so anyone who can publish on the command topics can silence alarms',
      fix: "set platformKeys.current to the platform's public key (platform.pub from steppelink keygen)",
    }
  }
  return { id: 'platform-keys', level: 'ok', text: `commands are authenticated: only those signed with the platform key are applied${keys.next ? ' (a next key is set for a rotation)' : ''}` }
}

/** Whether the gateway runs, from its local API and the store's lock. */
export function checkGateway(asked: Awaited<ReturnType<DoctorEnv['askGateway']>>, lock: StoreLock): CheckResult {
  if (asked.ok) {
    const s = asked.status
    return { id: 'gateway', level: 'ok', text: `the gateway is running${s.uplink ? `, uplink ${s.uplink.online ? 'online' : 'offline'}` : ''}${s.verdict ? `; its page says: ${s.verdict}` : ''}` }
  }
  if (lock === 'locked') return { id: 'gateway', level: 'ok', text: `the gateway is running (it holds the store); its page did not answer: ${asked.why}` }
  return { id: 'gateway', level: 'warn', text: 'the gateway is not running', fix: 'sudo systemctl start steppelink-gateway; journalctl -u steppelink-gateway -n 50 says why it stopped' }
}
