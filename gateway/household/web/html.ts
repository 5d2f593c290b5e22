/**
 * HTML that cannot run what it shows: every value put into a page goes through `html`,
 * which escapes it unless it is already `Html` (made by `html` itself). Text from a
 * neighbour, a terminal or the platform is shown as text, markup and all, never obeyed.
 */

/** A piece of markup that is safe to put into a page as it is (only `html` and `raw` make one). */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text
  }
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Text as HTML text or attribute value (quoted): & < > " ' escaped. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!)
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[]

function piece(v: Value): string {
  if (v === null || v === undefined || v === false || v === true) return ''
  if (v instanceof Html) return v.text
  if (Array.isArray(v)) return v.map(piece).join('')
  return escapeHtml(String(v))
}

/** A template whose values are escaped (Html values and lists of them go in as they are). */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!
  for (let i = 0; i < values.length; i++) out += piece(values[i]) + strings[i + 1]!
  return new Html(out)
}

/** Markup written in this code (never text from outside). */
export function raw(markup: string): Html {
  return new Html(markup)
}
