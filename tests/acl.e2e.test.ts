/**
 * Topic permissions [MQTT-2.7]-[MQTT-2.10] on real brokers, one table of cases run twice:
 * against mosquitto with the shipped deploy/mosquitto/acl (the area lines appended as
 * README says, user names and passwords in a password file made by mosquitto_passwd), and
 * against the embedded aedes with the hooks of device-sim/broker.ts. Both listen on
 * 127.0.0.1 only.
 *
 * A refused PUBLISH is silent on mosquitto (MQTT 3.1.1 QoS 1: the PUBACK still comes, the
 * message is dropped), and aedes closes the connection. So whether a message got through
 * is read at a subscriber that has the right to it: after the probe, a marker is published
 * on a topic that subscriber reads, and once the marker is there the probe has either come
 * before it or never comes. No sleeping.
 */

import { readFileSync } from 'node:fs'
import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { brokerAcl, credentialsOf, startAedes, type AedesBroker, type BrokerAcl } from '../device-sim/broker.js'
import { startMosquitto, type MosquittoBroker } from '../device-sim/mosquitto.js'
import { DEFAULT_TOPIC_PREFIX, gatewayTopics, mosquittoAcl } from '../protocol/mqtt.js'
import { requireTool, waitUntil } from './helpers/system.js'
import { makeTestPki, type TestPki } from './helpers/tls-certs.js'

requireTool('mosquitto')

const P = DEFAULT_TOPIC_PREFIX
const A = gatewayTopics(P, 'gw-a', 'north')
const B = gatewayTopics(P, 'gw-b', 'south')
const SOUTH = B.areaCommand!
type Who = 'gw-a' | 'gw-b' | 'platform'

const SHIPPED = readFileSync(new URL('../deploy/mosquitto/acl', import.meta.url), 'utf8')
/** What README tells an operator to append for gateways with an area (or `steppelink broker-acl` writes). */
const AREA_LINES = `\n# G4: a gateway reads its area's commands: one block per gateway with an area.\nuser gw-a\ntopic read ${P}/area/north/cmd\nuser gw-b\ntopic read ${P}/area/south/cmd\n`

let seq = 0
const tag = () => `${process.pid}-${++seq}`

/** A client of `who` (its account), subscribed to `filters`, recording what it receives. */
async function client(url: string, acl: BrokerAcl, who: Who, filters: string[] = []) {
  return clientWith(url, { ...credentialsOf(acl, who), clientId: `acl-${who}-${tag()}` }, filters)
}

/** A client with these connect options (an account's password, or a TLS client certificate), subscribed to `filters`. */
async function clientWith(url: string, options: mqtt.IClientOptions, filters: string[] = []) {
  const c = await mqtt.connectAsync(url, { clientId: `acl-${tag()}`, ...options, clean: true, protocolVersion: 4, reconnectPeriod: 0 })
  const got: { topic: string; payload: string }[] = []
  c.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }))
  const codes = filters.length > 0 ? await subscribe(c, filters) : []
  return { c, got, granted: Object.fromEntries(filters.map((f, i) => [f, codes[i]])) as Record<string, number> }
}

/** The SUBACK's return codes, one per filter (mqtt.js reports a 0x80 among them as an error carrying the SUBACK). */
function subscribe(c: MqttClient, filters: string[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    c.subscribe(filters, { qos: 1 }, (err, granted) => {
      const suback = err && 'packet' in err ? (err as { packet?: { granted?: number[] } }).packet : undefined
      if (err && !Array.isArray(suback?.granted)) return reject(err)
      resolve(suback?.granted ?? (granted ?? []).map((g) => g.qos))
    })
  })
}

/** Publishes at QoS 1; 'puback' or 'closed' (the broker closed the connection), never left waiting. */
function attempt(c: MqttClient, topic: string, payload: string, retain = false): Promise<'puback' | 'closed'> {
  return new Promise((resolve) => {
    c.once('close', () => resolve('closed'))
    c.publish(topic, payload, { qos: 1, retain }, (err) => resolve(err ? 'closed' : 'puback'))
  })
}

