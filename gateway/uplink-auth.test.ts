/**
 * The uplink against a broker that enforces the topic permissions [MQTT-2.7] [MQTT-2.8]
 * (the embedded aedes with its hooks): with the right user name and password it comes
 * online; with a wrong one the state it reports says which setting to check; a
 * subscription outside its rights is reported, and alarms still go up [UPLINK-4].
 */

import { afterEach, describe, expect, it } from 'vitest'
import { brokerAcl, credentialsOf } from '../device-sim/broker.js'
import { DEFAULT_TOPIC_PREFIX, connackRefusal, gatewayTopics } from '../protocol/mqtt.js'
import { aedes, cleanUp, isOnline, makeGateway, newGatewayId } from './uplink.suite.js'
import { waitUntil } from '../device-sim/wait.js'

afterEach(cleanUp)

describe('uplink with broker credentials [MQTT-2.7]', () => {
  it('comes online with its user name and password', async () => {
    const id = newGatewayId()
    const acl = brokerAcl(DEFAULT_TOPIC_PREFIX, { gateways: [{ id, area: null }] })
    const broker = await aedes({ acl })
    const gw = makeGateway([broker.url], { ...credentialsOf(acl, id) }, id)
    gw.uplink.start()
    await waitUntil(() => isOnline(gw), { timeoutMs: 5000, what: 'online' })
    await gw.uplink.publish(gw.topics.alert, Buffer.from('{}'))
  })

  it('a wrong password: the state says the broker refused our user name/password (mqtt.username)', async () => {
    const id = newGatewayId()
    const acl = brokerAcl(DEFAULT_TOPIC_PREFIX, { gateways: [{ id, area: null }] })
    const broker = await aedes({ acl })
    const gw = makeGateway([broker.url], { username: id, password: 'wrong', backoff: { initialMs: 10_000 } }, id)
    gw.uplink.start()
    await waitUntil(() => gw.states.length > 0, { timeoutMs: 5000, what: 'a state' })
    expect(gw.states[0]).toMatchObject({ online: false })
    expect(gw.states[0]?.reason).toMatch(
      new RegExp(`^connect to ${broker.url} failed: the broker refused our user name/password \\(mqtt.username\\): CONNACK 4, bad user name or password; attempt 2 in \\d+ ms`),
    )
  })

  it("a subscription outside its rights (another gateway's commands) is refused and reported; its alarms still go up", async () => {
    const id = newGatewayId()
    const acl = brokerAcl(DEFAULT_TOPIC_PREFIX, { gateways: [{ id, area: null }] })
    const broker = await aedes({ acl })
    const warnings: string[] = []
    const other = gatewayTopics(DEFAULT_TOPIC_PREFIX, 'someone-else').command
    const gw = makeGateway([broker.url], { ...credentialsOf(acl, id), subscriptions: [gatewayTopics(DEFAULT_TOPIC_PREFIX, id).command, other], onWarning: (w) => warnings.push(w) }, id)
    gw.uplink.start()
    await waitUntil(() => warnings.length > 0, { timeoutMs: 5000, what: 'the warning' })
    expect(warnings).toEqual([`${broker.url} refused the subscriptions ${other}: commands on them will not arrive; check the broker's ACL`])
    await gw.uplink.publish(gw.topics.alert, Buffer.from('{}'))
  })

  it('connackRefusal names the setting for CONNACK 4 and 5 only', () => {
    expect(connackRefusal(5, 'mqtt.username')).toBe('the broker refused our user name/password (mqtt.username): CONNACK 5, not authorized')
    expect(connackRefusal(4, 'x')).toMatch(/CONNACK 4, bad user name or password$/)
    expect(connackRefusal(3, 'x')).toBeNull()
    expect(connackRefusal('ECONNREFUSED', 'x')).toBeNull()
  })
})
