import { defineConfig } from 'vitest/config'

// Two groups, one after the other: the unit and property tests in parallel, then the
// end-to-end and fault tests (real processes, pseudo-terminals, brokers) one file at a
// time, so that their timing is not squeezed by the rest of the suite on a 2-core machine.
export default defineConfig({
  test: {
    // Property tests run 100,000 cases; give them room on a 2-core board-class machine.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    reporters: ['default', './tests/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: [
            'protocol/**/*.test.ts',
            'io/**/*.test.ts',
            'gateway/**/*.test.ts',
            'platform/**/*.test.ts',
            'device-sim/**/*.test.ts',
            'loop/**/*.test.ts',
            'cli/**/*.test.ts',
            'tools/**/*.test.ts',
          ],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'end-to-end',
          include: ['tests/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 300_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
})