interface Probe {
  name: string
  /** Who publishes the probe, where, with which retain flag. */
  by: Who
  topic: string
  retain?: boolean
  /** Who watches (subscribed to watch, which it has the right to), and who publishes the marker where after the probe. */
  watcher: Who
  watch: string[]
  marker: { by: Who; topic: string }
  /** Whether the probe reaches the watcher, per broker. */
  reaches: { mosquitto: boolean; aedes: boolean } | boolean
  /** The PUBLISH itself is refused (`retain`: for its retain flag, which only aedes can check). */
  refused?: 'publish' | 'retain'
}

const PROBES: Probe[] = [
  { name: 'A publishes its own alert (G1)', by: 'gw-a', topic: A.alert, watcher: 'platform', watch: [`${P}/gw/+/alert`], marker: { by: 'gw-b', topic: B.alert }, reaches: true },
  { name: 'A cannot publish as B (alert)', by: 'gw-a', topic: B.alert, watcher: 'platform', watch: [`${P}/gw/+/alert`], marker: { by: 'gw-b', topic: B.alert }, reaches: false, refused: 'publish' },
  {
    name: "A cannot publish B's state",
    by: 'gw-a',
    topic: B.state,
    retain: true,
    watcher: 'platform',
    watch: [`${P}/gw/+/state`],
    marker: { by: 'gw-b', topic: B.state },
    reaches: false,
    refused: 'publish',
  },
  { name: 'A cannot publish a command to B', by: 'gw-a', topic: B.command, watcher: 'gw-b', watch: [B.command], marker: { by: 'platform', topic: B.command }, reaches: false, refused: 'publish' },
  {
    name: 'A cannot publish a command to all',
    by: 'gw-a',
    topic: A.allCommand,
    watcher: 'gw-b',
    watch: [B.allCommand],
    marker: { by: 'platform', topic: B.allCommand },
    reaches: false,
    refused: 'publish',
  },
  {
    name: 'A cannot publish a command to its own area',
    by: 'gw-a',
    topic: A.areaCommand!,
    watcher: 'gw-a',
    watch: [A.areaCommand!],
    marker: { by: 'platform', topic: A.areaCommand! },
    reaches: false,
    refused: 'publish',
  },
  { name: 'A reads its own commands (G3)', by: 'platform', topic: A.command, watcher: 'gw-a', watch: [A.command], marker: { by: 'platform', topic: A.command }, reaches: true },
  { name: "A reads its area's commands (G4)", by: 'platform', topic: A.areaCommand!, watcher: 'gw-a', watch: [A.areaCommand!, A.command], marker: { by: 'platform', topic: A.command }, reaches: true },
  { name: 'A reads the commands to all (G5)', by: 'platform', topic: A.allCommand, watcher: 'gw-a', watch: [A.allCommand, A.command], marker: { by: 'platform', topic: A.command }, reaches: true },
  { name: "A cannot read B's commands", by: 'platform', topic: B.command, watcher: 'gw-a', watch: [B.command, A.command], marker: { by: 'platform', topic: A.command }, reaches: false },
  { name: "A cannot read another area's commands", by: 'platform', topic: SOUTH, watcher: 'gw-a', watch: [SOUTH, A.command], marker: { by: 'platform', topic: A.command }, reaches: false },
  {
    name: "A cannot read B's commands through a wildcard",
    by: 'platform',
    topic: B.command,
    watcher: 'gw-a',
    watch: [`${P}/gw/+/cmd`, A.command],
    marker: { by: 'platform', topic: A.command },
    reaches: false,
  },
  { name: "A cannot read B's uplink", by: 'gw-b', topic: B.alert, watcher: 'gw-a', watch: [B.alert, A.command], marker: { by: 'platform', topic: A.command }, reaches: false },
  {
    name: 'A publishing its alert retained: refused by aedes; mosquitto cannot check the retain flag',
    by: 'gw-a',
    topic: A.alert,
    retain: true,
    watcher: 'platform',
    watch: [`${P}/gw/+/alert`],
    marker: { by: 'gw-b', topic: B.alert },
    reaches: { mosquitto: true, aedes: false },
    refused: 'retain',
  },
  { name: 'the platform publishes commands to a gateway (P1)', by: 'platform', topic: B.command, watcher: 'gw-b', watch: [B.command], marker: { by: 'platform', topic: B.command }, reaches: true },
  { name: 'the platform publishes commands to an area (P1)', by: 'platform', topic: SOUTH, watcher: 'gw-b', watch: [SOUTH, B.command], marker: { by: 'platform', topic: B.command }, reaches: true },
  ...(['event', 'batch', 'status', 'reply'] as const).map(
    (t): Probe => ({
      name: `the platform reads every uplink: ${t} (P2)`,
      by: 'gw-b',
      topic: B[t],
      watcher: 'platform',
      watch: [`${P}/gw/+/${t}`, `${P}/gw/+/alert`],
      marker: { by: 'gw-b', topic: B.alert },
      reaches: true,
    }),
  ),
]

