/**
 * Long broadcast texts for terminals: DISPLAY carries at most 180 bytes of UTF-8, so a
 * gateway splits a longer text into parts at character boundaries. [LINK-5.8]
 */

export const DISPLAY_TEXT_MAX_BYTES = 180
export const DISPLAY_MAX_PARTS = 15

/**
 * Splits `text` into at most `maxParts` pieces of at most `maxBytes` UTF-8 bytes each,
 * never inside a character; prefers to cut after white space or punctuation near the end
 * of a piece. Text beyond the last part is cut, and `truncated` says so.
 */
export function splitDisplayText(text: string, maxBytes = DISPLAY_TEXT_MAX_BYTES, maxParts = DISPLAY_MAX_PARTS): { parts: string[]; truncated: boolean } {
  const chars = [...text]
  const parts: string[] = []
  let i = 0
  while (i < chars.length && parts.length < maxParts) {
    let bytes = 0
    let end = i
    while (end < chars.length && bytes + Buffer.byteLength(chars[end]!) <= maxBytes) bytes += Buffer.byteLength(chars[end++]!)
    if (end < chars.length) {
      // Look back a little for a natural break (space, CJK or Latin punctuation).
      for (let j = end; j > i + Math.floor((end - i) * 0.7); j--) {
        if (/[\s,.;:!?，。；：！？、]/u.test(chars[j - 1]!)) {
          end = j
          break
        }
      }
    }
    parts.push(chars.slice(i, end).join('').trim() || chars.slice(i, end).join(''))
    i = end
  }
  return { parts: parts.filter((p) => p.length > 0), truncated: i < chars.length }
}

/** U+2026, three bytes of UTF-8: what a reader sees where a text was cut. */
export const ELLIPSIS = '\u2026'

/**
 * `text` made to fit `maxBytes` of UTF-8 for a terminal's display: unchanged if it fits;
 * otherwise cut at a character boundary, with an ellipsis as its last character so the
 * reader sees that more was said (an operator's message longer than INDICATE's 120 bytes,
 * [LINK-5.7]).
 */
export function fitText(text: string, maxBytes: number): { text: string; cut: boolean } {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return { text, cut: false }
  const room = maxBytes - Buffer.byteLength(ELLIPSIS, 'utf8')
  let bytes = 0
  let out = ''
  for (const ch of text) {
    const n = Buffer.byteLength(ch, 'utf8')
    if (bytes + n > room) break
    bytes += n
    out += ch
  }
  return { text: out.trimEnd() + ELLIPSIS, cut: true }
}
