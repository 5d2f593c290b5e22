/**
 * Session states of one link between the gateway and one terminal, as data.
 *
 * Theory of operation [LINK-4.x, LINK-7.x]:
 * - A session is opened by the HELLO/WELCOME handshake and named by the terminal's
 *   (boot counter, session number) pair: every new handshake has a new pair, and both
 *   ends reset both directions' sequence numbers to 0 exactly when the pair changes. A
 *   new boot counter means the terminal restarted; a new gateway boot in WELCOME means
 *   the gateway did.
 * - Data frames (type >= 0x20) flow only in an open session: one frame in flight per
 *   direction (stop-and-wait), acknowledged by seq, retransmitted on a timeout.
 * - A data frame whose seq is behind the expected one (a late duplicate) is answered
 *   again if it is the last one answered, and otherwise ignored. A data frame the
 *   gateway cannot place (no session, or a seq ahead of the expected one) is answered
 *   NAK no-session, and the terminal goes back to the handshake. A terminal that is not
 *   in session drops data silently: its HELLO is already on the way.
 *
 * Invariants:
 * 1. Sequence numbers are only assigned to a message when it is first transmitted, and
 *    only in state `open`.
 * 2. A message is handed to the application at most once per session (duplicates are
 *    answered from `lastAnswer`, never delivered again).
 * 3. Leaving `open` puts the message in flight back at the head of the queue: nothing
 *    queued is lost by a restart of the peer; it may be delivered again in the new
 *    session, which is why every data message is idempotent at the application level
 *    (event numbers, broadcast ids, stage per event).
 */

import { LocalProtocolError } from './errors.js'
import { transition, type TransitionTable } from './transition.js'

export type SessionState = 'closed' | 'syncing' | 'open'

export type SessionInput =
  /** Terminal: starts, or has been told the gateway lost the session; sends HELLO. */
  | 'resync'
  /** Terminal: WELCOME echoing our boot counter. */
  | 'welcome'
  /** Gateway: HELLO with a boot counter (new or known). */
  | 'hello'
  /** Gateway: the terminal answered NAK no-session; it will send HELLO. */
  | 'peer-lost-session'
  /** Gateway: a data frame out of sequence: forget the session, wait for HELLO. */
  | 'out-of-sync'

export const SESSION_TRANSITIONS: TransitionTable<SessionState, SessionInput> = {
  closed: { resync: 'syncing', hello: 'open' },
  syncing: { resync: 'syncing', welcome: 'open', hello: 'open', 'out-of-sync': 'syncing', 'peer-lost-session': 'syncing' },
  open: { resync: 'syncing', welcome: 'open', hello: 'open', 'peer-lost-session': 'syncing', 'out-of-sync': 'closed' },
}

export function nextSessionState(from: SessionState, input: SessionInput): SessionState {
  return transition(SESSION_TRANSITIONS, from, input, 'session', (m) => new LocalProtocolError('LINK_BAD_TRANSITION', m))
}
