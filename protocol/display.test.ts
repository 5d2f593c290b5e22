import { describe, expect, it } from 'vitest'
import { ELLIPSIS, fitText, splitDisplayText } from './display.js'

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

describe('fitText [LINK-5.7]', () => {
  it('leaves a text that fits as it is', () => {
    expect(fitText('Officer Bao', 120)).toEqual({ text: 'Officer Bao', cut: false })
    expect(fitText('x'.repeat(120), 120)).toEqual({ text: 'x'.repeat(120), cut: false })
  })

  it('cuts a longer text at a character boundary and ends it with an ellipsis, within the bytes', () => {
    const long = '请待在病人身边，保持温暖，巡逻车三号已经出发，预计四十分钟后到达，请保持电话畅通，谢谢配合。'.repeat(2)
    const { text, cut } = fitText(long, 120)
    expect(cut).toBe(true)
    expect(text.endsWith(ELLIPSIS)).toBe(true)
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(120)
    expect(long.startsWith(text.slice(0, -1))).toBe(true)
    expect(Buffer.byteLength(fitText('y'.repeat(200), 120).text)).toBe(120)
  })
})
