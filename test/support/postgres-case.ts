/** The postgres connector in the contract suite, against one real PostgreSQL target. */
import type { ConnectorCase } from "./connector-case.js";
import { contractRole } from "./connector-case.js";
import { type PostgresTarget, startPostgresTarget, tryLogin } from "./postgres-target.js";

let target: PostgresTarget | null = null;
const started = (): PostgresTarget => {
  if (!target) throw new Error("postgres target not started");
  return target;
};

export const postgresConnectorCase: ConnectorCase = {
  name: "postgres (login roles on a real server)",
  async start() {
    target = await startPostgresTarget();
  },
  async stop() {
    await target?.stop();
    target = null;
  },
  async setUp() {
    const t = started();
    await t.reset();
    const connector = t.connector();
    return {
      connector,
      role: contractRole("pg-app", { roles: ["recovery_rw"] }),
      target: { name: "pg-app", connector: "postgres", settings: {} },
      principals: async () => (await t.sql("SELECT 1 FROM pg_roles WHERE starts_with(rolname, 'bg_')")).length,
      canUse: async (_facts, granted) => (await tryLogin(granted.credential?.reveal() ?? "")) === null,
      tearDown: async () => connector.close?.(),
    };
  },
};
