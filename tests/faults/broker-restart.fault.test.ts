/**
 * Scenario 2: the platform's broker restarted while alarms are on their way, three times,
 * with presses before, during and after each restart.
 *
 * - mosquitto with persistence (`persistence true`, as [MQTT-2.6] requires): SIGTERM saves
 *   the sessions, retained messages and queued messages; the same port comes back with
 *   them. The console's session must survive (sessionPresent), so what was queued for it
 *   comes in when it reconnects.
 * - aedes in memory (the default back end, which [MQTT-2.6] says not to run): the broker
 *   crashes (sockets destroyed) and a new one starts on the same port with no sessions at
 *   all. To make the loss certain rather than a matter of luck, the new broker turns the
 *   console away until the gateway has published every alarm pressed while the broker was
 *   down: those copies reach a broker with no subscriber and vanish, so only the gateway's
 *   republish-until-receipt [MQTT-4.1] can get them through. (That order, gateways first
 *   and the platform later, is what happens when a platform reconnects more slowly than
 *   its gateways.)
 */

import { describe, expect, it } from 'vitest'
import type { ConsoleEvent } from '../../platform/index.js'
import { seededRandom } from '../../protocol/random.js'
import { startAedes, type AedesBroker, type MosquittoBroker } from '../helpers/broker.js'
import { waitUntil } from '../helpers/system.js'
import { sleep, useLoop, type BrokerKind, type Loop } from './loop.js'

const RESTARTS = 3
/** Two terminals on the line, pressing in turn at random: the order rule is per terminal. */
const TERMINALS = 2

/**
 * Crashes the in-process aedes and starts a new, empty one on the same port, refusing the
 * console's connections while `holdConsole()` is true. `whileDown` runs with no broker.
 */
