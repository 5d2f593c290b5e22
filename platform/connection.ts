/**
 * The console's MQTT connection: connect, subscribe at every CONNACK, publish with the
 * broker's acknowledgement, close. It says what happens through ConnectionEvents and
 * knows nothing of payloads.
 *
 * - [CONSOLE-1] One persistent session: a fixed client id (`steppelink-console-<id>`),
 *   clean session false, QoS 1 subscriptions to the six uplink filters of [MQTT-4.8],
 *   issued again at every CONNACK. The broker keeps what gateways publish while the
 *   console is away and delivers it when the console comes back.
 */

import { readFileSync } from 'node:fs'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { noDelay } from '../io/tcp.js'
import { connackRefusal } from '../protocol/mqtt-acl.js'
import { COMMAND_PUBLISH } from './commands.js'
import { ConsoleError } from './errors.js'

/** The TLS options of a console or a one-off command: file paths (PEM) and a server name. */
export interface TlsPaths {
  ca?: string | undefined
  cert?: string | undefined
  key?: string | undefined
  servername?: string | undefined
}

/**
 * The mqtt.js TLS options for `o`: the files read (once), the broker's certificate always
 * verified. Throws a ConsoleError CONSOLE_BAD_OPTION that says what is wrong and what to do:
 * a file that cannot be read, a certificate without its key, TLS options with a broker that
 * does not speak TLS. Nothing for a console without TLS options.
 */
export function tlsClientOptions(broker: string, o: TlsPaths): IClientOptions {
  const given = (['ca', 'cert', 'key', 'servername'] as const).filter((k) => o[k] !== undefined)
  if (given.length === 0) return {}
  const bad = (message: string) => new ConsoleError('CONSOLE_BAD_OPTION', message)
  if (!/^(mqtts|tls|ssl|wss):/.test(broker)) {
    throw bad(`${given.map((k) => `--${k}`).join(', ')}: TLS options need an mqtts:// or wss:// broker URL, got ${broker}`)
  }
  if ((o.cert === undefined) !== (o.key === undefined)) {
    throw bad(o.cert === undefined ? '--key is given but --cert is not: give the client certificate too' : '--cert is given but --key is not: a client certificate needs its private key')
  }
  const read = (flag: string, path: string | undefined): { [k: string]: Buffer } => {
    if (path === undefined) return {}
    try {
      return { [flag]: readFileSync(path) }
    } catch (e) {
      throw bad(`--${flag}: cannot read ${path} (${(e as Error).message})`)
    }
  }
  return {
    ...read('ca', o.ca),
    ...read('cert', o.cert),
    ...read('key', o.key),
    ...(o.servername !== undefined ? { servername: o.servername } : {}),
    rejectUnauthorized: true,
  }
}

export interface ConnectionOptions extends TlsPaths {
  broker: string
  clientId: string
  username?: string | undefined
  password?: string | undefined
  keepaliveS: number
  reconnectS: number
  /** Subscribed at QoS 1 at every CONNACK. */
  filters: string[]
}

/** What the connection tells its owner; each is called in the order things happen. */
export interface ConnectionEvents {
  /** Subscribed after a CONNACK; `sessionPresent`: the broker still had the session. */
  connected(sessionPresent: boolean): void
  /** The broker refused these subscriptions (before `connected`). */
  refused(filters: string[]): void
  /** A connection that was up went down; mqtt.js reconnects. */
  disconnected(): void
  /** Connecting failed; said once per distinct failure, not at every retry. */
  failed(message: string): void
  /** `retained`: the broker delivered it with the retain flag (a retained message, at a subscription). */
  message(topic: string, payload: Buffer, retained: boolean): void
}

export class Connection {
  readonly #client: MqttClient
  /** Rejecters of publications waiting for their PUBACK; a close rejects them (mqtt.js would never call back). */
  readonly #pending = new Set<(e: Error) => void>()
  #connected = false
  #closed = false
  #lastFailure: string | null = null

