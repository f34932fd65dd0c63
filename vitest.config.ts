import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // How long before a test or hook counts as hung — not how fast it must be. Most files start
    // real PostgreSQL, sshd, brokers or the CLI, and the suite must pass with both cores busy
    // (stress-ng --cpu 2 beside it), where they run several times slower than on a quiet machine.
    // Waits inside tests have their own generous deadlines (test/support/wait.ts); timings are
    // reported, or measured by `npm run bench`, never asserted.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Real PostgreSQL clusters and broker processes are started per file; two cores.
    fileParallelism: true,
    maxWorkers: 2,
    // The JSON report lets .ci/run print a plain "N passed, N failed" closing line.
    reporters: ["default", ["json", { outputFile: "test-results.json" }]],
  },
});
