/**
 * State machines as data: a table from each state to the state each input leads to, and
 * the one function that moves along it. The link session (session.ts), the serial port
 * (gateway/serial.ts) and the MQTT uplink (gateway/uplink.ts) each write their table, with
 * its invariants, and ask this. An input a state has no entry for is a bug of the caller,
 * never a fact of the world: it throws.
 */

export type TransitionTable<S extends string, I extends string> = Readonly<Record<S, Partial<Record<I, S>>>>

/** The state `input` leads to from `from`; throws `bug(message)` (default an Error) when the table has none. */
export function transition<S extends string, I extends string>(table: TransitionTable<S, I>, from: S, input: I, what: string, bug: (message: string) => Error = (message) => new Error(message)): S {
  const to = table[from][input]
  if (to === undefined) throw bug(`${what}: no transition from ${from} on ${input} (a bug)`)
  return to
}
