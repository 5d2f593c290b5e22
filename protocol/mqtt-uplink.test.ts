/**
 * The uplink schemas (mqtt-uplink.ts) [MQTT-3.1] [MQTT-3.4] [MQTT-3.6] [MQTT-3.8]: what
 * UplinkEvent and TerminalStatus accept and refuse, and the class and Contact ID code of
 * every kind [MQTT-3.3].
 */

import { Compile } from 'typebox/compile'
import { describe, expect, it } from 'vitest'
import { EVENT_KINDS } from './messages.js'
import * as mqtt from './mqtt.js'
import { CLASSES, CLASS_OF, GATEWAY_KINDS, type UplinkEvent } from './mqtt.js'
import { T, alarm, status } from './mqtt.suite.js'

describe('schemas [MQTT-3.1] [MQTT-3.4] [MQTT-3.6] [MQTT-3.8]', () => {
  const uplink = Compile(mqtt.UplinkEvent)
  const terminalStatus = Compile(mqtt.TerminalStatus)

  it('accept the fixtures, and extra fields [MQTT-1.2]', () => {
    expect(uplink.Check(alarm)).toBe(true)
    expect(uplink.Check({ ...alarm, terminalTime: T - 1000, somethingNew: { a: 1 } })).toBe(true)
    expect(terminalStatus.Check(status('T4-00123', 7))).toBe(true)
  })

  it('name terminalTime and broadcast in UplinkEvent, both optional integers [MQTT-3.1]', () => {
    const read = { ...alarm, id: 'gw-0017:g14', class: 'status', kind: 'broadcast-read', code: null, number: null, text: 'broadcast 9001', broadcast: 9001 }
    delete (read as Partial<UplinkEvent>).stage
    expect(uplink.Check(read)).toBe(true)
    expect(uplink.Check({ ...read, broadcast: '9001' })).toBe(false)
    expect(uplink.Check({ ...alarm, terminalTime: T - 1000 })).toBe(true)
    expect(uplink.Check({ ...alarm, terminalTime: T + 0.5 })).toBe(false)
    expect(Object.keys((mqtt.UplinkEvent as unknown as { properties: object }).properties)).toEqual(expect.arrayContaining(['terminalTime', 'broadcast']))
  })

  it('reject what the contract forbids', () => {
    expect(uplink.Check({ ...alarm, v: 2 })).toBe(false)
    expect(uplink.Check({ ...alarm, class: 'urgent' })).toBe(false)
    expect(uplink.Check({ ...alarm, kind: 'status' })).toBe(false)
    expect(uplink.Check({ ...alarm, attempt: 0 })).toBe(false)
    expect(uplink.Check({ ...alarm, address: 255 })).toBe(false)
    expect(uplink.Check({ ...alarm, id: '' })).toBe(false)
    expect(uplink.Check({ ...alarm, time: { at: T } })).toBe(false)
    expect(terminalStatus.Check({ ...status('T4-00123', 7), heartbeats: 0 })).toBe(false)
    expect(terminalStatus.Check({ ...status('T4-00123', 7), class: 'trouble' })).toBe(false)
  })

  it('give every kind a class, and the Contact ID code of [MQTT-3.3]', () => {
    const kinds = [...Object.keys(EVENT_KINDS), ...Object.keys(GATEWAY_KINDS)]
    expect(new Set(Object.keys(CLASS_OF))).toEqual(new Set(kinds))
    for (const k of kinds) expect(CLASSES).toContain(CLASS_OF[k as keyof typeof CLASS_OF])
    expect(
      Object.entries(CLASS_OF)
        .filter(([, c]) => c === 'alarm')
        .map(([k]) => k)
        .sort(),
    ).toEqual(['cancel', 'emergency', 'fire', 'medical', 'panic'])
  })
})
