/** Did-you-mean for a mistyped flag or key. */

/** The known name closest to a mistyped one, if it is close enough to be the intent. */
export function nearest(name: string, known: string[]): string | null {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '')
  // How far off a guess may be grows with the name: two edits turn 'foo' into 'log', which
  // is no guess at all, while 'recconect-max' is plainly 'reconnect-max'.
  const length = norm(name).length
  let best: string | null = null
  let bestDistance = (length <= 4 ? 1 : length <= 8 ? 2 : 3) + 1
  for (const k of known) {
    const d = distance(norm(name), norm(k))
    if (d < bestDistance) [best, bestDistance] = [k, d]
  }
  return best
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = row
  }
  return prev[b.length] ?? 0
}
