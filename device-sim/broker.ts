/**
 * An MQTT broker in this process (aedes), on 127.0.0.1: the platform's broker for the
 * demo and the tests, with no external broker to install.
 *
 * With `acl` it enforces the topic permissions of MQTT.md [MQTT-2.7]-[MQTT-2.10], the
 * same rules (protocol/mqtt-acl.ts, mqttAccess) the shipped mosquitto ACL is generated
 * from: user name and password at CONNECT, every PUBLISH (the Will too) and SUBSCRIBE.
 * The demo (cli/demo.ts) and the loop harness (loop/loop.ts: the fault suite, the soak,
 * the end-to-end tests) run it so. Unit tests that start a bare aedes for one class under
 * test (the uplink, the console's connection, ...) may keep it open: they test that class,
 * not the broker's permissions, which tests/acl.e2e.test.ts covers on aedes and mosquitto.
 *
 * How a refusal shows [MQTT-2.8]: a bad user name or password gets CONNACK 4 (bad user name
 * or password); a refused SUBSCRIBE gets 0x80 in its SUBACK; a refused PUBLISH closes the
 * connection (MQTT 3.1.1 [MQTT-3.3.5-2] allows a PUBACK or a close; aedes can only close),
 * so a QoS 1 publisher is never left waiting for a PUBACK that will not come. mosquitto
 * answers the other way: it sends the PUBACK and drops the message. `onRefused` hears each.
 */

import { randomBytes, timingSafeEqual } from 'node:crypto'
import { Aedes, type AedesOptions, type Client } from 'aedes'
import net from 'node:net'
import { mqttAccess, type AclGateway, type MqttPrincipal } from '../protocol/mqtt-acl.js'

/** One broker account: its password and its role. */
export interface BrokerAccount {
  password: string
  who: MqttPrincipal
}

/** Topic permissions for startAedes: the prefix, and the accounts by user name. */
export interface BrokerAcl {
  prefix: string
  accounts: Readonly<Record<string, BrokerAccount>>
  /** Each refusal, in words (user name, what, why): for a log line. */
  onRefused?: (what: string) => void
}

/** An MQTT user name and password, as mqtt.js and the gateway's and console's options take them. */
export interface BrokerCredentials {
  username: string
  password: string
}

/**
 * Accounts with new random passwords: each platform user name with the platform role, each
 * gateway under its id (its user name [MQTT-2.7]) with its area.
 */
export function brokerAcl(prefix: string, users: { platform?: readonly string[]; gateways?: readonly AclGateway[] }, onRefused?: (what: string) => void): BrokerAcl {
  const accounts: Record<string, BrokerAccount> = {}
  const password = () => randomBytes(12).toString('base64url')
  for (const user of users.platform ?? ['platform']) accounts[user] = { password: password(), who: { role: 'platform' } }
  for (const g of users.gateways ?? []) {
    if (accounts[g.id] !== undefined) throw new Error(`broker account ${g.id} given twice (a gateway id may not be a platform user name)`)
    accounts[g.id] = { password: password(), who: { role: 'gateway', id: g.id, area: g.area } }
  }
  return { prefix, accounts, ...(onRefused ? { onRefused } : {}) }
}

/** The user name and password of `user` in `acl`; throws if it has no such account. */
export function credentialsOf(acl: BrokerAcl, user: string): BrokerCredentials {
  const a = acl.accounts[user]
  if (a === undefined) throw new Error(`no broker account ${user}`)
  return { username: user, password: a.password }
}

/** Error with a CONNACK return code, as aedes's `authenticate` takes it. */
class ConnackError extends Error {
  constructor(
    message: string,
    readonly returnCode: number,
  ) {
    super(message)
  }
}

const same = (a: string, b: string) => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** The aedes hooks that enforce `acl` [MQTT-2.7]-[MQTT-2.9]. */
export function aclHooks(acl: BrokerAcl): Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe'> {
  const roles = new WeakMap<Client, { user: string; who: MqttPrincipal }>()
  const refuse = (what: string) => acl.onRefused?.(what)
  return {
    authenticate: (client, username, password, callback) => {
      const account = username === undefined ? undefined : acl.accounts[username]
      if (account === undefined || password === undefined || !same(account.password, password.toString())) {
        refuse(`CONNECT of client ${client.id} as ${username === undefined ? 'no user' : `user ${username}`}: bad user name or password`)
        return callback(new ConnackError('bad user name or password', 4), false)
      }
      roles.set(client, { user: username!, who: account.who })
      callback(null, true)
    },
    authorizePublish: (client, packet, callback) => {
      const role = client === null ? undefined : roles.get(client)
      if (role === undefined) {
        refuse(`PUBLISH ${packet.topic}: no authenticated client`)
        return callback(new Error('not authorized'))
      }
      const got = mqttAccess(acl.prefix, role.who, { action: 'publish', topic: packet.topic, retain: packet.retain, empty: packet.payload.length === 0 })
      if (got.allowed) return callback(null)
      refuse(`PUBLISH by user ${role.user}: ${got.reason}`)
      callback(new Error(got.reason))
    },
    authorizeSubscribe: (client, sub, callback) => {
      const role = roles.get(client)
      const got = role === undefined ? ({ allowed: false, reason: 'no authenticated client' } as const) : mqttAccess(acl.prefix, role.who, { action: 'subscribe', topic: sub.topic })
      if (got.allowed) return callback(null, sub)
      refuse(`SUBSCRIBE by user ${role?.user ?? '?'}: ${got.reason}`)
      callback(null, null) // SUBACK 0x80 for this filter; the connection stays
    },
  }
}

export interface AedesBroker {
  url: string
  port: number
  /** For hooks (authorizePublish ...) and events (clientDisconnect ...). */
  aedes: Aedes
  /** Kills the broker like a crash: sockets destroyed (no DISCONNECT, no CONNACK refusal). */
  close(): Promise<void>
}

/**
 * aedes 1.x: `Aedes.createBroker()` is async (it awaits the persistence's setup), and a
 * `net` server hands each socket to `aedes.handle`. Port 0 (default) takes a free port.
 * `acl`: enforce the topic permissions (its hooks win over the same hooks in `aedes`).
 */
export async function startAedes(opts: { port?: number; aedes?: AedesOptions; acl?: BrokerAcl } = {}): Promise<AedesBroker> {
  const aedes = await Aedes.createBroker({ ...opts.aedes, ...(opts.acl ? aclHooks(opts.acl) : {}) })
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    aedes.handle(socket)
  })
  await listen(server, opts.port ?? 0)
  const port = (server.address() as net.AddressInfo).port
  let closing: Promise<void> | undefined
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    aedes,
    close: () =>
      (closing ??= (async () => {
        for (const socket of sockets) socket.destroy()
        await new Promise<void>((resolve) => server.close(() => resolve()))
        await new Promise<void>((resolve) => aedes.close(() => resolve()))
      })()),
  }
}

export function listen(server: net.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
}
