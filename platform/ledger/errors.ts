/**
 * The ledger's errors. Everything the ledger refuses is a LedgerError with a stable code
 * and a message that says what was wrong in words an operator (or the desk showing it)
 * can act on: bad input is refused before anything is written, so a refusal never leaves
 * half a change behind and never loses a case.
 */

export type LedgerErrorCode =
  /** The file is not a ledger (another program's, a gateway's store, damaged). */
  | 'LEDGER_FOREIGN'
  /** The file was written by a newer Steppelink (a layout this one does not know). */
  | 'LEDGER_NEWER'
  /** The file exists but is empty: a ledger lost, not a fresh start. */
  | 'LEDGER_EMPTY'
  /** The file cannot be opened (permissions, a full disk, a missing directory). */
  | 'LEDGER_OPEN_FAILED'
  /** The ledger was closed. */
  | 'LEDGER_CLOSED'
  /** SQLite could not commit (a full disk, another desk holding the write lock too long): nothing was changed. */
  | 'LEDGER_WRITE_FAILED'
  /** Settings that do not fit LedgerSettings; the message names the first field. */
  | 'LEDGER_BAD_SETTINGS'
  /** An argument out of range: an operator name empty or too long, a time that is not UNIX ms, a text too long ... */
  | 'LEDGER_BAD_INPUT'
  /** A copy that is not a case: only alarm and request classes are (trouble and status are not). */
  | 'LEDGER_NOT_A_CASE'
  /** No case under this id. */
  | 'LEDGER_UNKNOWN_CASE'
  /** The case is owned by another operator; `owner` names them. */
  | 'LEDGER_TAKEN'
  /** Only the owner may release a case. */
  | 'LEDGER_NOT_OWNER'
  /** The case is already at that stage or further: stages move forward only. */
  | 'LEDGER_STAGE_PASSED'
  /** An escalation that does not go up: the case is at the top level, or the named level is unknown or not above it. */
  | 'LEDGER_BAD_LEVEL'
  /** A follow-up on a case not closed, or an outcome with no follow-up due. */
  | 'LEDGER_NO_FOLLOW_UP'

export class LedgerError extends Error {
  override readonly name = 'LedgerError'
  constructor(
    readonly code: LedgerErrorCode,
    message: string,
    options?: { cause?: unknown; owner?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    if (options?.owner !== undefined) this.owner = options.owner
  }
  /** For LEDGER_TAKEN: who has the case. */
  readonly owner?: string
}
