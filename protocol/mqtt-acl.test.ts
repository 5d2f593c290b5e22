/**
 * The topic permissions [MQTT-2.7]–[MQTT-2.10] as a table: who, what, topic, retain, and
 * the answer (the rule that grants it, or refused). The same rules run in the embedded
 * aedes and are written into the mosquitto ACL (tests/acl.e2e.test.ts runs a table of
 * cases against both brokers).
 */

import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { MQTT_ACL_RULES, mosquittoAcl, mqttAccess, parseGatewayList, type MqttAccessRequest, type MqttPrincipal } from './mqtt-acl.js'
import { DEFAULT_TOPIC_PREFIX, gatewayTopics } from './mqtt-topics.js'

const P = DEFAULT_TOPIC_PREFIX
const A: MqttPrincipal = { role: 'gateway', id: 'gw-a', area: 'north' }
const B: MqttPrincipal = { role: 'gateway', id: 'gw-b', area: 'south' }
const N: MqttPrincipal = { role: 'gateway', id: 'gw-n', area: null }
const PLATFORM: MqttPrincipal = { role: 'platform' }
const a = gatewayTopics(P, 'gw-a', 'north')
const b = gatewayTopics(P, 'gw-b', 'south')

type Row = [who: MqttPrincipal, request: MqttAccessRequest, expected: string | false]
const pub = (topic: string, retain = false, empty = false): MqttAccessRequest => ({ action: 'publish', topic, retain, empty })
const sub = (topic: string): MqttAccessRequest => ({ action: 'subscribe', topic })

// expected: the id of the rule that grants it, or false (refused).
const TABLE: Row[] = [
  // G1, G2: a gateway publishes its own uplink; retained only state and status.
  [A, pub(a.alert), 'G1'],
  [A, pub(a.event), 'G1'],
  [A, pub(a.batch), 'G1'],
  [A, pub(a.reply), 'G1'],
  [A, pub(a.state, true), 'G2'],
  [A, pub(a.status, true), 'G2'],
  [A, pub(a.state), 'G2'],
  [A, pub(a.alert, true), false],
  [A, pub(a.reply, true, true), false],
  // ... and never another gateway's.
  [A, pub(b.alert), false],
  [A, pub(b.state, true), false],
  [A, pub(b.status, true), false],
  [N, pub(a.alert), false],
  [B, pub(a.alert), false],
  [B, pub(b.alert), 'G1'],
  // No commands from a gateway, on any command topic.
  [A, pub(a.command), false],
  [A, pub(b.command), false],
  [A, pub(a.areaCommand!), false],
  [A, pub(a.allCommand), false],
  // G3-G5: it reads its own, its area's and all commands.
  [A, sub(a.command), 'G3'],
  [A, sub(a.areaCommand!), 'G4'],
  [A, sub(a.allCommand), 'G5'],
  [N, sub(gatewayTopics(P, 'gw-n').command), 'G3'],
  [N, sub(gatewayTopics(P, 'gw-n').allCommand), 'G5'],
  // ... not another gateway's, not another area's, no wildcards, no uplink.
  [A, sub(b.command), false],
  [A, sub(b.areaCommand!), false],
  [B, sub(a.areaCommand!), false],
  [B, sub(b.areaCommand!), 'G4'],
  [N, sub(a.areaCommand!), false],
  [A, sub(`${P}/gw/+/cmd`), false],
  [A, sub(`${P}/area/+/cmd`), false],
  [A, sub(`${P}/#`), false],
  [A, sub('#'), false],
  [A, sub(b.alert), false],
  [A, sub(`${P}/gw/+/alert`), false],
  [A, sub(a.alert), false],
  // P1: the platform commands a gateway, an area, all; never retained but empty (clearing).
  [PLATFORM, pub(a.command), 'P1'],
  [PLATFORM, pub(b.areaCommand!), 'P1'],
  [PLATFORM, pub(a.allCommand), 'P1'],
  [PLATFORM, pub(a.command, true), false],
  [PLATFORM, pub(a.allCommand, true), false],
  [PLATFORM, pub(a.command, true, true), 'P1'],
  [PLATFORM, pub(`${P}/gw/+/cmd`), false],
  [PLATFORM, pub(`${P}/gw/a/b/cmd`), false],
  // P2: it reads every uplink, by wildcard or by gateway.
  ...(['alert', 'event', 'batch', 'state', 'status', 'reply'] as const).map((t): Row => [PLATFORM, sub(`${P}/gw/+/${t}`), 'P2']),
  [PLATFORM, sub(b.alert), 'P2'],
  [PLATFORM, sub(`${P}/gw/#`), false],
  [PLATFORM, sub(`${P}/gw/+/+`), false],
  [PLATFORM, sub(a.command), false],
  // P3: it clears a retired gateway's retained state and status: empty and retained, only.
  [PLATFORM, pub(a.state, true, true), 'P3'],
  [PLATFORM, pub(a.status, true, true), 'P3'],
  [PLATFORM, pub(a.state, true), false],
  [PLATFORM, pub(a.state), false],
  [PLATFORM, pub(a.alert), false],
  [PLATFORM, pub(a.alert, true, true), false],
  // Outside the prefix, nothing.
  [PLATFORM, pub('other/v1/all/cmd'), false],
  [A, pub('steppelink/v2/gw/gw-a/alert'), false],
  [A, pub('$SYS/broker/uptime'), false],
  [PLATFORM, sub('$SYS/#'), false],
]