  constructor(o: ConnectionOptions, on: ConnectionEvents) {
    const options: IClientOptions = {
      clientId: o.clientId,
      clean: false, // [CONSOLE-1] [MQTT-4.8]
      protocolVersion: 4,
      keepalive: o.keepaliveS,
      reconnectPeriod: o.reconnectS * 1000,
      connectTimeout: 10_000,
      resubscribe: false, // we subscribe ourselves at every CONNACK
      ...(o.username === undefined ? {} : { username: o.username }),
      ...(o.password === undefined ? {} : { password: o.password }),
      ...tlsClientOptions(o.broker, o),
    }
    this.#client = mqtt.connect(o.broker, options)
    this.#client.on('connect', (connack) => {
      // A receipt must not wait for the broker's delayed ACK (see noDelay).
      noDelay(this.#client)
      this.#client.subscribe(o.filters, { qos: 1 }, (err, granted) => {
        // mqtt.js reports a SUBACK with a refused filter (0x80) as an error carrying the
        // SUBACK: that is a refusal to report [MQTT-2.8], not a lost connection.
        const suback = err && 'packet' in err ? (err as { packet?: { granted?: unknown } }).packet : undefined
        if (err && !Array.isArray(suback?.granted)) {
          // The connection went away meanwhile; the next CONNACK subscribes again.
          return
        }
        const codes: unknown[] = Array.isArray(suback?.granted) ? suback.granted : (granted ?? []).map((g) => g.qos)
        const refused = o.filters.filter((_, i) => typeof codes[i] === 'number' && ((codes[i] as number) & 0x80) !== 0)
        if (refused.length > 0) on.refused(refused)
        this.#connected = true
        this.#lastFailure = null
        on.connected(connack.sessionPresent)
      })
    })
    this.#client.on('close', () => {
      if (!this.#connected || this.#closed) return
      this.#connected = false
      on.disconnected()
    })
    this.#client.on('error', (e) => {
      // mqtt.js retries by itself; say so once per distinct failure, not every second.
      const message = connackRefusal((e as { code?: unknown }).code, '--username/--password') ?? e.message
      if (message === this.#lastFailure) return
      this.#lastFailure = message
      on.failed(message)
    })
    this.#client.on('message', (topic, payload, packet) => on.message(topic, payload, packet.retain))
  }

  /** Subscribed to the broker now. */
  get connected(): boolean {
    return this.#connected
  }

  /**
   * Publishes a command [CONSOLE-7]; resolves once the broker has it (PUBACK). Rejects with
   * CONSOLE_NOT_CONFIRMED naming `what` if the client fails it, CONSOLE_CLOSED if closed first.
   */
  publish(topic: string, payload: Buffer, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.#closed) return reject(new ConsoleError('CONSOLE_CLOSED', 'the console is closed'))
      const fail = (e: Error) => {
        this.#pending.delete(fail)
        reject(e)
      }
      this.#pending.add(fail)
      this.#client.publish(topic, payload, COMMAND_PUBLISH, (err) => {
        if (!this.#pending.delete(fail)) return
        if (err) reject(new ConsoleError('CONSOLE_NOT_CONFIRMED', `publishing ${what} failed: ${err.message}`, { cause: err }))
        else resolve()
      })
    })
  }

  /**
   * Gives what is in flight a moment (up to a second) to reach the broker, then
   * disconnects cleanly; the persistent session keeps what arrives from now on.
   * Publications still waiting reject with CONSOLE_CLOSED.
   */
  async close(): Promise<void> {
    this.#closed = true
    const graceful = this.#client.endAsync(false)
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 1000).unref())
    if (
      (await Promise.race([
        graceful.then(
          () => 'done' as const,
          () => 'done' as const,
        ),
        timeout,
      ])) === 'timeout'
    )
      await this.#client.endAsync(true).catch(() => {})
    for (const reject of [...this.#pending]) reject(new ConsoleError('CONSOLE_CLOSED', 'the console was closed before the broker acknowledged the command'))
    this.#connected = false
  }
}
