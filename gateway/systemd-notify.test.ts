/**
 * The service watchdog (issue 14): READY, pings while healthy, none when the store fails or
 * the loop stalls. The decision on a fake clock and timers with a recording sender; then
 * the real `systemd-notify` to a fake notify socket, alone and from the real gateway.
 */

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startAedes } from '../tests/helpers/broker.js'
import { startGateway } from '../tests/helpers/gateway-process.js'
import { ManualTimers } from '../tests/helpers/manual-timers.js'
import { openNotifySocket, type NotifySocket } from '../tests/helpers/notify-socket.js'
import { openPtyPair } from '../tests/helpers/pty.js'
import type { HealthInputs } from './service-health.js'
import { SqliteStore } from './sqlite-store.js'
import { ServiceNotifier, systemdNotifySender, watchdogIntervalMs, type NotifySend } from './systemd-notify.js'

const WATCHDOG_MS = 30_000
const HALF = WATCHDOG_MS / 2

/** Lets the sender's promises settle (no time passes). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

function rig(opts: { send?: NotifySend | null; watchdogMs?: number | null } = {}) {
  const sent: string[][] = []
  const timers = new ManualTimers()
  let now = 1_000_000
  const state: HealthInputs & { probes: number; probeFails: boolean } = {
    storeError: null,
    serial: { path: '/dev/ttyUSB0', state: 'open', since: now, maxBackoffMs: 30_000 },
    loopDelayMs: 3,
    uplinkOnline: true,
    probes: 0,
    probeFails: false,
  }
  const notifier = new ServiceNotifier({
    send:
      opts.send === undefined
        ? async (lines) => {
            sent.push(lines)
          }
        : opts.send,
    watchdogMs: opts.watchdogMs === undefined ? WATCHDOG_MS : opts.watchdogMs,
    health: () => {
      const { storeError, serial, loopDelayMs, uplinkOnline } = state
      state.loopDelayMs = 0
      return { storeError, serial, loopDelayMs, uplinkOnline }
    },
    probeStore: () => {
      state.probes++
      state.storeError = state.probeFails ? { at: now, message: 'disk I/O error' } : null
    },
    timers,
    now: () => now,
  })
  /** Half an interval passes and the notifier's timer fires. */
  const step = async (ms = HALF) => {
    now += ms
    timers.fire(ms)
    await settle()
  }
  const pings = () => sent.filter((m) => m.includes('WATCHDOG=1')).length
  return { notifier, sent, timers, state, step, pings, advance: (ms: number) => (now += ms), now: () => now }
}

