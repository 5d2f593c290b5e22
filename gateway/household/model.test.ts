/**
 * The one rule of a relay (checkRelay), at its source: what the gateway, the page's form,
 * the local API, `steppelink relay` and the fake household all refuse. Their own tests only
 * show that they use it (service.test.ts, web/server.test.ts, cli/household-commands.test.ts).
 */

import { describe, expect, it } from 'vitest'
import { checkRelay, RELAY_INPUT_FIELDS, RELAY_LIMITS, type RelayFieldError, type RelayInput, relayRefused } from './model.js'

const OK: RelayInput = { what: 'medical', forName: '巴图家', forPhone: '+86 (139) 0479-0000', where: '3号井冬营地', text: '老人从马上摔下，腿可能骨折。', by: '其其格' }

/** The errors of a relay the rule refuses (and a failed test if it takes it). */
function errorsOf(sent: unknown): RelayFieldError[] {
  const r = checkRelay(sent)
  if (r.ok) throw new Error(`taken: ${JSON.stringify(r.input)}`)
  return r.errors
}

describe('the rule of a relay: limits in bytes of UTF-8', () => {
  it('has the serial link’s limits', () => {
    expect(RELAY_LIMITS).toEqual({ forName: 64, forPhone: 32, where: 160, text: 480, by: 64 })
  })

  // forPhone is digits: its boundary is with digits; the others with ASCII and with Chinese.
  const cases = (['forName', 'forPhone', 'where', 'text', 'by'] as const).map((field) => [field, RELAY_LIMITS[field], field === 'forPhone' ? '1' : 'x'] as const)
  it.each(cases)('%s: exactly %i bytes is taken, one more is refused as tooLong with the bytes and the limit', (field, limit, c) => {
    const at = checkRelay({ ...OK, [field]: c.repeat(limit) })
    expect(at.ok).toBe(true)
    if (at.ok) expect(at.input[field]).toBe(c.repeat(limit))
    expect(errorsOf({ ...OK, [field]: c.repeat(limit + 1) })).toEqual([
      { code: 'RELAY_INVALID', field, problem: 'tooLong', bytes: limit + 1, limit, message: `${field}: too long: ${limit + 1} bytes, at most ${limit} (a Chinese character is 3 bytes); shorten it` },
    ])
  })

  it('counts a Chinese character as 3 bytes, not 1: 21 in a name are taken (63), 22 refused (66); 160 in the message taken (480), 161 refused (483)', () => {
    expect(checkRelay({ ...OK, forName: '巴'.repeat(21) }).ok).toBe(true)
    expect(errorsOf({ ...OK, forName: '巴'.repeat(22) })).toMatchObject([{ field: 'forName', problem: 'tooLong', bytes: 66, limit: 64 }])
    expect(checkRelay({ ...OK, text: '雪'.repeat(160) }).ok).toBe(true)
    expect(errorsOf({ ...OK, text: '雪'.repeat(161) })).toMatchObject([{ field: 'text', problem: 'tooLong', bytes: 483, limit: 480 }])
    // 62 bytes of ASCII and one Chinese character: 65 bytes, though 63 characters.
    expect(errorsOf({ ...OK, by: `${'b'.repeat(62)}巴` })).toMatchObject([{ field: 'by', bytes: 65 }])
    // A character outside the BMP is 4 bytes (2 UTF-16 units): 16 of them are 64 bytes.
    expect(checkRelay({ ...OK, forName: '𠀀'.repeat(16) }).ok).toBe(true)
    expect(errorsOf({ ...OK, forName: `${'𠀀'.repeat(16)}x` })).toMatchObject([{ bytes: 65 }])
  })

  it('counts after trimming, and a CR LF as one LF', () => {
    expect(checkRelay({ ...OK, forName: `  ${'x'.repeat(64)}\t ` })).toMatchObject({ ok: true, input: { forName: 'x'.repeat(64) } })
    expect(checkRelay({ ...OK, text: `${'x'.repeat(239)}\r\n${'x'.repeat(240)}` })).toMatchObject({ ok: true, input: { text: `${'x'.repeat(239)}\n${'x'.repeat(240)}` } })
  })
})

