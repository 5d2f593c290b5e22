import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { openPtyEnd, openPtyPair, type PtyEnd, type PtyPair } from '../tests/helpers/pty.js'
import { waitUntil } from '../tests/helpers/system.js'
import { SerialLine, backoffMs, type OpenPort, type PortLike, type SerialEvent, type SerialLineOptions, type Timers } from './serial-line.js'

// A stable by-id path, as the gateway is configured on a board.
const PATH = '/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K1234-if00-port0'

/** Timers the test fires by hand; records every delay asked for. */
class FakeTimers implements Timers {
  readonly delays: number[] = []
  readonly #pending = new Map<number, () => void>()
  #next = 1

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++
    this.#pending.set(id, callback)
    this.delays.push(ms)
    return id
  }

  clearTimeout(handle: unknown): void {
    this.#pending.delete(handle as number)
  }

  get pending(): number {
    return this.#pending.size
  }

  /** Runs the one pending timer (the line never has more than one). */
  fire(): void {
    expect(this.#pending.size).toBe(1)
    const [id, callback] = [...this.#pending][0]!
    this.#pending.delete(id)
    callback()
  }
}

/** A port the test drives: what the line wrote, and the device's side of the events. */
class FakePort implements PortLike {
  readonly written: number[] = []
  closeCalls = 0
  throwOnWrite: Error | null = null
  readonly #listeners = { data: [] as ((d: Uint8Array) => void)[], close: [] as ((r: Error | null) => void)[], error: [] as ((e: Error) => void)[] }

  write(data: Uint8Array): void {
    if (this.throwOnWrite) throw this.throwOnWrite
    this.written.push(...data)
  }

  async close(): Promise<void> {
    this.closeCalls += 1
  }

  on(event: 'data', listener: (data: Uint8Array) => void): void
  on(event: 'close', listener: (reason: Error | null) => void): void
  on(event: 'error', listener: (error: Error) => void): void
  on(event: 'data' | 'close' | 'error', listener: (arg: never) => void): void {
    ;(this.#listeners[event] as unknown[]).push(listener)
  }

  // The device's side.
  receive(bytes: number[]): void {
    for (const l of this.#listeners.data) l(new Uint8Array(bytes))
  }
  vanish(reason: Error | null): void {
    for (const l of this.#listeners.close) l(reason)
  }
  fail(error: Error): void {
    for (const l of this.#listeners.error) l(error)
  }
}

interface Deferred {
  resolve(port: PortLike): void
  reject(err: unknown): void
}

/** Each open() takes the next scripted outcome: a port, an error to reject with, or 'pending'. */
class FakeOpener {
  readonly calls: { path: string; baud: number }[] = []
  readonly outcomes: (FakePort | Error | 'pending')[] = []
  readonly deferred: Deferred[] = []

  readonly open: OpenPort = (path, baud) => {
    this.calls.push({ path, baud })
    const outcome = this.outcomes.shift()
    if (outcome === undefined) throw new Error('test bug: no scripted outcome for this open')
    if (outcome === 'pending') return new Promise<PortLike>((resolve, reject) => this.deferred.push({ resolve, reject }))
    return outcome instanceof FakePort ? Promise.resolve(outcome) : Promise.reject(outcome)
  }
}

/** Lets promise callbacks (the open's resolution) run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

function osError(message: string, code?: string): Error {
  return code === undefined ? new Error(message) : Object.assign(new Error(message), { code })
}

function harness(opts: Partial<SerialLineOptions> = {}) {
  const timers = new FakeTimers()
  const opener = new FakeOpener()
  const events: SerialEvent[] = []
  const data: number[] = []
  const line = new SerialLine({
    path: PATH,
    openPort: opener.open,
    onData: (bytes) => data.push(...bytes),
    onEvent: (e) => events.push(e),
    timers,
    random: () => 0,
    ...opts,
  })
  return { line, timers, opener, events, data, kinds: () => events.map((e) => e.kind) }
}

function errors(events: SerialEvent[]) {
  return events.filter((e): e is Extract<SerialEvent, { kind: 'error' }> => e.kind === 'error')
}

describe('SerialLine with a fake port', () => {
  it('opens the path at 9600 baud by default, hands bytes in and out', async () => {
    const h = harness()
    const port = new FakePort()
    h.opener.outcomes.push(port)
    expect(h.line.state).toBe('stopped')
    h.line.start()
    expect(h.line.state).toBe('opening')
    await settle()
    expect(h.line.state).toBe('open')
    expect(h.opener.calls).toEqual([{ path: PATH, baud: 9600 }])
    expect(h.events).toEqual([{ kind: 'open', path: PATH }])

    port.receive([0x00, 0x11, 0x13, 0xff])
    expect(h.data).toEqual([0x00, 0x11, 0x13, 0xff])
    expect(h.line.write(new Uint8Array([1, 2, 3]))).toBe(true)
    expect(port.written).toEqual([1, 2, 3])
    await h.line.stop()
    expect(port.closeCalls).toBe(1)
  })

  it('uses the baud rate it is given', async () => {
    const h = harness({ baud: 115200 })
    h.opener.outcomes.push(new FakePort())
    h.line.start()
    await settle()
    expect(h.opener.calls).toEqual([{ path: PATH, baud: 115200 }])
    await h.line.stop()
  })

  // serialport rejects with strerror() text and no `code`; other OpenPorts may give a code.
  const OPEN_ERRORS = [
    { name: 'serialport ENOENT', error: osError(`Error: No such file or directory, cannot open ${PATH}`), code: 'SERIAL_NOT_FOUND', says: 'ls -l /dev/serial/by-id/' },
    { name: 'Node ENOENT code', error: osError('open failed', 'ENOENT'), code: 'SERIAL_NOT_FOUND', says: 'not found' },
    { name: 'device gone (ENODEV)', error: osError('Error: No such device, cannot open x'), code: 'SERIAL_NOT_FOUND', says: 'cable is plugged in' },
    { name: 'device gone (ENXIO)', error: osError('Error: No such device or address, cannot open x'), code: 'SERIAL_NOT_FOUND', says: 'not found' },
    { name: 'serialport EACCES', error: osError(`Error: Permission denied, cannot open ${PATH}`), code: 'SERIAL_PERMISSION', says: 'add the user to the dialout group' },
    { name: 'Node EACCES code', error: osError('open failed', 'EACCES'), code: 'SERIAL_PERMISSION', says: 'add the user to the dialout group' },
    { name: 'serialport EBUSY', error: osError(`Error: Device or resource busy, cannot open ${PATH}`), code: 'SERIAL_BUSY', says: 'in use by another program' },
    { name: 'serialport flock held', error: osError('Error Resource temporarily unavailable Cannot lock port'), code: 'SERIAL_BUSY', says: `fuser -v ${PATH}` },
    { name: 'Node EBUSY code', error: osError('open failed', 'EBUSY'), code: 'SERIAL_BUSY', says: 'in use by another program' },
    { name: 'not a tty (ENOTTY)', error: osError('Error: Inappropriate ioctl for device setting custom baud rate of 9600'), code: 'SERIAL_IO', says: 'does not look like a serial device' },
    { name: 'driver I/O error', error: osError(`Error: Input/output error, cannot open ${PATH}`), code: 'SERIAL_IO', says: 'dmesg' },
    {
      name: 'serialport native module missing',
      error: osError('No native build was found for platform=linux arch=arm64 runtime=node abi=115'),
      code: 'SERIAL_IO',
      says: 'npm rebuild @serialport/bindings-cpp',
    },
    { name: 'a thrown string', error: 'something odd', code: 'SERIAL_IO', says: 'something odd' },
  ] as const

  it.each(OPEN_ERRORS)('open failure, $name: reports $code with what to do, and retries', async ({ error, code, says }) => {
    const h = harness()
    h.opener.outcomes.push(error as Error)
    h.line.start()
    await settle()
    expect(h.line.state).toBe('waiting')
    const [event, ...rest] = errors(h.events)
    expect(rest).toEqual([])
    expect(event).toMatchObject({ kind: 'error', path: PATH, code, attempt: 1, retryInMs: 500, cause: error })
    expect(event?.message).toContain(says)
    expect(event?.message).toContain(PATH)
    expect(h.timers.pending).toBe(1)
  })

  it('says exactly what to do about permissions', async () => {
    const h = harness()
    h.opener.outcomes.push(osError(`Error: Permission denied, cannot open ${PATH}`))
    h.line.start()
    await settle()
    expect(errors(h.events)[0]?.message).toBe(
      `no permission to open ${PATH} (Permission denied, cannot open ${PATH}): add the user to the dialout group ("sudo usermod -aG dialout $USER", then log in again or restart the service).`,
    )
  })

  it('an openPort that throws instead of rejecting is an open failure, not a crash', async () => {
    const h = harness({
      openPort: () => {
        throw new Error('boom')
      },
    })
    h.line.start()
    await settle()
    expect(errors(h.events)).toMatchObject([{ code: 'SERIAL_IO', attempt: 1 }])
    expect(h.line.state).toBe('waiting')
    await h.line.stop()
  })

  it('backs off exponentially, doubling from 500 ms to a 30 s cap, and reopens the same path', async () => {
    const h = harness()
    const failures = 10
    for (let i = 0; i < failures; i++) h.opener.outcomes.push(osError('Error: No such file or directory, cannot open x'))
    h.line.start()
    for (let i = 0; i < failures; i++) {
      await settle()
      expect(h.line.state).toBe('waiting')
      if (i < failures - 1) h.timers.fire()
    }
    expect(h.timers.delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000])
    expect(errors(h.events).map((e) => [e.attempt, e.retryInMs])).toEqual(h.timers.delays.map((ms, i) => [i + 1, ms]))
    expect(new Set(h.opener.calls.map((c) => c.path))).toEqual(new Set([PATH]))
    await h.line.stop()
  })

  it('jitters each wait into [base/2, base] with the injected random', async () => {
    const h = harness({ random: () => 0.5 })
    for (let i = 0; i < 8; i++) h.opener.outcomes.push(osError('x', 'ENOENT'))
    h.line.start()
    for (let i = 0; i < 8; i++) {
      await settle()
      if (i < 7) h.timers.fire()
    }
    expect(h.timers.delays).toEqual([375, 750, 1500, 3000, 6000, 12000, 22500, 22500])
    await h.line.stop()
  })

  it('backoffMs stays within [base/2, base] for any random in [0, 1)', () => {
    for (let failures = 0; failures < 80; failures++) {
      const base = Math.min(30_000, 500 * 2 ** failures)
      for (const r of [0, 1e-9, 0.25, 0.5, 0.999999]) {
        const ms = backoffMs(failures, 500, 30_000, r)
        expect(ms).toBeGreaterThanOrEqual(base / 2)
        expect(ms).toBeLessThanOrEqual(base)
      }
    }
  })

  it('honours a configured backoff', async () => {
    const h = harness({ backoff: { initialMs: 100, maxMs: 350 } })
    for (let i = 0; i < 4; i++) h.opener.outcomes.push(osError('x', 'ENOENT'))
    h.line.start()
    for (let i = 0; i < 4; i++) {
      await settle()
      if (i < 3) h.timers.fire()
    }
    expect(h.timers.delays).toEqual([100, 200, 350, 350])
    await h.line.stop()
  })

  it('a successful open resets the backoff', async () => {
    const h = harness()
    const port = new FakePort()
    h.opener.outcomes.push(osError('x', 'ENOENT'), osError('x', 'ENOENT'), port, osError('x', 'ENOENT'))
    h.line.start()
    await settle()
    h.timers.fire()
    await settle()
    h.timers.fire()
    await settle()
    expect(h.line.state).toBe('open')
    port.vanish(new Error('bad file descriptor'))
    h.timers.fire()
    await settle()
    // 2000: the presence check while the port was open.
    expect(h.timers.delays).toEqual([500, 1000, 2000, 500, 1000])
    expect(h.kinds()).toEqual(['error', 'error', 'open', 'closed', 'error'])
    expect(errors(h.events).map((e) => e.attempt)).toEqual([1, 2, 2])
    await h.line.stop()
  })

  it('an open port that vanishes (unplug) is reported, released, and reopened by its path', async () => {
    const h = harness()
    const first = new FakePort()
    const second = new FakePort()
    h.opener.outcomes.push(first, second)
    h.line.start()
    await settle()

    first.vanish(new Error('bad file descriptor'))
    expect(h.events.at(-1)).toEqual({ kind: 'closed', path: PATH, reason: 'port closed: bad file descriptor', retryInMs: 500 })
    expect(h.line.state).toBe('waiting')
    expect(first.closeCalls).toBe(1)
    // Late bytes and events from the port we let go of are ignored.
    first.receive([9, 9])
    first.fail(new Error('late'))
    first.vanish(null)
    expect(h.data).toEqual([])
    expect(h.kinds()).toEqual(['open', 'closed'])
    expect(h.line.write(new Uint8Array([1]))).toBe(false)

    h.timers.fire()
    expect(h.line.state).toBe('opening')
    await settle()
    expect(h.line.state).toBe('open')
    expect(h.opener.calls.map((c) => c.path)).toEqual([PATH, PATH])
    second.receive([7])
    expect(h.data).toEqual([7])
    expect(h.line.write(new Uint8Array([8]))).toBe(true)
    expect(second.written).toEqual([8])
    expect(first.written).toEqual([])
    await h.line.stop()
  })

  it('notices a device node that vanished even when the port itself says nothing', async () => {
    let present = true
    const h = harness({ exists: () => present, presenceCheckMs: 2_000 })
    const first = new FakePort()
    h.opener.outcomes.push(first, new FakePort())
    h.line.start()
    await settle()
    h.timers.fire() // presence check: still there
    expect(h.kinds()).toEqual(['open'])
    present = false
    h.timers.fire()
    expect(h.events.at(-1)).toMatchObject({ kind: 'closed', reason: 'the device vanished (unplugged?)' })
    expect(first.closeCalls).toBe(1)
    present = true
    h.timers.fire() // the reopen
    await settle()
    expect(h.line.state).toBe('open')
    await h.line.stop()
  })

  it('a port closed without a reason, or an error on an open port, is one loss', async () => {
    const h = harness()
    const first = new FakePort()
    const second = new FakePort()
    h.opener.outcomes.push(first, second)
    h.line.start()
    await settle()
    first.vanish(null)
    expect(h.events.at(-1)).toMatchObject({ kind: 'closed', reason: 'port closed' })
    h.timers.fire()
    await settle()
    // serialport reports a failed write as 'error' and then 'close': one 'closed' event.
    second.fail(new Error('Error: Input/output error'))
    second.vanish(new Error('Input/output error'))
    expect(h.kinds()).toEqual(['open', 'closed', 'open', 'closed'])
    expect(h.events.at(-1)).toMatchObject({ kind: 'closed', reason: 'port error: Input/output error' })
    expect(h.timers.pending).toBe(1)
    await h.line.stop()
  })

  it('write returns false, and writes nothing, whenever the port is not open', async () => {
    const h = harness()
    const port = new FakePort()
    h.opener.outcomes.push(osError('x', 'ENOENT'), 'pending')
    const bytes = new Uint8Array([1, 2])
    expect(h.line.write(bytes)).toBe(false) // not started
    h.line.start()
    expect(h.line.write(bytes)).toBe(false) // opening
    await settle()
    expect(h.line.write(bytes)).toBe(false) // waiting
    h.timers.fire()
    expect(h.line.write(bytes)).toBe(false) // opening again
    h.opener.deferred[0]!.resolve(port)
    await settle()
    expect(h.line.write(bytes)).toBe(true)
    await h.line.stop()
    expect(h.line.write(bytes)).toBe(false) // stopped
    expect(port.written).toEqual([1, 2])
  })

  it('a write the port throws on is a loss, reported and retried, never thrown', async () => {
    const h = harness()
    const port = new FakePort()
    port.throwOnWrite = new Error('EIO: i/o error, write')
    h.opener.outcomes.push(port)
    h.line.start()
    await settle()
    expect(h.line.write(new Uint8Array([1]))).toBe(false)
    expect(h.events.at(-1)).toMatchObject({ kind: 'closed', reason: 'write failed: EIO: i/o error, write', retryInMs: 500 })
    expect(h.line.state).toBe('waiting')
    await h.line.stop()
  })

  it('stop() cancels a pending reopen', async () => {
    const h = harness()
    h.opener.outcomes.push(osError('x', 'ENOENT'))
    h.line.start()
    await settle()
    expect(h.timers.pending).toBe(1)
    await h.line.stop()
    expect(h.timers.pending).toBe(0)
    expect(h.line.state).toBe('stopped')
    expect(h.opener.calls).toHaveLength(1)
  })

  it('stop() during an open in flight waits for it and gives the port straight back', async () => {
    const h = harness()
    const port = new FakePort()
    h.opener.outcomes.push('pending')
    h.line.start()
    let stopped = false
    const stopping = h.line.stop().then(() => {
      stopped = true
    })
    await settle()
    expect(stopped).toBe(false)
    h.opener.deferred[0]!.resolve(port)
    await stopping
    expect(port.closeCalls).toBe(1)
    expect(h.events).toEqual([])
    expect(h.line.state).toBe('stopped')
  })

  it('stop() during a failing open reports nothing and schedules nothing', async () => {
    const h = harness()
    h.opener.outcomes.push('pending')
    h.line.start()
    const stopping = h.line.stop()
    h.opener.deferred[0]!.reject(osError('x', 'ENOENT'))
    await stopping
    expect(h.events).toEqual([])
    expect(h.timers.pending).toBe(0)
  })

  it('stop() from inside an event handler leaves no reopen behind', async () => {
    const h = harness()
    const port = new FakePort()
    h.opener.outcomes.push(port)
    let stopping: Promise<void> | null = null
    const line = new SerialLine({
      path: PATH,
      openPort: h.opener.open,
      timers: h.timers,
      onData: () => {},
      onEvent: (e) => {
        if (e.kind === 'closed') stopping = line.stop()
      },
    })
    line.start()
    await settle()
    port.vanish(new Error('gone'))
    await stopping
    expect(line.state).toBe('stopped')
    expect(h.timers.pending).toBe(0)
  })

  it('stop() on an open port closes it and does not report the close as a loss', async () => {
    const h = harness()
    const port = new FakePort()
    h.opener.outcomes.push(port)
    h.line.start()
    await settle()
    await h.line.stop()
    port.vanish(null) // serialport emits 'close' after close()
    expect(h.kinds()).toEqual(['open'])
    expect(port.closeCalls).toBe(1)
    await h.line.stop() // twice is fine
  })

  it('a throwing onData is reported as SERIAL_HANDLER and the line stays open', async () => {
    const h = harness({
      onData: () => {
        throw new Error('handler bug')
      },
    })
    const port = new FakePort()
    h.opener.outcomes.push(port)
    h.line.start()
    await settle()
    expect(() => port.receive([1])).not.toThrow()
    expect(errors(h.events)).toMatchObject([{ code: 'SERIAL_HANDLER', attempt: null, retryInMs: null }])
    expect(errors(h.events)[0]?.message).toContain('handler bug')
    expect(h.line.state).toBe('open')
    await h.line.stop()
  })

  it('a throwing onEvent becomes a process warning, not an exception in the port callback', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    try {
      const h = harness({
        onEvent: () => {
          throw new Error('logger bug')
        },
      })
      const port = new FakePort()
      h.opener.outcomes.push(port)
      h.line.start()
      await settle()
      expect(() => port.vanish(new Error('gone'))).not.toThrow()
      expect(h.line.state).toBe('waiting')
      expect(warn).toHaveBeenCalledTimes(2) // 'open' and 'closed'
      expect(String(warn.mock.calls[1]?.[0])).toContain('logger bug')
      await h.line.stop()
    } finally {
      warn.mockRestore()
    }
  })

  it('misuse is a bug and throws at once', async () => {
    const h = harness()
    h.opener.outcomes.push(new FakePort())
    h.line.start()
    expect(() => h.line.start()).toThrow('start() may be called once')
    await h.line.stop()
    expect(() => h.line.start()).toThrow('start() may be called once')
    const base = { path: PATH, onData: () => {}, onEvent: () => {} }
    expect(() => new SerialLine({ ...base, path: '' })).toThrow(TypeError)
    expect(() => new SerialLine({ ...base, baud: 0 })).toThrow(RangeError)
    expect(() => new SerialLine({ ...base, baud: 9600.5 })).toThrow(RangeError)
    expect(() => new SerialLine({ ...base, backoff: { initialMs: 0 } })).toThrow(RangeError)
    expect(() => new SerialLine({ ...base, backoff: { initialMs: 1000, maxMs: 500 } })).toThrow(RangeError)
  })

  describe('with vi.useFakeTimers and the default timers', () => {
    afterEach(() => {
      vi.useRealTimers()
    })

    it('waits the backoff on the global clock, and stop() clears it', async () => {
      vi.useFakeTimers()
      const opener = new FakeOpener()
      opener.outcomes.push(osError('x', 'ENOENT'), osError('x', 'ENOENT'))
      const events: SerialEvent[] = []
      const line = new SerialLine({ path: PATH, openPort: opener.open, random: () => 0, onData: () => {}, onEvent: (e) => events.push(e) })
      line.start()
      await vi.advanceTimersByTimeAsync(0)
      expect(vi.getTimerCount()).toBe(1)
      await vi.advanceTimersByTimeAsync(499)
      expect(opener.calls).toHaveLength(1)
      await vi.advanceTimersByTimeAsync(1)
      expect(opener.calls).toHaveLength(2)
      expect(errors(events).map((e) => e.retryInMs)).toEqual([500, 1000])
      await line.stop()
      expect(vi.getTimerCount()).toBe(0)
    })
  })
})

describe('SerialLine with the serialport package (real devices)', () => {
  let scratch: string | null = null
  let pair: PtyPair | null = null
  const lines: SerialLine[] = []
  const ends: PtyEnd[] = []

  afterEach(async () => {
    await Promise.all(lines.splice(0).map((l) => l.stop()))
    await Promise.all(ends.splice(0).map((e) => e.close()))
    await pair?.close()
    pair = null
    if (scratch !== null) rmSync(scratch, { recursive: true, force: true })
    scratch = null
  })

  /** A line on a real path, recording what it hears. */
  function realLine(path: string, backoff = { initialMs: 50, maxMs: 200 }) {
    const events: SerialEvent[] = []
    const received: number[] = []
    const line = new SerialLine({ path, baud: 9600, backoff, onData: (b) => received.push(...b), onEvent: (e) => events.push(e) })
    lines.push(line)
    return { line, events, received, count: (kind: SerialEvent['kind']) => events.filter((e) => e.kind === kind).length }
  }

  // Long waits so that no retry happens while the test looks at the first error.
  const NO_RETRY = { initialMs: 60_000, maxMs: 60_000 }

  it('classifies what serialport really says: missing path, not a tty, port held by another', async () => {
    scratch = mkdtempSync(join(tmpdir(), 'steppelink-serial-'))
    const missing = realLine(join(scratch, 'no-such-port'), NO_RETRY)
    const file = join(scratch, 'a-file')
    writeFileSync(file, '')
    const notTty = realLine(file, NO_RETRY)
    missing.line.start()
    notTty.line.start()
    await waitUntil(() => missing.count('error') + notTty.count('error') === 2, { what: 'two open errors' })
    expect(errors(missing.events)[0]?.code).toBe('SERIAL_NOT_FOUND')
    expect(errors(notTty.events)[0]?.code).toBe('SERIAL_IO')

    pair = await openPtyPair()
    const holder = realLine(pair.a, NO_RETRY)
    holder.line.start()
    await waitUntil(() => holder.count('open') === 1, { what: 'the first line to open' })
    const second = realLine(pair.a, NO_RETRY)
    second.line.start()
    await waitUntil(() => second.count('error') === 1, { what: 'the second line to fail' })
    // serialport takes an exclusive flock: a second gateway on the same port is refused.
    expect(errors(second.events)[0]?.code).toBe('SERIAL_BUSY')
  })

  it('carries bytes both ways over a socat pty pair, survives an unplug, and reopens by itself after a replug', async () => {
    pair = await openPtyPair()
    const r = realLine(pair.a)
    r.line.start()
    let terminal = await openPtyEnd(pair.b)
    ends.push(terminal)
    await waitUntil(() => r.line.state === 'open', { what: 'the line to open' })
    expect(r.events).toEqual([{ kind: 'open', path: pair.a }])

    // Every byte value, so raw mode (no CR/LF mapping, no XON/XOFF) is checked too.
    const frame = [...Array(256).keys()]
    await terminal.write(new Uint8Array(frame))
    await waitUntil(() => r.received.length >= frame.length, { what: 'terminal -> gateway bytes' })
    expect(r.received).toEqual(frame)
    expect(r.line.write(new Uint8Array(frame.slice().reverse()))).toBe(true)
    await waitUntil(() => terminal.received().length >= frame.length, { what: 'gateway -> terminal bytes' })
    expect([...terminal.received()]).toEqual(frame.slice().reverse())

    // Unplug: the device and its link vanish.
    await pair.kill()
    await waitUntil(() => r.count('closed') === 1, { what: "the 'closed' event" })
    expect(r.line.write(new Uint8Array([1]))).toBe(false)
    // While unplugged the link path is gone: the retries say so.
    await waitUntil(() => errors(r.events).some((e) => e.code === 'SERIAL_NOT_FOUND'), { what: 'SERIAL_NOT_FOUND while unplugged' })

    // Replug: same link paths, new ptys behind them.
    await pair.replug()
    await waitUntil(() => r.count('open') === 2, { what: 'the line to reopen by itself' })
    await terminal.close()
    terminal = await openPtyEnd(pair.b)
    ends.push(terminal)
    r.received.length = 0
    await terminal.write(new Uint8Array([0x00, 0x42, 0x00]))
    await waitUntil(() => r.received.length >= 3, { what: 'bytes after the replug' })
    expect(r.received).toEqual([0x00, 0x42, 0x00])
    expect(r.line.write(new Uint8Array([0x00, 0x24, 0x00]))).toBe(true)
    await waitUntil(() => terminal.received().length >= 3, { what: 'bytes to the terminal after the replug' })
    expect([...terminal.received()]).toEqual([0x00, 0x24, 0x00])

    await r.line.stop()
    expect(r.line.state).toBe('stopped')
  }, 10_000)
})
