import fc from 'fast-check'
import { describe, it } from 'vitest'
import { linkEndsProperty, mutatedStreamProperty, randomBytesProperty } from '../tools/fuzz.js'

// 100,000 cases in all on every test run; `npm run fuzz` runs a million or more.
describe('fuzz [LINK-2.4] [LINK-9.1]', () => {
  it('random bytes in any chunking: no throw, memory bounded (40,000 cases)', () => {
    fc.assert(randomBytesProperty, { numRuns: 40_000 })
  })
  it('mutated streams of valid frames: no corrupted frame accepted (40,000 cases)', () => {
    fc.assert(mutatedStreamProperty, { numRuns: 40_000 })
  })
  it('both link ends fed mutated traffic and noise: never throw (20,000 cases)', () => {
    fc.assert(linkEndsProperty, { numRuns: 20_000 })
  })
})
