import { describe, expect, it } from 'vitest'
import { splitDisplayText } from './display.js'

describe('splitDisplayText [LINK-5.8]', () => {
  it('keeps a short text whole', () => {
    expect(splitDisplayText('Road closed')).toEqual({ parts: ['Road closed'], truncated: false })
  })

  it('never exceeds the byte limit and never cuts a character', () => {
    const text = '白灾预警：今夜暴雪，请把牲畜赶回棚圈。'.repeat(12)
    const { parts, truncated } = splitDisplayText(text)
    expect(truncated).toBe(false)
    for (const p of parts) {
      expect(Buffer.byteLength(p)).toBeLessThanOrEqual(180)
      expect(p).not.toContain('\uFFFD')
    }
    expect(parts.join('')).toBe(text)
  })

  it('prefers to break after punctuation or a space', () => {
    const text = 'word '.repeat(50)
    const { parts } = splitDisplayText(text, 40)
    expect(parts.every((p) => p.endsWith('word'))).toBe(true)
  })

  it('cuts what does not fit in the last part and says so', () => {
    const { parts, truncated } = splitDisplayText('x'.repeat(100), 10, 3)
    expect(parts).toEqual(['x'.repeat(10), 'x'.repeat(10), 'x'.repeat(10)])
    expect(truncated).toBe(true)
  })
})
