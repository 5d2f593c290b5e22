/**
 * What every part of the MQTT contract shares: its version, the `v` of every payload and
 * command; the time stamp of a payload; and the schema of a name from a table.
 */

import Type from 'typebox'

export const MQTT_CONTRACT_VERSION = 1

/** A schema for one of the keys of `o` (a stage, an urgency): the names, not the wire codes. */
export const names = <O extends Record<string, unknown>>(o: O) => Type.Enum(Object.keys(o) as (keyof O & string)[])

export const Time = Type.Object({
  at: Type.Integer({ description: 'UNIX milliseconds, corrected by platform time when known' }),
  estimated: Type.Boolean({ description: "true when the gateway's clock was never synchronised, or the terminal's time is inferred" }),
})
