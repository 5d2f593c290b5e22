/**
 * The topic layout (mqtt-topics.ts) [MQTT-2.1]: a gateway with and without an area, under
 * any prefix; the uplink topics against the platform's subscriptions of [MQTT-4.8]; and the
 * patterns for prefixes and ids that the gateway and the console share.
 */

import { describe, expect, it } from 'vitest'
import * as mqtt from './mqtt.js'
import { DEFAULT_TOPIC_PREFIX, TOPIC_ID_PATTERN, gatewayTopics } from './mqtt.js'

describe('topics [MQTT-2.1]', () => {
  it('lays out a gateway with an area', () => {
    expect(gatewayTopics('steppelink/v1', 'gw-0017', 'abag-03')).toEqual({
      state: 'steppelink/v1/gw/gw-0017/state',
      alert: 'steppelink/v1/gw/gw-0017/alert',
      event: 'steppelink/v1/gw/gw-0017/event',
      batch: 'steppelink/v1/gw/gw-0017/batch',
      status: 'steppelink/v1/gw/gw-0017/status',
      reply: 'steppelink/v1/gw/gw-0017/reply',
      command: 'steppelink/v1/gw/gw-0017/cmd',
      areaCommand: 'steppelink/v1/area/abag-03/cmd',
      allCommand: 'steppelink/v1/all/cmd',
    })
  })

  it('lays out a gateway without an area, under any prefix', () => {
    const t = gatewayTopics('banner/xilingol/110', 'gw-1')
    expect(t.areaCommand).toBeNull()
    expect(t.command).toBe('banner/xilingol/110/gw/gw-1/cmd')
    expect(t.allCommand).toBe('banner/xilingol/110/all/cmd')
    expect(gatewayTopics(DEFAULT_TOPIC_PREFIX, 'gw-1', null).state).toBe('steppelink/v1/gw/gw-1/state')
  })

  it('uplink topics match the platform subscriptions of [MQTT-4.8]; command topics do not', () => {
    const t = gatewayTopics(DEFAULT_TOPIC_PREFIX, 'gw-0017', 'abag-03')
    const filters = ['alert', 'event', 'batch', 'state', 'status', 'reply'].map((x) => new RegExp(`^steppelink/v1/gw/[^/]+/${x}$`))
    for (const k of ['state', 'alert', 'event', 'batch', 'status', 'reply'] as const) expect(filters.some((f) => f.test(t[k]))).toBe(true)
    for (const k of ['command', 'areaCommand', 'allCommand'] as const) expect(filters.some((f) => f.test(t[k]!))).toBe(false)
  })

  it('TOPIC_PREFIX_PATTERN: one rule for the gateway and the console (issue 11, item 3)', () => {
    const ok = (p: string) => new RegExp(mqtt.TOPIC_PREFIX_PATTERN).test(p)
    expect(['steppelink/v1', 'x', 'county/110/v1'].filter(ok)).toHaveLength(3)
    expect(['', '/a', 'a/', 'a//b', 'a/+/b', 'a/#', '$SYS/x', 'a\u0000b'].filter(ok)).toEqual([])
  })

  it('TOPIC_ID_PATTERN keeps ids to one topic level', () => {
    const re = new RegExp(TOPIC_ID_PATTERN)
    for (const ok of ['gw-0017', 'abag-03', 'T4.00123', 'a:b_c', 'x'.repeat(64)]) expect(re.test(ok), ok).toBe(true)
    for (const bad of ['', 'a/b', 'a+', '#', 'a b', 'a\0b', 'x'.repeat(65), '$SYS']) expect(re.test(bad), bad).toBe(false)
  })
})
