/**
 * The TLS files and the client certificate's expiry (issue 12), with certificates made by
 * openssl (tests/helpers/tls-certs.ts) and an injected clock: ManualTimers and a time the
 * test moves, no sleeps. The config errors are in config.test.ts; against mosquitto, in
 * uplink-tls.test.ts.
 */

import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { afterAll, beforeEach, describe, expect, it } from 'vitest'
import { ManualTimers } from '../tests/helpers/manual-timers.js'
import { makeTestPki } from '../tests/helpers/tls-certs.js'
import { CertExpiryWatch, certInfo, EXPIRY_CHECK_MS, EXPIRY_RETRY_MS, expiryNotice, isTlsUrl, TlsFiles } from './tls.js'

const pki = makeTestPki()
afterAll(() => pki.remove())
const DAY = 86_400_000

describe('certInfo', () => {
  it('reads the CN, the validity and a fingerprint', () => {
    const info = certInfo(readFileSync(pki.expiredClient.cert))
    expect(info).toMatchObject({ subject: 'gw-expired', validFrom: Date.UTC(2020, 0, 1), validTo: Date.UTC(2020, 1, 1) })
    expect(info.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
  })
})

describe('isTlsUrl', () => {
  it('knows which broker URLs run over TLS', () => {
    expect(['mqtts://a:8883', 'tls://a', 'ssl://a', 'wss://a/mqtt'].map(isTlsUrl)).toEqual([true, true, true, true])
    expect(['mqtt://a', 'tcp://a', 'ws://a', 'nonsense'].map(isTlsUrl)).toEqual([false, false, false, false])
  })
})

describe('TlsFiles: read at every connection attempt, so a renewal needs no restart', () => {
  it('gives mqtt.js the files and the server name', () => {
    const files = new TlsFiles({ ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, servername: 'broker.internal' })
    const m = files.load()
    expect(m).toEqual({ ca: readFileSync(pki.ca.cert), cert: readFileSync(pki.client.cert), key: readFileSync(pki.client.key), servername: 'broker.internal' })
    expect(files.client?.subject).toBe('gw-test')
  })

  it('says when the certificate changed, and uses the new one at the next attempt', () => {
    const cert = pki.write('renew.crt', readFileSync(pki.expiredClient.cert, 'utf8'))
    const key = pki.write('renew.key', readFileSync(pki.expiredClient.key, 'utf8'))
    const changes: string[] = []
    const files = new TlsFiles({ cert, key }, { onChange: (now, before) => changes.push(`${before.subject} -> ${now.subject}`) })
    files.load()
    files.load()
    expect(changes).toEqual([])
    copyFileSync(pki.client.cert, cert)
    copyFileSync(pki.client.key, key)
    expect(files.load().cert).toEqual(readFileSync(pki.client.cert))
    expect(changes).toEqual(['gw-expired -> gw-test'])
    expect(files.client?.subject).toBe('gw-test')
  })

  it('keeps the last good files while a renewal is half copied (the new certificate, the old key), and says so', () => {
    const cert = pki.write('half.crt', readFileSync(pki.client.cert, 'utf8'))
    const key = pki.write('half.key', readFileSync(pki.client.key, 'utf8'))
    const errors: string[] = []
    const files = new TlsFiles({ cert, key }, { onError: (m) => errors.push(m) })
    const good = files.load()
    copyFileSync(pki.foreignClient.cert, cert)
    expect(files.load()).toBe(good)
    expect(errors).toEqual([`cannot use the TLS files now (${key} is not the private key of ${cert}); connecting with the ones read before. If a renewal is being copied, this passes`])
    writeFileSync(key, '')
    expect(files.load()).toBe(good)
    expect(errors).toHaveLength(2)
  })

  it('throws at the first load if the files cannot be used (the config checks saw them a moment before)', () => {
    expect(() => new TlsFiles({ cert: `${pki.dir}/none.crt`, key: pki.client.key }).load()).toThrow(/ENOENT/)
  })
})

describe('expiryNotice', () => {
  const info = certInfo(readFileSync(pki.client.cert))
  it('says nothing more than 30 days ahead', () => {
    expect(expiryNotice(info, info.validTo - 31 * DAY, false)).toBeNull()
  })
  it('warns within 30 days, with the date and what to do', () => {
    expect(expiryNotice(info, info.validTo - 10 * DAY + 1, false)).toEqual({
      level: 'warn',
      message: `the client certificate (mqtt.tls.cert, CN gw-test) expires on ${new Date(info.validTo).toISOString()}, in 9 days: renew it, then copy the new certificate and key over the files; the next connection attempt reads them, no restart needed`,
    })
  })
  it('is an error once expired, and says when the time is only the gateway clock', () => {
    const notice = expiryNotice(info, info.validTo, true)
    expect(notice?.level).toBe('error')
    expect(notice?.message).toMatch(/expired on .* \(by the gateway's own clock, not yet synchronised by the platform\): the broker will refuse the gateway/)
  })
})

describe('CertExpiryWatch: at start, then once a day, on the injected clock', () => {
  const info = certInfo(readFileSync(pki.client.cert))
  let timers: ManualTimers
  let now: number
  let estimated: boolean
  let lines: string[]
  const watch = () =>
    new CertExpiryWatch({
      info: () => info,
      time: () => ({ at: now, estimated }),
      timers,
      log: { warn: (_, m) => lines.push(`warn ${m}`), error: (_, m) => lines.push(`error ${m}`) },
    })
  /** Fires the pending check after `ms`, the clock moved on by as much. */
  const pass = (ms: number) => {
    now += ms
    timers.fire(ms)
  }
  beforeEach(() => {
    timers = new ManualTimers()
    lines = []
    estimated = false
  })

  it('warns at start within 30 days, then once a day, then an error once it expired', () => {
    now = info.validTo - 2 * DAY - 1000
    watch().start()
    expect(lines).toEqual([expect.stringMatching(/^warn the client certificate .* expires on .*, in 2 days:/)])
    expect(timers.delays()).toEqual([EXPIRY_CHECK_MS])
    pass(EXPIRY_CHECK_MS)
    expect(lines.at(-1)).toMatch(/^warn .* in 1 day:/)
    pass(EXPIRY_CHECK_MS)
    expect(lines.at(-1)).toMatch(/^warn .* in less than a day:/)
    pass(EXPIRY_CHECK_MS)
    expect(lines.at(-1)).toMatch(/^error the client certificate \(mqtt.tls.cert, CN gw-test\) expired on /)
    expect(lines).toHaveLength(4)
  })

  it('says nothing while the certificate has more than 30 days, and warns on the day it has 30', () => {
    now = info.validTo - 31 * DAY + 1000
    watch().start()
    expect(lines).toEqual([])
    pass(EXPIRY_CHECK_MS)
    expect(lines).toEqual([expect.stringMatching(/^warn .* in 29 days:/)])
  })

  it('judges nothing while an unsynchronised clock reads before the certificate was issued (a board without RTC after a power cut), and looks again each minute', () => {
    now = 0 // 1970
    estimated = true
    const w = watch()
    w.start()
    expect(lines).toEqual([])
    expect(timers.delays()).toEqual([EXPIRY_RETRY_MS])
    // The platform's time arrives: the clock is synchronised, near the expiry.
    now = info.validTo - 5 * DAY
    estimated = false
    timers.fire(EXPIRY_RETRY_MS)
    expect(lines).toEqual([expect.stringMatching(/^warn .* in 5 days: renew it/)])
    expect(timers.delays()).toEqual([EXPIRY_CHECK_MS])
    w.stop()
    expect(timers.delays()).toEqual([])
  })

  it("judges by the gateway's own clock when it reads a plausible time (NTP, fake-hwclock), and says so", () => {
    now = info.validTo + DAY
    estimated = true
    watch().start()
    expect(lines).toEqual([expect.stringMatching(/^error .*expired on .* \(by the gateway's own clock, not yet synchronised by the platform\)/)])
  })

  it('does nothing without a client certificate', () => {
    now = 0
    new CertExpiryWatch({ info: () => null, time: () => ({ at: now, estimated: false }), timers, log: { warn: () => {}, error: () => {} } }).start()
    expect(timers.delays()).toEqual([])
  })
})
