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
export function splitDisplayText(
  text: string,
  maxBytes = DISPLAY_TEXT_MAX_BYTES,
  maxParts = DISPLAY_MAX_PARTS,
): { parts: string[]; truncated: boolean } {
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
