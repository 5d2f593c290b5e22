import { describe, expect, it } from 'vitest'
import { COPY_TIME_TOLERANCE_MS, differingContent, IDENTIFYING_FIELDS, type UplinkEvent } from './mqtt.js'

const T = 1_767_252_600_000
const real: UplinkEvent = {
  v: 1,
  id: 'T4-00123:43',
  class: 'alarm',
  kind: 'emergency',
  code: 101,
  restore: false,
  gateway: 'gw-0017',
  terminal: 'T4-00123',
  address: 3,
  number: 43,
  time: { at: T, estimated: false },
  received: T,
  attempt: 1,
  stage: 'stored',
}

describe('same id, different content [MQTT-4.15]', () => {
  it('a republication differs only in what changes per publication: attempt, stage, a re-corrected time', () => {
    expect(differingContent(real, { ...real, attempt: 7, stage: 'unconfirmed' })).toEqual([])
    const drift = T + COPY_TIME_TOLERANCE_MS
    expect(differingContent(real, { ...real, time: { at: drift, estimated: false }, received: drift })).toEqual([])
    const raw = { at: 5_000, estimated: true }
    expect(differingContent({ ...real, time: raw, received: 5_000 }, { ...real, time: raw, received: 5_000, attempt: 2 })).toEqual([])
    // Unknown fields are not compared (a later version may add per-publication ones).
    expect(differingContent(real, { ...real, hops: 2 } as UplinkEvent)).toEqual([])
  })

  it('another item under the id differs: its time, its kind, where it came from, what it says', () => {
    const at = T + COPY_TIME_TOLERANCE_MS + 1
    expect(differingContent(real, { ...real, time: { at, estimated: false }, received: at })).toEqual(['time', 'received'])
    expect(differingContent(real, { ...real, kind: 'cancel', code: 406 })).toEqual(['kind', 'code'])
    expect(differingContent(real, { ...real, address: 7, gateway: 'gw-9' })).toEqual(['gateway', 'address'])
    expect(differingContent(real, { ...real, text: 'x' })).toEqual(['text'])
    expect(differingContent(real, { ...real, reset: { reason: 'boot-backwards', epoch: 'e', boot: 1, lastEvent: 0, previousBoot: null, previousNumber: 0 } })).toEqual(['reset'])
    // Corrected first, estimated later: never honest (the gateway stores each item's offset).
    expect(differingContent(real, { ...real, time: { at: T, estimated: true } })).toEqual(['time', 'received'])
    expect(differingContent(real, { ...real, time: { at: T, estimated: true } }, { open: true })).toEqual(['time', 'received'])
  })

  it('estimated first, corrected later: a republication while the case is open (a gateway that booted without the time), a conflict once it is resolved', () => {
    const booted = { ...real, time: { at: 5_000, estimated: true }, received: 5_000 }
    const corrected = { ...real, attempt: 2 }
    expect(differingContent(booted, corrected, { open: true })).toEqual([])
    expect(differingContent(booted, corrected, { open: false })).toEqual(['time', 'received'])
    expect(differingContent(booted, corrected)).toEqual(['time', 'received'])
    // The other fields still decide.
    expect(differingContent(booted, { ...corrected, kind: 'fire', code: 110 }, { open: true })).toEqual(['kind', 'code'])
  })

  it('compares every field of the schema but attempt, stage, time and received', () => {
    expect(IDENTIFYING_FIELDS).toEqual(expect.arrayContaining(['class', 'kind', 'code', 'restore', 'gateway', 'terminal', 'address', 'number', 'user', 'text', 'terminalTime', 'cancels', 'claims']))
    expect(IDENTIFYING_FIELDS).not.toContain('attempt')
    expect(IDENTIFYING_FIELDS).not.toContain('stage')
    expect(IDENTIFYING_FIELDS).not.toContain('time')
  })
})