const name = (w: MqttPrincipal) => (w.role === 'gateway' ? `gateway:${w.id}(${w.area ?? '-'})` : 'platform')

describe('mqttAccess [MQTT-2.8]', () => {
  it.each(TABLE.map(([who, r, expected]) => [name(who), r.action, r.topic, r.retain ? (r.empty ? 'retain, empty' : 'retain') : '', expected, who, r] as const))(
    '%s %s %s %s: %s',
    (_n, _a, _t, _r, expected, who, request) => {
      const got = mqttAccess(P, who, request)
      if (expected === false) {
        expect(got.allowed).toBe(false)
        if (!got.allowed) expect(got.reason).toMatch(/no rule lets|only|not under the prefix/)
      } else expect(got).toEqual({ allowed: true, rule: expected })
    },
  )

  it('says why a retained publish is refused', () => {
    expect(mqttAccess(P, A, pub(a.alert, true))).toEqual({ allowed: false, reason: `gateway gw-a may publish ${a.alert} only without the retain flag (rule G1)` })
    expect(mqttAccess(P, PLATFORM, pub(a.command, true))).toMatchObject({ allowed: false, reason: expect.stringMatching(/only without the retain flag, or empty with it .*\(rule P1\)/) })
  })

  it('every rule is reached by a row of the table', () => {
    const used = new Set(TABLE.map(([who, r]) => mqttAccess(P, who, r)).flatMap((x) => (x.allowed ? [x.rule] : [])))
    expect([...new Set(MQTT_ACL_RULES.map((r) => r.id))].filter((id) => !used.has(id))).toEqual([])
  })

  it('works under any prefix', () => {
    const t = gatewayTopics('fleet/x', 'gw-a', 'north')
    expect(mqttAccess('fleet/x', A, pub(t.alert))).toEqual({ allowed: true, rule: 'G1' })
    expect(mqttAccess('fleet/x', A, pub(a.alert)).allowed).toBe(false)
  })
})

describe('mosquittoAcl [MQTT-2.10]', () => {
  it('the shipped deploy/mosquitto/acl is what the rules generate for the default prefix', () => {
    const shipped = readFileSync(new URL('../deploy/mosquitto/acl', import.meta.url), 'utf8')
    expect(shipped).toBe(mosquittoAcl({ prefix: P, platformUsers: ['platform'], gateways: [] }))
  })

  it('writes patterns for every gateway, a block per platform user and per gateway with an area', () => {
    const acl = mosquittoAcl({
      prefix: P,
      platformUsers: ['platform'],
      gateways: [
        { id: 'gw-a', area: 'north' },
        { id: 'gw-n', area: null },
      ],
    })
    const lines = acl.split('\n').filter((l) => l !== '' && !l.startsWith('#'))
    expect(lines).toEqual([
      `pattern write ${P}/gw/%u/alert`,
      `pattern write ${P}/gw/%u/event`,
      `pattern write ${P}/gw/%u/batch`,
      `pattern write ${P}/gw/%u/reply`,
      `pattern write ${P}/gw/%u/state`,
      `pattern write ${P}/gw/%u/status`,
      `pattern read ${P}/gw/%u/cmd`,
      `pattern read ${P}/all/cmd`,
      'user platform',
      `topic write ${P}/gw/+/cmd`,
      `topic write ${P}/area/+/cmd`,
      `topic write ${P}/all/cmd`,
      ...['alert', 'event', 'batch', 'reply', 'state', 'status'].map((t) => `topic read ${P}/gw/+/${t}`),
      `topic write ${P}/gw/+/state`,
      `topic write ${P}/gw/+/status`,
      'user gw-a',
      `topic read ${P}/area/north/cmd`,
    ])
  })

  it('refuses a gateway named like a platform user, a bad id, a gateway listed twice, no platform user', () => {
    expect(() => mosquittoAcl({ prefix: P, platformUsers: ['platform'], gateways: [{ id: 'platform', area: null }] })).toThrow(/also a platform user name/)
    expect(() => mosquittoAcl({ prefix: P, platformUsers: ['platform'], gateways: [{ id: 'gw/x', area: null }] })).toThrow(/does not match/)
    expect(() => mosquittoAcl({ prefix: P, platformUsers: ['platform'], gateways: [{ id: 'g', area: 'a+' }] })).toThrow(/area "a\+"/)
    expect(() =>
      mosquittoAcl({
        prefix: P,
        platformUsers: ['platform'],
        gateways: [
          { id: 'g', area: null },
          { id: 'g', area: 'x' },
        ],
      }),
    ).toThrow(/twice/)
    expect(() => mosquittoAcl({ prefix: P, platformUsers: [], gateways: [] })).toThrow(/no platform user/)
  })
})

describe('parseGatewayList', () => {
  it('reads "<id> [<area>]" lines, comments and blank lines', () => {
    expect(parseGatewayList('# fleet\ngw-0017 abag-03\n\ngw-0018, abag-03  # new\ngw-0019\n')).toEqual({
      ok: true,
      gateways: [
        { id: 'gw-0017', area: 'abag-03' },
        { id: 'gw-0018', area: 'abag-03' },
        { id: 'gw-0019', area: null },
      ],
    })
  })
  it('names the line that is wrong', () => {
    expect(parseGatewayList('gw-1 a\ngw 2 3\n')).toEqual({ ok: false, error: 'line 2: expected "<gateway id> [<area>]", got 3 words' })
    expect(parseGatewayList('gw+1\n')).toMatchObject({ ok: false, error: expect.stringMatching(/^line 1: gateway id "gw\+1"/) })
  })
})
