/**
 * The configuration while it is built: nested tables of plain values (from JSON, TOML,
 * flags and the environment), addressed by dotted paths (`mqtt.keepalive`).
 */

export type Tree = Record<string, unknown>

export const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date)

export function getPath(tree: Tree, path: string): unknown {
  let v: unknown = tree
  for (const k of path.split('.')) {
    if (Array.isArray(v) && /^\d+$/.test(k)) v = v[Number(k)]
    else if (isTree(v) && Object.hasOwn(v, k)) v = v[k]
    else return undefined
  }
  return v
}

export function setPath(tree: Tree, path: string, value: unknown): void {
  const keys = path.split('.')
  const last = keys.pop() as string
  let t = tree
  for (const k of keys) {
    const next = t[k]
    if (isTree(next)) {
      t = next
    } else {
      const table: Tree = {}
      t[k] = table
      t = table
    }
  }
  t[last] = value
}

/** Deep merge of tables; anything else (lists too) is replaced by the override. */
export function merge(base: Tree, override: Tree): Tree {
  const out: Tree = { ...base }
  for (const [k, v] of Object.entries(override)) {
    const b = out[k]
    // A table never replaces a value of another kind: that value came from the file and
    // is wrong, and the schema should report it rather than the flags hide it.
    if (isTree(v) && b !== undefined && !isTree(b)) continue
    out[k] = isTree(b) && isTree(v) ? merge(b, v) : v
  }
  return out
}

/** What kind of thing a value is, in the words of a config file. */
export function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'a list'
  if (value === null) return 'null'
  if (value instanceof Date) return 'a date'
  const t = typeof value
  return t === 'object' ? 'a table' : t === 'string' ? 'a string' : `a ${t}`
}
