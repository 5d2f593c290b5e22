/**
 * How the steppelink commands say they were called wrong: one UsageError for all of
 * them, one line on standard error that points at --help, exit status 2.
 */

/** A command was called wrong: a flag missing, out of range or unknown. Not a bug; exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
  readonly code = 'CLI_USAGE'
}

/** The exit status of a usage error. */
export const USAGE_EXIT = 2

/** The line a usage error prints: `steppelink <command>: <message>. See 'steppelink <command> --help'.` */
export function usageLine(command: string, message: string): string {
  return `steppelink ${command}: ${message}. See 'steppelink ${command} --help'.`
}

/** Writes the line of a usage error with `writeLine` and gives USAGE_EXIT; anything else is a bug, thrown on. */
export function reportUsage(writeLine: (line: string) => void, command: string, e: unknown): number {
  if (!(e instanceof UsageError)) throw e
  writeLine(usageLine(command, e.message))
  return USAGE_EXIT
}

/**
 * parseArgs's own errors (an unknown option, a missing value, an argument where none is
 * taken) as usage errors: its message on one line, without its advice about `--`.
 */
export function parseArgsError(e: unknown): UsageError {
  const message = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '')
  return new UsageError(message.replace(/\s+/g, ' ').trim().replace(/\.$/, ''))
}

/** A number flag: undefined if absent; a usage error naming `what` it must be if it is not a number or `ok` refuses it. */
export function numberFlag(flag: string, raw: string | undefined, ok: (n: number) => boolean, what: string): number | undefined {
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (raw.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new UsageError(`--${flag} must be ${what}, got '${raw}'`)
  return n
}

/** A flag that takes one of `names`: undefined if absent; a usage error listing them if it is none of them. */
export function oneOf<T extends string>(flag: string, raw: string | undefined, names: readonly T[]): T | undefined {
  if (raw === undefined) return undefined
  if (!(names as readonly string[]).includes(raw)) throw new UsageError(`--${flag} must be one of ${names.join(', ')}, got '${raw}'`)
  return raw as T
}
