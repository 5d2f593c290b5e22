/**
 * The case ledger of the 110 centre (issue 15): what the console, the deadline timer and
 * the web desk import. README.md describes the API, the tables and the decisions.
 */

export { canonical, GENESIS, rowHash } from './audit.js'
export { LEDGER_APPLICATION_ID, LEDGER_SCHEMA_VERSION } from './db.js'
export { asOf, computeFigures, mostUrgent, openDeadlines, percentile } from './deadlines.js'
export { LedgerError, type LedgerErrorCode } from './errors.js'
export {
  LEDGER_STAGES,
  type Actor,
  type AuditAction,
  type AuditCheck,
  type AuditRow,
  type CaseLedger,
  type Comment,
  type CopyVersion,
  type DeadlineKind,
  type DeadlineState,
  type DeadlineView,
  type EscalateOptions,
  type Escalation,
  type EscalationNotice,
  type Figures,
  type FiguresQuery,
  type FiguresReport,
  type FindQuery,
  type FollowUp,
  type LedgerCase,
  type LedgerStage,
  type Overdue,
  type Percentiles,
  type QueueEntry,
  type RecordOptions,
  type Recorded,
  type StageEntry,
} from './ledger.js'
export {
  checkSettings,
  Contact,
  DeadlineSettings,
  deadlinesFor,
  EscalationLevel,
  LEDGER_DEFAULTS,
  LedgerSettings,
  type LedgerSettingsPatch,
  withSettings,
} from './settings.js'
export { gatewayActor, LEDGER_ACTOR, MAX_ACTOR, SqliteLedger, type SqliteLedgerOptions } from './sqlite-ledger.js'