type Open = (who: Who, filters?: string[]) => Promise<Awaited<ReturnType<typeof clientWith>>>

/** One probe of the table: published, then a marker after it; whether the probe reached the watcher. */
async function runProbe(kind: 'mosquitto' | 'aedes', open: Open, p: Probe): Promise<void> {
  const watcher = await open(p.watcher, p.watch)
  const publisher = await open(p.by)
  const marker = p.marker.by === p.by ? publisher : await open(p.marker.by)
  const probe = `probe-${tag()}`
  const answer = await attempt(publisher.c, p.topic, probe, p.retain ?? false)
  const reaches = typeof p.reaches === 'boolean' ? p.reaches : p.reaches[kind]
  // A refused PUBLISH: mosquitto acknowledges and drops it; aedes closes the connection. Neither leaves the publisher waiting.
  expect(answer).toBe(kind === 'aedes' && p.refused !== undefined ? 'closed' : 'puback')
  const m = answer === 'closed' && marker === publisher ? await open(p.marker.by) : marker
  const mark = `marker-${tag()}`
  expect(await attempt(m.c, p.marker.topic, mark)).toBe('puback')
  await waitUntil(() => watcher.got.some((g) => g.payload === mark), { timeoutMs: 5000, what: `the marker at ${p.watcher}` })
  expect(watcher.got.some((g) => g.payload === probe && g.topic === p.topic)).toBe(reaches)
  if (p.retain) await attempt(m === publisher ? (await open(p.by)).c : (await open('platform')).c, p.topic, '', true) // clear what mosquitto kept
}

describe.each(['mosquitto', 'aedes'] as const)('topic permissions on %s [MQTT-2.8]', (kind) => {
  let broker: MosquittoBroker | AedesBroker
  let acl: BrokerAcl
  const refused: string[] = []
  const clients: MqttClient[] = []
  const open = async (who: Who, filters: string[] = []) => {
    const x = await client(broker.url, acl, who, filters)
    clients.push(x.c)
    return x
  }

  beforeAll(async () => {
    acl = brokerAcl(
      P,
      {
        platform: ['platform'],
        gateways: [
          { id: 'gw-a', area: 'north' },
          { id: 'gw-b', area: 'south' },
        ],
      },
      (what) => refused.push(what),
    )
    if (kind === 'mosquitto') {
      // The shipped file and the area lines an operator appends are what `steppelink broker-acl` writes for these gateways.
      expect(SHIPPED + AREA_LINES).toBe(
        mosquittoAcl({
          prefix: P,
          platformUsers: ['platform'],
          gateways: [
            { id: 'gw-a', area: 'north' },
            { id: 'gw-b', area: 'south' },
          ],
        }),
      )
      broker = await startMosquitto({ acl, aclText: SHIPPED + AREA_LINES })
    } else broker = await startAedes({ acl })
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)))
    await broker?.close()
  })

  it.each(PROBES.map((p) => [p.name, p] as const))('%s', async (_name, p) => runProbe(kind, open, p))

  it('a refused SUBSCRIBE: aedes answers 0x80 for it in the SUBACK; mosquitto 2.0 grants it and checks each message it would deliver', async () => {
    const no = kind === 'aedes' ? 128 : 1
    const a = await open('gw-a', [A.command, B.command, SOUTH, A.areaCommand!, A.allCommand, `${P}/#`])
    expect(a.granted).toEqual({ [A.command]: 1, [B.command]: no, [SOUTH]: no, [A.areaCommand!]: 1, [A.allCommand]: 1, [`${P}/#`]: no })
    const p = await open('platform', [...['alert', 'event', 'batch', 'state', 'status', 'reply'].map((t) => `${P}/gw/+/${t}`), A.command])
    expect(Object.values(p.granted)).toEqual([1, 1, 1, 1, 1, 1, no])
  })

  it('a wrong password, an unknown user and no user name are refused at CONNECT', async () => {
    const refusedCode = async (o: { username?: string; password?: string }) => {
      const c = mqtt.connect(broker.url, { ...o, clientId: `acl-bad-${tag()}`, clean: true, protocolVersion: 4, reconnectPeriod: 0 })
      try {
        return await new Promise<number | string>((resolve) => {
          c.once('connect', () => resolve('connected'))
          c.once('error', (e) => resolve((e as Error & { code?: number }).code ?? e.message))
        })
      } finally {
        c.end(true)
      }
    }
    // mosquitto answers 5 (not authorized) to MQTT 3.1.1 for any of them; aedes 4 (bad user name or password).
    const expected = kind === 'mosquitto' ? 5 : 4
    expect(await refusedCode({ username: 'gw-a', password: 'wrong' })).toBe(expected)
    expect(await refusedCode({ username: 'gw-nobody', password: 'x' })).toBe(expected)
    expect(await refusedCode({})).toBe(expected)
  })

  it('the gateway Will on its own state is published; aedes says what it refused', async () => {
    const p = await open('platform', [`${P}/gw/+/state`])
    const death = `death-${tag()}`
    const c = await mqtt.connectAsync(broker.url, {
      ...credentialsOf(acl, 'gw-a'),
      clientId: `acl-will-${tag()}`,
      clean: true,
      protocolVersion: 4,
      reconnectPeriod: 0,
      will: { topic: A.state, payload: Buffer.from(death), qos: 1, retain: true },
    })
    c.stream.destroy() // no DISCONNECT: the broker publishes the Will
    await waitUntil(() => p.got.some((g) => g.payload === death), { timeoutMs: 5000, what: 'the Will' })
    if (kind === 'aedes') expect(refused.some((r) => r.includes(`no rule lets gateway gw-a publish ${B.alert}`))).toBe(true)
    await attempt((await open('gw-a')).c, A.state, '', true)
  })
})

