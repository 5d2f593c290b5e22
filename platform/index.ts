/**
 * The platform side of protocol/MQTT.md: the operator console of the banner 110 centre,
 * and one-off broadcasts. What `steppelink console`, the demo, the tests and the
 * benchmarks use; the files behind it each keep one concern (README.md has the map).
 */

export { targetTopic } from './commands.js'
export { publishBroadcast, publishKeyRotate, publishWithdraw, nextKeyId } from './broadcast.js'
export {
  ACTION_STAGE,
  AUTOMATIC_AFTER_ACKNOWLEDGEMENT,
  CONFLICT_WARNING,
  CONSOLE_STAGES,
  MAX_VERSIONS,
  OTHER_REQUEST_ACKNOWLEDGEMENT,
  REQUEST_ACKNOWLEDGEMENTS,
  canTake,
  type CaseClass,
  type ConsoleStage,
  type OperatorAction,
} from './cases.js'
export { startConsole, type OperatorConsole } from './console.js'
export { ConsoleError, type ConsoleErrorCode, type PayloadErrorCode } from './errors.js'
export type { AlertLine, CommandLine, ConnectionLine, ConsoleEvent, CopyConflict, ErrorLine, EventLine, ReplyLine, StateLine, StatusLine, TerminalReset } from './events.js'
export {
  ACK_MODES,
  BroadcastSettings,
  CONSOLE_DEFAULTS,
  CONSOLE_ID_PATTERN,
  ConsoleSettings,
  KeyRotateSettings,
  URGENCY_NAMES,
  WithdrawSettings,
  optionProblem,
  type AckMode,
  type BroadcastOptions,
  type ConsoleHooks,
  type ConsoleOptions,
  type ConsoleTimers,
  type KeyRotateOptions,
  type OneCommandOptions,
  type OptionProblem,
  type WithdrawOptions,
} from './options.js'
export { clockTime, describeEvent, describeReset, duration, renderView, screenText, type ViewOptions } from './render.js'
export {
  openCases,
  type BroadcastView,
  type CaseConflict,
  type CaseView,
  type CopyVersion,
  type ConsoleCounters,
  type ConsoleSnapshot,
  type GatewayView,
  type TerminalView,
  type TroubleView,
} from './view.js'
