/**
 * The gateway process: wires the real serial port, the SQLite store and the MQTT uplink
 * to the core (gateway.ts), runs its clock, and shuts down cleanly on SIGTERM.
 *
 * Durability does not depend on a clean shutdown: every event is committed before the
 * terminal is answered, so SIGKILL or a power cut loses nothing that was acknowledged.
 * A clean shutdown only adds a death message, so that the platform knows at once
 * rather than after 1.5 keep-alives.
 */

import { statfsSync } from 'node:fs'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { assertNever } from '../protocol/errors.js'
import { GatewayLink } from '../protocol/link.js'
import { findCompression } from './compression.js'
import type { PlatformKeys } from './commands/auth.js'
import type { GatewayConfig } from './config.js'
import { readPlatformKeys } from './platform-keys.js'
import { Gateway, type GatewaySettings } from './gateway.js'
import type { Logger } from './log.js'
import { SerialLine, type OpenPort } from '../io/serial-line.js'
import { SqliteStore, StoreError } from './sqlite-store.js'
import { version } from './version.js'
import { CertExpiryWatch, TlsFiles } from './tls.js'
import { Uplink } from './uplink.js'
import { realTimers } from '../io/timers.js'
import { attachHouseholdPage } from './household/web/attach.js'
import { ServiceNotifier, systemdNotifySender, watchdogIntervalMs } from './systemd-notify.js'

/** The tick never sleeps longer than this, so a changed clock or a missed deadline heals fast. */
const MAX_SLEEP_MS = 1_000

/** Size of the file system holding `dir`, bytes, or null if it cannot be read. */
function partitionBytes(dir: string): number | null {
  try {
    const s = statfsSync(dir)
    return Number(s.blocks) * Number(s.bsize)
  } catch {
    return null
  }
}

export function settingsFrom(config: GatewayConfig): GatewaySettings {
  return {
    gateway: config.gateway.id,
    area: config.gateway.area ?? null,
    prefix: config.mqtt.prefix,
    encoding: config.mqtt.encoding,
    supervisionMs: config.timing.supervision * 1000,
    receiptTimeoutMs: config.timing.receiptTimeout * 1000,
    heartbeatS: config.timing.heartbeat,
    statusIntervalMs: config.timing.statusInterval * 1000,
    version: version(),
    household: config.household.name ?? null,
  }
}

export interface EmbedOptions {
  /** Stop when this aborts, instead of on SIGTERM/SIGINT (the demo runs the gateway in process). */
  signal?: AbortSignal
  /** The serial port to use instead of the serialport package (an in-memory line). */
  openPort?: OpenPort
  /** Called with the running core once it has started: the demo and the household page reach `gateway.household` through it (issue 13). */
  onGateway?: (gateway: Gateway) => void
  /** The environment for systemd's NOTIFY_SOCKET and WATCHDOG_USEC (default process.env; the demo passes {}: it is not the service). */
  env?: NodeJS.ProcessEnv
}

