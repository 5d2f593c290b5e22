import { describe, expect, it } from 'vitest'
import { LOG_LEVELS, type LogLevel } from './config.js'
import { REDACTED, createLogger, type Logger } from './log.js'

/** A logger writing into an array, as journald would receive the lines. */
function capture(level: LogLevel = 'debug'): { log: Logger; writes: string[]; lines: () => Record<string, unknown>[] } {
  const writes: string[] = []
  const log = createLogger(level, { write: (line) => void writes.push(line) })
  return {
    log,
    writes,
    lines: () =>
      writes
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

describe('createLogger', () => {
  it('writes one JSON object per line with time, the level label, the fields and msg', () => {
    const { log, writes, lines } = capture()
    log.info({ terminal: 3, event: 17 }, 'alert stored')
    log.warn({ id: 'a-1' }, 'alarm not confirmed')
    expect(writes).toHaveLength(2)
    for (const w of writes) {
      expect(w.endsWith('\n')).toBe(true)
      expect(w.slice(0, -1)).not.toContain('\n')
    }
    const [first, second] = lines()
    expect(first).toEqual({ level: 'info', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), terminal: 3, event: 17, msg: 'alert stored' })
    expect(second).toMatchObject({ level: 'warn', id: 'a-1', msg: 'alarm not confirmed' })
  })

  it('leaves out pid and hostname, which journald records for every line', () => {
    const { log, lines } = capture()
    log.info({}, 'x')
    expect(lines()[0]).not.toHaveProperty('pid')
    expect(lines()[0]).not.toHaveProperty('hostname')
  })

  const levels: { level: LogLevel; written: string[] }[] = [
    { level: 'debug', written: ['debug', 'info', 'warn', 'error'] },
    { level: 'info', written: ['info', 'warn', 'error'] },
    { level: 'warn', written: ['warn', 'error'] },
    { level: 'error', written: ['error'] },
    { level: 'silent', written: [] },
  ]

  it.each(levels)('at $level writes $written', ({ level, written }) => {
    const { log, lines } = capture(level)
    log.debug({}, 'd')
    log.info({}, 'i')
    log.warn({}, 'w')
    log.error({}, 'e')
    expect(lines().map((l) => l.level)).toEqual(written)
  })

  it('accepts every level the configuration accepts', () => {
    for (const level of LOG_LEVELS) expect(() => createLogger(level, { write: () => {} })).not.toThrow()
  })

  it('adds a child logger’s bindings to each of its lines', () => {
    const { log, lines } = capture()
    log.child({ terminal: 3 }).info({ event: 1 }, 'alert stored')
    expect(lines()[0]).toMatchObject({ terminal: 3, event: 1, msg: 'alert stored' })
  })

  it('writes an error with its type, message and stack', () => {
    const { log, lines } = capture()
    log.error({ err: new RangeError('disk full') }, 'could not store an event')
    expect(lines()[0]?.err).toMatchObject({ type: 'RangeError', message: 'disk full', stack: expect.stringContaining('RangeError: disk full') })
  })

  const secrets: { name: string; fields: Record<string, unknown>; where: string[] }[] = [
    { name: 'a top-level password', fields: { password: 's3cret' }, where: ['password'] },
    { name: 'a password one level down', fields: { mqtt: { password: 's3cret', username: 'gw' } }, where: ['mqtt', 'password'] },
    { name: 'a password in any table', fields: { broker: { password: 's3cret' } }, where: ['broker', 'password'] },
    { name: 'the password of a logged configuration', fields: { config: { mqtt: { password: 's3cret', username: 'gw' } } }, where: ['config', 'mqtt', 'password'] },
  ]

  it.each(secrets)('redacts $name', ({ fields, where }) => {
    const { log, writes, lines } = capture()
    log.info(fields, 'connecting')
    expect(writes.join('')).not.toContain('s3cret')
    expect(where.reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], lines()[0])).toBe(REDACTED)
  })

  it('keeps the fields next to a password, and the caller’s object as it was', () => {
    const { log, lines } = capture()
    const fields = { mqtt: { password: 's3cret', username: 'gw' } }
    log.info(fields, 'connecting')
    expect(lines()[0]).toMatchObject({ mqtt: { username: 'gw' } })
    expect(fields.mqtt.password).toBe('s3cret')
  })
})