describe('ServiceNotifier: the decision, on a fake clock', () => {
  it('sends nothing and sets no timer when not under systemd (no NOTIFY_SOCKET)', async () => {
    expect(systemdNotifySender({})).toBeNull()
    expect(systemdNotifySender({ NOTIFY_SOCKET: '' })).toBeNull()
    const r = rig({ send: null })
    r.notifier.ready()
    await r.notifier.stopping('SIGTERM')
    expect(r.notifier.active).toBe(false)
    expect(r.timers.pending.size).toBe(0)
  })

  it('reads WATCHDOG_USEC and WATCHDOG_PID as sd_watchdog_enabled does', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42)).toBe(30_000)
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(30_000)
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42)).toBeNull()
    expect(watchdogIntervalMs({}, 42)).toBeNull()
    expect(watchdogIntervalMs({ WATCHDOG_USEC: 'x' }, 42)).toBeNull()
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42)).toBeNull()
  })

  it('says READY=1 with a status in words, then pings at half the interval while healthy', async () => {
    const r = rig()
    r.notifier.ready()
    await settle()
    expect(r.sent[0]).toEqual(['READY=1', 'STATUS=running: store writable, serial port /dev/ttyUSB0 open, uplink online', 'WATCHDOG=1'])
    expect(r.timers.delays()).toEqual([HALF])
    for (let i = 0; i < 4; i++) await r.step()
    expect(r.pings()).toBe(5)
    // The status goes again only when it changes.
    expect(r.sent.slice(1)).toEqual([['WATCHDOG=1'], ['WATCHDOG=1'], ['WATCHDOG=1'], ['WATCHDOG=1']])
  })

  it('withholds the ping while the store fails its writes, and pings again once a probe succeeds', async () => {
    const r = rig()
    r.notifier.ready()
    await settle()
    r.state.storeError = { at: r.now(), message: 'disk I/O error' }
    r.state.probeFails = true
    await r.step()
    await r.step()
    expect(r.pings()).toBe(1)
    expect(r.state.probes).toBe(2)
    expect(r.sent.at(-1)?.[0]).toMatch(/^STATUS=UNHEALTHY, watchdog not fed: the store's last write failed 0 s ago \(disk I\/O error\)/)
    // The fault passes (a USB disk back): the next probe writes, the pings resume.
    r.state.probeFails = false
    await r.step()
    expect(r.pings()).toBe(2)
    expect(r.sent.at(-1)).toEqual(['STATUS=running: store writable, serial port /dev/ttyUSB0 open, uplink online', 'WATCHDOG=1'])
  })

  it('probes the store once an hour when nothing else writes', async () => {
    const r = rig()
    r.notifier.ready()
    for (let i = 0; i < 239; i++) await r.step()
    expect(r.state.probes).toBe(0)
    await r.step()
    expect(r.state.probes).toBe(1)
    // A probe that fails withholds the ping at once.
    r.state.probeFails = true
    for (let i = 0; i < 240; i++) await r.step()
    expect(r.state.probes).toBe(2)
    expect(r.sent.at(-1)?.some((l) => l === 'WATCHDOG=1')).toBe(false)
  })

  it('needs no probe in an hour in which the gateway wrote by itself', async () => {
    let writes = 0
    const sent: string[][] = []
    const timers = new ManualTimers()
    let now = 0
    let probes = 0
    const notifier = new ServiceNotifier({
      send: async (lines) => {
        sent.push(lines)
      },
      watchdogMs: WATCHDOG_MS,
      health: () => ({ storeError: null, serial: { path: '/dev/ttyUSB0', state: 'open', since: 0, maxBackoffMs: 30_000 }, loopDelayMs: 0, uplinkOnline: true }),
      probeStore: () => {
        probes++
        writes++
      },
      storeWrites: () => writes,
      timers,
      now: () => now,
    })
    notifier.ready()
    const hour = async () => {
      for (let i = 0; i < 240; i++) {
        now += HALF
        timers.fire(HALF)
      }
      await settle()
    }
    await hour()
    expect(probes).toBe(1)
    writes += 3 // the gateway stored events in this hour
    await hour()
    expect(probes).toBe(1)
    await hour()
    expect(probes).toBe(2)
  })

  it('withholds the ping after the event loop stalled longer than half the interval', async () => {
    const r = rig()
    r.notifier.ready()
    await settle()
    r.state.loopDelayMs = HALF - 1
    await r.step()
    expect(r.pings()).toBe(2)
    r.state.loopDelayMs = HALF + 500
    await r.step()
    expect(r.pings()).toBe(2)
    expect(r.sent.at(-1)).toEqual(['STATUS=UNHEALTHY, watchdog not fed: the gateway did not run for 16 s (its event loop stalled)'])
    // The delay is measured since the last look: a loop running again is fed again.
    await r.step()
    expect(r.pings()).toBe(3)
  })

  it('keeps pinging while an unplugged terminal is being reopened, but not for a reopen that hangs', async () => {
    const r = rig()
    r.notifier.ready()
    await settle()
    // Unplugged: waiting between reopens, within the line's longest backoff (30 s) + 10 s.
    r.state.serial = { ...r.state.serial, state: 'waiting', since: r.now() }
    await r.step()
    await r.step()
    expect(r.pings()).toBe(3)
    expect(r.sent.find((m) => m.some((l) => l.includes('not open, retrying')))).toBeDefined()
    // An open that has not returned for over 30 s: a wedged driver.
    r.state.serial = { ...r.state.serial, state: 'opening', since: r.now() }
    await r.step()
    await r.step()
    expect(r.pings()).toBe(5)
    await r.step()
    expect(r.pings()).toBe(5)
    expect(r.sent.at(-1)?.[0]).toMatch(/opening the serial port \/dev\/ttyUSB0 has not returned for 45 s/)
    // A line waiting longer than its policy allows (a reopen timer lost).
    r.state.serial = { ...r.state.serial, state: 'waiting', since: r.now() - 45_000 }
    await r.step()
    expect(r.pings()).toBe(5)
  })

  it('says STOPPING=1 at stop, and pings no more', async () => {
    const r = rig()
    r.notifier.ready()
    await r.notifier.stopping('SIGTERM')
    expect(r.sent.at(-1)).toEqual(['STOPPING=1', 'STATUS=stopping (SIGTERM): death message, then close the port and the store'])
    expect(r.timers.pending.size).toBe(0)
    r.notifier.tick()
    await settle()
    expect(r.sent.at(-1)?.[0]).toBe('STOPPING=1')
  })

  it('skips a ping while the one before is still being sent, rather than queueing stale ones', async () => {
    let release: () => void = () => {}
    const sent: string[][] = []
    const r = rig({
      send: (lines) => {
        sent.push(lines)
        return new Promise<void>((resolve) => {
          release = resolve
        })
      },
    })
    r.notifier.ready()
    await settle()
    release()
    await settle()
    r.advance(HALF)
    r.timers.fire(HALF)
    r.advance(HALF)
    r.timers.fire(HALF)
    r.advance(HALF)
    r.timers.fire(HALF)
    await settle()
    expect(sent.filter((m) => m.includes('WATCHDOG=1'))).toHaveLength(2)
  })

  it('without WATCHDOG_USEC: ready and status, no pings', async () => {
    const r = rig({ watchdogMs: null })
    r.notifier.ready()
    await settle()
    expect(r.sent[0]).toEqual(['READY=1', 'STATUS=running: store writable, serial port /dev/ttyUSB0 open, uplink online'])
    r.state.uplinkOnline = false
    await r.step(60_000)
    expect(r.sent.at(-1)).toEqual(['STATUS=running: store writable, serial port /dev/ttyUSB0 open, uplink offline (reconnecting)'])
    expect(r.pings()).toBe(0)
  })
})

