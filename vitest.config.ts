import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['protocol/**/*.test.ts', 'gateway/**/*.test.ts', 'device-sim/**/*.test.ts', 'cli/**/*.test.ts', 'tests/**/*.test.ts'],
    // Property tests run 100,000 cases; give them room on a 2-core board-class machine.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    reporters: ['default', './tests/summary-reporter.ts'],
  },
})
