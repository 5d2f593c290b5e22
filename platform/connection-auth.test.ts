/**
 * The console against a broker that enforces the topic permissions [MQTT-2.7] [MQTT-2.8]
 * (the embedded aedes with its hooks): a refused log-in names the options to check; a
 * refused subscription is reported and the console still comes up with the rest.
 */

import { afterEach, describe, expect, it } from 'vitest'
import { brokerAcl, credentialsOf, startAedes, type BrokerAcl } from '../device-sim/broker.js'
import { waitFor } from '../device-sim/wait.js'
import { DEFAULT_TOPIC_PREFIX } from '../protocol/mqtt.js'
import { cleanUp, consoleFor } from '../tests/helpers/console-harness.js'

const brokers: { close(): Promise<void> }[] = []
afterEach(async () => {
  await cleanUp()
  for (const b of brokers.splice(0)) await b.close()
})

async function aedes(o: { acl: BrokerAcl }) {
  const b = await startAedes(o)
  brokers.push(b)
  return b
}

describe('console with broker credentials [MQTT-2.7]', () => {
  it('a wrong password: the failure names --username/--password', async () => {
    const acl = brokerAcl(DEFAULT_TOPIC_PREFIX, {})
    const broker = await aedes({ acl })
    const { of } = await consoleFor(broker.url, { username: 'platform', password: 'wrong', waitForBroker: false, reconnectS: 60 })
    await waitFor('the failure', () => of('connection').some((e) => e.kind === 'failed'))
    expect(of('connection').find((e) => e.kind === 'failed')?.message).toBe('the broker refused our user name/password (--username/--password): CONNACK 4, bad user name or password')
  })

  it("logged in with a gateway's account it may not read the uplink: the refusal is an error event, and it is connected", async () => {
    const acl = brokerAcl(DEFAULT_TOPIC_PREFIX, { gateways: [{ id: 'gw-x', area: null }] })
    const broker = await aedes({ acl })
    const { c, of } = await consoleFor(broker.url, { ...credentialsOf(acl, 'gw-x') })
    expect(c.connected).toBe(true)
    expect(of('error').map((e) => e.code)).toEqual(['CONSOLE_SUBSCRIBE_REFUSED'])
    expect(of('error')[0]?.message).toMatch(new RegExp(`^the broker refused the subscriptions ${DEFAULT_TOPIC_PREFIX}/gw/\\+/alert, `))
  })

  it('with the platform account it subscribes to everything', async () => {
    const acl = brokerAcl(DEFAULT_TOPIC_PREFIX, {})
    const broker = await aedes({ acl })
    const { c, of } = await consoleFor(broker.url, { ...credentialsOf(acl, 'platform') })
    expect(c.connected).toBe(true)
    expect(of('error')).toEqual([])
  })
})