/** Runs the gateway until SIGTERM or SIGINT (or `embed.signal`); resolves with the exit code. */
export async function runGateway(config: GatewayConfig, log: Logger, embed: EmbedOptions = {}): Promise<number> {
  const started = performance.now()
  const dbPath = join(config.data, 'gateway.db')
  let store: SqliteStore
  try {
    store = new SqliteStore({ path: dbPath, limits: config.limits })
  } catch (err) {
    // A StoreError says what is wrong and what to do (another gateway holds it, it is empty,
    // it is not ours); anything else is the file system's word.
    const message =
      err instanceof StoreError ? err.message : `cannot open the store at ${dbPath}: ${(err as Error).message}. Check that the data directory exists, is writable by this user, and is not full.`
    log.error({ err, path: dbPath, code: (err as { code?: string }).code }, message)
    return 1
  }
  let platformKeys: PlatformKeys | null
  try {
    platformKeys = readPlatformKeys(config)
  } catch (err) {
    log.error({ err }, (err as Error).message)
    store.close()
    return 1
  }
  const partition = partitionBytes(config.data)
  const reserve = config.limits.reserveMB * 1024 * 1024
  if (partition !== null && partition < 4 * reserve) {
    // Below the reserve the gateway refuses what it makes itself (heartbeat folds written to
    // disk, terminal-lost events); a partition this small is there most of the time.
    log.warn(
      { partitionMB: Math.round(partition / 1048576), reserveMB: config.limits.reserveMB },
      `the data partition (${Math.round(partition / 1048576)} MB) is small for the ${config.limits.reserveMB} MB kept free for alarms: the gateway's own events will often be refused. Give the store a larger partition, or lower limits.reserveMB`,
    )
  }
  const boot = store.bump('gateway-boot')
  // Room for one INDICATE per open alert of a terminal that was away, and its config.
  const link = new GatewayLink({ gateway: config.gateway.id, boot, baud: config.serial.baud, maxQueue: 256 })

  // Found before the core starts, so that its first status already says which. [MQTT-3.7]
  const compression = await findCompression()

  // Read once here (the config checks have seen the files), then again before every
  // connection attempt: a renewed certificate is used without a restart (tls.ts).
  const tlsFiles = config.mqtt.tls
    ? new TlsFiles(config.mqtt.tls, {
        onChange: (now, before) => {
          log.info(
            { subject: now.subject, expires: new Date(now.validTo).toISOString(), before: { subject: before.subject, expires: new Date(before.validTo).toISOString() } },
            `the client certificate changed on disk (renewed?): connecting with CN ${now.subject}, valid until ${new Date(now.validTo).toISOString()}`,
          )
          // Its expiry is judged at once, not at the next daily look.
          expiry.check()
        },
        onError: (message) => log.error({}, message),
      })
    : null
  try {
    tlsFiles?.load()
  } catch (err) {
    log.error({ err }, `cannot read the TLS files of mqtt.tls: ${(err as Error).message}`)
    store.close()
    return 1
  }

  // Late-bound: the core needs the port and the uplink, which need the core's callbacks.
  let serial: SerialLine | null = null
  let uplink: Uplink | null = null
  // For the household page (issue 13): the uplink's last change, as onState below says it.
  const uplinkState: { online: boolean; since: number | null; broker: string | null } = { online: false, since: null, broker: config.mqtt.brokers[0] ?? null }
  const gateway = new Gateway(
    { ...settingsFrom(config), platformKeys },
    store,
    link,
    {
      writeSerial: (bytes) => {
        // A closed port drops the bytes; the link protocol retransmits once it reopens.
        serial?.write(bytes)
      },
      publish: (topic, payload, options) => (uplink ? uplink.publish(topic, payload, options) : Promise.reject(new Error('uplink not started'))),
      online: () => uplink?.online ?? false,
      hurry: () => {
        const delay = uplink?.hurry() ?? null
        if (delay !== null) log.info({ retryInMs: delay }, 'alarm waiting: reconnecting sooner')
      },
      now: () => Date.now(),
      compression,
      tls: () => {
        const c = tlsFiles?.client
        return c ? { clientCertExpires: c.validTo, clientCertSubject: c.subject } : null
      },
      uplinkState: () => ({ ...uplinkState, online: uplink?.online ?? false }),
      diskFree: () => {
        try {
          const s = statfsSync(config.data)
          return Number(s.bavail) * Number(s.bsize)
        } catch {
          return null
        }
      },
    },
    log,
    boot,
  )

  serial = new SerialLine({
    path: config.serial.path,
    baud: config.serial.baud,
    ...(embed.openPort ? { openPort: embed.openPort } : {}),
    onData: (bytes) => gateway.serialData(bytes),
    onEvent: (e) => {
      switch (e.kind) {
        case 'open':
          log.info({ path: e.path, baud: config.serial.baud }, 'serial port open')
          gateway.serialOpened()
          return
        case 'closed':
          log.warn({ path: e.path, reason: e.reason, retryInMs: e.retryInMs }, 'serial port closed (cable unplugged?); reopening')
          return
        case 'error':
          // An unplugged terminal retries for ever: log the first failures and then one in ten.
          if (e.attempt === null || e.attempt <= 3 || e.attempt % 10 === 0) log.error({ path: e.path, code: e.code, attempt: e.attempt, retryInMs: e.retryInMs }, e.message)
          return
        default:
          return assertNever(e, 'serial event')
      }
    },
  })

  const topics = gateway.topics
  uplink = new Uplink({
    brokers: config.mqtt.brokers,
    clientId: `steppelink-gw-${config.gateway.id}`,
    ...(config.mqtt.username !== undefined ? { username: config.mqtt.username } : {}),
    ...(config.mqtt.password !== undefined ? { password: config.mqtt.password } : {}),
    keepaliveS: config.mqtt.keepalive,
    ...(tlsFiles ? { tls: () => tlsFiles.load() } : {}),
    subscriptions: [topics.command, topics.allCommand, ...(topics.areaCommand ? [topics.areaCommand] : [])],
    will: () => gateway.will(),
    birth: () => gateway.birth(),
    onCommand: (topic, payload, retained) => gateway.command(topic, payload, { retained }),
    urgent: () => gateway.alarmWaiting(),
    onWarning: (message) => log.warn({}, message),
    onState: (s) => {
      uplinkState.online = s.online
      uplinkState.since = Date.now()
      if (s.broker !== null) uplinkState.broker = s.broker
      if (s.online) {
        log.info({ broker: s.broker, reason: s.reason }, 'uplink online')
        gateway.online()
      } else {
        log.warn({ broker: s.broker, reason: s.reason, retryInMs: s.retryInMs }, 'uplink offline')
        gateway.uplinkChanged()
      }
    },
  })

  // The client certificate's expiry: at start and once a day, judged by the gateway's
  // clock once the platform has set it, or once it reads a time after the certificate
  // was issued (a board without RTC after a power cut reads 1970).
  const expiry = new CertExpiryWatch({
    info: () => tlsFiles?.client ?? null,
    time: () => gateway.clock.now(),
    timers: realTimers,
    log,
  })

  gateway.start()
  serial.start()
  uplink.start()
  expiry.start()

  let timer: NodeJS.Timeout | null = null
  const loop = () => {
    const next = gateway.tick()
    timer = setTimeout(loop, Math.max(10, Math.min(MAX_SLEEP_MS, next - Date.now())))
  }
  loop()
  embed.onGateway?.(gateway)
  log.info({ gateway: config.gateway.id, boot, readyMs: Math.round(performance.now() - started), store: dbPath }, 'gateway ready')

  // systemd (Type=notify, WatchdogSec=): READY now, then pings only while healthy
  // (service-health.ts). Nothing at all outside systemd.
  const env = embed.env ?? process.env
  const watchdogMs = watchdogIntervalMs(env)
  // Sampled once a second: the stall that counts is half the watchdog interval (15 s), and
  // a finer sampling would wake an idle board many times a second for nothing.
  const loopDelay = monitorEventLoopDelay({ resolution: 1000 })
  const service = new ServiceNotifier({
    send: systemdNotifySender(env),
    watchdogMs,
    health: () => {
      const loopDelayMs = loopDelay.max / 1e6
      loopDelay.reset()
      const line = serial!
      return {
        storeError: store.lastWriteError(),
        serial: { path: line.path, state: line.state, since: line.since, maxBackoffMs: line.maxBackoffMs },
        loopDelayMs,
        uplinkOnline: uplink?.online ?? false,
      }
    },
    probeStore: () => store.probe(Date.now()),
    storeWrites: () => {
      const w = store.writes()
      return w.durable + w.lazy
    },
    timers: realTimers,
    now: () => Date.now(),
    onSendError: (message) => log.error({}, `cannot tell systemd the gateway's state (${message}): is NotifyAccess=all in the unit? The watchdog will restart the gateway`),
    onHealthChange: (h) => (h.healthy ? log.info({}, `watchdog: ${h.status}`) : log.error({ problems: h.problems.map((p) => p.code) }, `watchdog: ${h.status}`)),
  })
  if (service.active) {
    loopDelay.enable()
    log.info({ watchdogMs }, watchdogMs === null ? 'under systemd: ready sent, no watchdog' : `under systemd: ready sent, watchdog fed every ${watchdogMs / 2000} s while healthy`)
  }
  service.ready()

  // The household page and the local API (issue 13), started after the alarm path is up and
  // never awaited by it: a port in use or a bad address is logged, and the gateway runs on.
  const page = attachHouseholdPage(config, gateway.household, log)

  return new Promise<number>((resolve) => {
    let stopping = false
    const stop = async (signal: string) => {
      if (stopping) return
      stopping = true
      log.info({ signal }, 'stopping: death message, then close the port and the store')
      void service.stopping(signal)
      loopDelay.disable()
      if (timer) clearTimeout(timer)
      expiry.stop()
      gateway.stop()
      try {
        await Promise.all([serial!.stop(), uplink!.stop({ graceful: true }), page.then((p) => p?.close())])
      } catch (err) {
        log.warn({ err }, 'error while stopping')
      }
      store.close()
      log.info({}, 'stopped')
      resolve(0)
    }
    if (embed.signal) {
      if (embed.signal.aborted) void stop('abort')
      else embed.signal.addEventListener('abort', () => void stop('abort'), { once: true })
      return
    }
    process.once('SIGTERM', () => void stop('SIGTERM'))
    process.once('SIGINT', () => void stop('SIGINT'))
    process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled rejection (ignored; please report it)'))
  })
}