describe('the rule of a relay: what must be there', () => {
  it.each([
    ['no household name', { ...OK, forName: '' }, 'forName', /^forName: empty; fill in the household it is for$/],
    ['a household name of spaces', { ...OK, forName: ' \t ' }, 'forName', /fill in/],
    ['a household name that is not text', { ...OK, forName: 42 }, 'forName', /fill in/],
    ['"other" without a message', { what: 'other', forName: '巴图家', text: '  ' }, 'text', /^text: empty; for "other", write the message/],
  ])('refuses %s as required', (_, sent, field, message) => {
    const [e, ...rest] = errorsOf(sent)
    expect(rest).toEqual([])
    expect(e).toMatchObject({ code: 'RELAY_INVALID', field, problem: 'required' })
    expect(e!.message).toMatch(message)
  })

  it('refuses a missing or unknown kind as RELAY_UNKNOWN_KIND, naming the kinds', () => {
    for (const what of [undefined, '', 'flood', 5]) {
      expect(errorsOf({ ...OK, what })).toEqual([
        {
          code: 'RELAY_UNKNOWN_KIND',
          field: 'what',
          problem: 'unknownKind',
          message: `what: ${what === undefined || what === '' || what === 5 ? 'missing' : '"flood" is not a kind'}; choose what it is about: one of emergency, medical, fire, crime, livestock, other`,
        },
      ])
    }
  })

  it('takes the alarm kinds without a message, and leaves out empty optional fields', () => {
    expect(checkRelay({ what: 'fire', forName: ' Batu ', forPhone: '', where: '  ', text: '' })).toEqual({ ok: true, input: { what: 'fire', forName: 'Batu', text: '' } })
    expect(checkRelay({ what: 'fire', forName: 'Batu' })).toEqual({ ok: true, input: { what: 'fire', forName: 'Batu', text: '' } })
  })

  it('refuses nothing at all, or not an object, as a missing kind and a missing name', () => {
    for (const sent of [null, undefined, 'relay', 7, []]) expect(errorsOf(sent).map((e) => `${e.field} ${e.problem}`)).toEqual(['what unknownKind', 'forName required'])
  })
})

describe('the rule of a relay: characters', () => {
  it.each([
    ['BEL', '\u0007'],
    ['NUL', '\u0000'],
    ['ESC', '\u001b'],
    ['DEL', '\u007f'],
    ['C1 NEL', '\u0085'],
    ['the line separator', '\u2028'],
    ['the paragraph separator', '\u2029'],
  ])('refuses %s in every field', (_, c) => {
    for (const field of ['forName', 'forPhone', 'where', 'text', 'by'] as const) {
      expect(errorsOf({ ...OK, [field]: `12${c}34` }), field).toMatchObject([{ code: 'RELAY_INVALID', field, problem: 'badChar', message: expect.stringMatching(/not allowed/) }])
    }
  })

  it('takes a line break in the message; refuses it in a one-line field, saying so', () => {
    expect(checkRelay({ ...OK, text: 'line 1\nline 2\r\nline 3' })).toMatchObject({ ok: true, input: { text: 'line 1\nline 2\nline 3' } })
    for (const field of ['forName', 'where', 'by'] as const) {
      expect(errorsOf({ ...OK, [field]: 'a\nb' })).toMatchObject([{ field, problem: 'badChar', message: expect.stringMatching(/a control character or a line break.*on one line/) }])
    }
  })

  it('takes markup and quotes as they are (the page escapes them)', () => {
    expect(checkRelay({ ...OK, forName: '<b>"巴图"</b> & Co' })).toMatchObject({ ok: true, input: { forName: '<b>"巴图"</b> & Co' } })
  })

  it('takes a phone typed in full-width (a Chinese input method) as the same ASCII number', () => {
    expect(checkRelay({ ...OK, forPhone: '＋８６ １３９ ０４７９ ００００' })).toMatchObject({ ok: true, input: { forPhone: '+86 139 0479 0000' } })
    expect(checkRelay({ ...OK, forPhone: '（０４７９）１２３－４５６７' })).toMatchObject({ ok: true, input: { forPhone: '(0479)123-4567' } })
  })

  it('takes a phone of digits, spaces and + - ( ); refuses anything else', () => {
    for (const forPhone of ['13904790000', '+86 139 0479 0000', '(0479) 123-4567']) expect(checkRelay({ ...OK, forPhone }).ok, forPhone).toBe(true)
    for (const forPhone of ['call me', '139/0479', 'ext. 5', '１３９／０４７９']) {
      expect(errorsOf({ ...OK, forPhone }), forPhone).toEqual([
        { code: 'RELAY_INVALID', field: 'forPhone', problem: 'phone', message: 'forPhone: only digits, spaces and + - ( ) are allowed; type the number again' },
      ])
    }
  })
})

describe('the rule of a relay: the answer', () => {
  it('gives every field’s first problem, in the order of the fields, and one per field', () => {
    const errors = errorsOf({ what: 'other', forName: '', forPhone: '1'.repeat(33), where: 'w\u0007', text: '', by: 'b'.repeat(65) })
    expect(errors.map((e) => [e.field, e.problem])).toEqual([
      ['forName', 'required'],
      ['forPhone', 'tooLong'],
      ['where', 'badChar'],
      ['text', 'required'],
      ['by', 'tooLong'],
    ])
    expect(errors.map((e) => e.field)).toEqual(RELAY_INPUT_FIELDS.filter((f) => errors.some((e) => e.field === f)))
  })

  it('is answered by relayRefused as the service and the API answer it: the first error at the top, all of them after', () => {
    const r = checkRelay({ ...OK, forName: 'n'.repeat(65), by: 'b'.repeat(65) })
    if (r.ok) throw new Error('taken')
    expect(relayRefused(r.errors)).toEqual({
      ok: false,
      code: 'RELAY_INVALID',
      field: 'forName',
      problem: 'tooLong',
      message: 'forName: too long: 65 bytes, at most 64 (a Chinese character is 3 bytes); shorten it',
      errors: r.errors,
    })
  })
})