async function crashAndReplaceAedes(loop: Loop, whileDown: () => Promise<void>, holdConsole: () => boolean): Promise<AedesBroker> {
  const old = loop.broker as AedesBroker
  await old.close()
  await whileDown()
  const port = old.port
  for (let tries = 0; ; tries++) {
    try {
      const next = await startAedes({
        port,
        acl: loop.acl,
        aedes: {
          preConnect: (_client, packet, callback) => {
            const refuse = packet.clientId.startsWith('steppelink-console-') && holdConsole()
            callback(refuse ? new Error('console held back by the test') : null, !refuse)
          },
        },
      })
      loop.broker = next
      return next
    } catch (e) {
      // The port was freed a moment ago; on a busy machine the kernel may take a moment.
      if (tries >= 50 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e
      await sleep(100)
    }
  }
}

function connections(events: readonly ConsoleEvent[]): { kind: string; sessionPresent?: boolean }[] {
  return events.flatMap((e) => (e.type === 'connection' ? [{ kind: e.kind, ...(e.sessionPresent !== undefined ? { sessionPresent: e.sessionPresent } : {}) }] : []))
}

describe.each<BrokerKind>(['mosquitto', 'aedes'])('fault: broker restarted during traffic (%s)', (broker) => {
  const loops = useLoop(`broker-${broker}`)

  it(`${RESTARTS} restarts with presses before, during and after each lose and duplicate no alarm`, async () => {
    const l = await loops.start({ broker, persistence: true, terminals: TERMINALS })
    const random = seededRandom(broker === 'aedes' ? 23 : 29)
    const press = () => {
      const t = Math.floor(random() * TERMINALS)
      return `${l.terminals[t]!.id}:${l.press(t, random() < 0.25 ? 'fire' : 'emergency')}`
    }
    const pressSome = async (count: number, gapMs: number) => {
      const ids: string[] = []
      for (let i = 0; i < count; i++) {
        ids.push(press())
        await sleep(random() * gapMs)
      }
      return ids
    }
    /** Alarms pressed while the broker was down (aedes: with no broker at all). */
    const pressedWhileDown: string[] = []

    for (let r = 0; r < RESTARTS; r++) {
      // Before: some on their way when the broker goes.
      await pressSome(1 + Math.floor(random() * 2), 60)
      await sleep(random() * 100)

      if (broker === 'mosquitto') {
        const mosquitto = l.broker as MosquittoBroker
        // SIGTERM goes out at once; presses follow while mosquitto saves and comes back.
        const restarted = mosquitto.restart()
        pressedWhileDown.push(press())
        let during = 1
        let done = false
        void restarted.then(
          () => (done = true),
          () => (done = true),
        )
        while (!done && during < 4) {
          await sleep(20 + random() * 40)
          if (!done) {
            pressedWhileDown.push(press())
            during++
          }
        }
        await restarted
      } else {
        const downIds: string[] = []
        await crashAndReplaceAedes(
          l,
          async () => {
            downIds.push(...(await pressSome(2, 150)))
            // Let the gateway find the broker gone (connection refused) a few times.
            await sleep(300 + random() * 500)
          },
          () => !downIds.every((id) => l.gateway.logs.some((g) => g.msg === 'alarm published' && g.id === id)),
        )
        pressedWhileDown.push(...downIds)
        // The new broker is up: wait (condition, not time) until the gateway is back on it
        // and has published the alarms pressed meanwhile; only then may the console return.
        await waitUntil(() => downIds.every((id) => l.gateway.logs.some((g) => g.msg === 'alarm published' && g.id === id)), {
          timeoutMs: 60_000,
          what: () => `the gateway publishing ${downIds.join(', ')} to the new broker`,
        })
      }

      // After: the broker is back, the gateway and the console may still be reconnecting.
      await pressSome(1, 60)
      // Both are back before the next restart, so that each restart finds them connected.
      const reconnected = r + 2
      await waitUntil(() => connections(l.events).filter((c) => c.kind === 'connected').length >= reconnected && l.console.connected, {
        timeoutMs: 30_000,
        what: () => `the console reconnecting after restart ${r + 1}: ${JSON.stringify(connections(l.events))}`,
      })
      await waitUntil(() => l.gateway.logs.filter((g) => g.msg === 'uplink online').length >= reconnected, {
        timeoutMs: 60_000,
        what: () => `the gateway reconnecting after restart ${r + 1}`,
      })
      // And once everything is back: this one goes straight through, while those pressed
      // during the restart may still be waiting for their republication.
      await pressSome(1 + Math.floor(random() * 2), 60)
    }
    // And one more once things have settled.
    await pressSome(2, 60)

    // The promise (loop/delivery.ts). The new aedes lost what it had accepted: there only an
    // alarm whose first copy at the console was a republication may be overtaken [MQTT-4.4].
    const duplicates = await l.expectEveryAlarmDelivered({ timeoutMs: 60_000, lossyBroker: broker === 'aedes' })

    // Each restart did reach the gateway: it lost the broker and came back each time.
    expect(l.gateway.logs.filter((g) => g.msg === 'uplink offline').length, 'gateway connections lost').toBeGreaterThanOrEqual(RESTARTS)
    expect(l.gateway.logs.filter((g) => g.msg === 'uplink online').length, 'gateway connections made').toBeGreaterThanOrEqual(RESTARTS + 1)
    const connects = connections(l.events).filter((c) => c.kind === 'connected')
    expect(connects.length, 'the console reconnected after every restart').toBeGreaterThanOrEqual(RESTARTS + 1)
    const firstCopy = (id: string) => l.events.find((e) => e.type === 'alert' && e.id === id)
    if (broker === 'mosquitto') {
      // Persistence kept the console's session: what was queued for it was not lost.
      expect(
        connects.slice(1).map((c) => c.sessionPresent),
        'mosquitto kept the console session across each restart',
      ).toEqual(connects.slice(1).map(() => true))
    } else {
      // The new aedes knew nothing: every reconnection was a new session...
      expect(
        connects.slice(1).map((c) => c.sessionPresent),
        'each new aedes had no session for the console',
      ).toEqual(connects.slice(1).map(() => false))
      // ...and the first copy of each alarm pressed while it was down vanished: what
      // reached the console was a republication.
      for (const id of pressedWhileDown) {
        const first = firstCopy(id)
        expect(first?.type === 'alert' ? first.attempt : null, `${id}: first copy at the console was a republication`).toBeGreaterThanOrEqual(2)
      }
    }

    const pressed = l.terminals.reduce((n, t) => n + t.pressed.length, 0)
    console.log(
      `[${broker}] ${RESTARTS} broker restarts, ${pressed} alarms (${pressedWhileDown.length} pressed while the broker was down): all delivered once after dedup, in order; ${duplicates} duplicate copies reached the wire`,
    )
    expect(l.arrivals).toHaveLength(pressed)
  })
})