describe("topic permissions on mosquitto with the client certificate's CN as the user name [MQTT-2.7] [MQTT-2.8]", () => {
  // deploy/mosquitto/mosquitto.conf's second listener: require_certificate and
  // use_identity_as_username, the same ACL file. No passwords: the certificate is the account.
  let pki: TestPki
  let broker: MosquittoBroker
  const clients: MqttClient[] = []
  const open: Open = async (who, filters = []) => {
    const cert = pki.clients[who]!
    const x = await clientWith(
      broker.url,
      { ca: readFileSync(pki.ca.cert), cert: readFileSync(cert.cert), key: readFileSync(cert.key), rejectUnauthorized: true, clientId: `acl-cert-${who}-${tag()}` },
      filters,
    )
    clients.push(x.c)
    return x
  }

  beforeAll(async () => {
    requireTool('openssl')
    pki = makeTestPki({ clients: ['gw-a', 'gw-b', 'platform'] })
    const acl = brokerAcl(P, {
      platform: ['platform'],
      gateways: [
        { id: 'gw-a', area: 'north' },
        { id: 'gw-b', area: 'south' },
      ],
    })
    broker = await startMosquitto({ acl, aclText: SHIPPED + AREA_LINES, tls: { cafile: pki.ca.cert, certfile: pki.server.cert, keyfile: pki.server.key, requireCertificate: true } })
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)))
    await broker?.close()
    pki?.remove()
  })

  it.each(PROBES.map((p) => [p.name, p] as const))('%s', async (_name, p) => runProbe('mosquitto', open, p))

  it('a certificate from another CA is refused in the handshake, whatever its CN', async () => {
    const c = mqtt.connect(broker.url, {
      ca: readFileSync(pki.ca.cert),
      cert: readFileSync(pki.foreignClient.cert),
      key: readFileSync(pki.foreignClient.key),
      clientId: `acl-cert-foreign-${tag()}`,
      reconnectPeriod: 0,
      protocolVersion: 4,
    })
    try {
      const outcome = await new Promise<string>((resolve) => {
        c.once('connect', () => resolve('connected'))
        c.once('error', (e) => resolve(`error: ${e.message}`))
        c.once('close', () => resolve('closed'))
      })
      expect(outcome).not.toBe('connected')
    } finally {
      c.end(true)
    }
  })
})