describe('the store as the watchdog sees it', () => {
  // Root writes through permission bits; an immutable WAL file fails every commit, as a
  // card that went read-only does. Elsewhere chattr is not ours to use.
  it.skipIf(process.getuid?.() !== 0)('a real store whose writes fail withholds the ping; once they succeed again, the pings resume', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steppelink-notify-store-'))
    const store = new SqliteStore({ path: join(dir, 'gateway.db') })
    const wal = join(dir, 'gateway.db-wal')
    try {
      store.bump('gateway-boot')
      expect(store.lastWriteError()).toBeNull()
      const sent: string[][] = []
      const timers = new ManualTimers()
      let now = 0
      const notifier = new ServiceNotifier({
        send: async (lines) => {
          sent.push(lines)
        },
        watchdogMs: WATCHDOG_MS,
        health: () => ({ storeError: store.lastWriteError(), serial: { path: '/dev/ttyUSB0', state: 'open', since: 0, maxBackoffMs: 30_000 }, loopDelayMs: 0, uplinkOnline: true }),
        probeStore: () => store.probe(now),
        timers,
        now: () => now,
      })
      notifier.ready()
      execFileSync('chattr', ['+i', wal])
      // A write of the gateway's own fails (the disk took the card away).
      expect(() => store.bump('gateway-boot')).toThrow()
      expect(store.lastWriteError()?.message).toMatch(/disk I\/O error|readonly|read-only/i)
      now += HALF
      timers.fire(HALF)
      await settle()
      expect(sent.at(-1)?.[0]).toMatch(/^STATUS=UNHEALTHY, watchdog not fed: the store's last write failed/)
      expect(sent.at(-1)).not.toContain('WATCHDOG=1')
      execFileSync('chattr', ['-i', wal])
      now += HALF
      timers.fire(HALF)
      await settle()
      expect(sent.at(-1)).toContain('WATCHDOG=1')
      expect(store.lastWriteError()).toBeNull()
    } finally {
      execFileSync('chattr', ['-i', wal])
      store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the real systemd-notify, to a fake notify socket', () => {
  let socket: NotifySocket | null = null
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
    await socket?.close()
    socket = null
  })

  it('carries READY, STATUS, WATCHDOG and STOPPING lines as systemd reads them', async () => {
    socket = await openNotifySocket()
    const send = systemdNotifySender({ ...process.env, NOTIFY_SOCKET: socket.path })!
    await send(['READY=1', 'STATUS=running: store writable'])
    await send(['WATCHDOG=1'])
    await send(['STOPPING=1'])
    expect(socket.messages).toEqual([['READY=1', 'STATUS=running: store writable'], ['WATCHDOG=1'], ['STOPPING=1']])
  })

  it('a failing sender is reported once, and the gateway runs on', async () => {
    const send = systemdNotifySender({ NOTIFY_SOCKET: '/nonexistent/notify' })!
    await expect(send(['READY=1'])).rejects.toThrow(/systemd-notify READY=1 failed/)
  })

  it('the gateway process says READY=1 after "gateway ready", feeds the watchdog, and says STOPPING=1 at SIGTERM', async () => {
    socket = await openNotifySocket()
    const broker = await startAedes()
    cleanups.push(() => broker.close())
    const pty = await openPtyPair()
    cleanups.push(() => pty.close())
    const data = mkdtempSync(join(tmpdir(), 'steppelink-notify-gw-'))
    cleanups.push(() => rmSync(data, { recursive: true, force: true }))
    // Node's flags as the unit runs it (--lite-mode, the heap cap): they must let it run.
    const unit = readFileSync(join(import.meta.dirname, '..', 'deploy', 'systemd', 'steppelink-gateway.service'), 'utf8')
    const execStart = unit.match(/^ExecStart=\S*node((?: --\S+)*) \S+main\.js gateway/m)
    expect(execStart, 'ExecStart= runs node with flags, then dist/cli/main.js gateway').not.toBeNull()
    const nodeFlags = execStart![1]!.trim().split(' ')
    expect(nodeFlags).toContain('--lite-mode')
    const gw = startGateway(
      ['--serial', pty.a, '--broker', broker.url, '--id', 'gw-notify', '--data', data, '--household-port', '0'],
      {
        NOTIFY_SOCKET: socket.path,
        // 2 s: a ping each second, so the test sees several without waiting long.
        WATCHDOG_USEC: '2000000',
      },
      nodeFlags,
    )
    cleanups.push(async () => {
      await gw.kill('SIGKILL')
    })
    await gw.waitForLog((l) => l.msg === 'gateway ready', 'gateway ready')
    const ready = await socket.waitFor((l) => l === 'READY=1', 'READY=1')
    expect(ready.find((l) => l.startsWith('STATUS='))).toMatch(/^STATUS=running: store writable, serial port .* open/)
    await socket.waitFor(() => socket!.messages.filter((m) => m.includes('WATCHDOG=1')).length >= 3, 'three pings')
    await gw.kill('SIGTERM')
    await socket.waitFor((l) => l === 'STOPPING=1', 'STOPPING=1')
    expect(socket.messages.findIndex((m) => m.includes('READY=1'))).toBe(0)
  })
})
