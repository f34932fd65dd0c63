/**
 * One broker replica on its own thread (its own event loop and connection pool), for the expiry
 * storm with several replicas on one store: it starts a broker from the storm's configuration
 * with the do-nothing connector, reports its URL, and stops when told to.
 */
import { parentPort, workerData } from "node:worker_threads";
import { silentLogger } from "../src/adapters/logger.js";
import { createBroker } from "../src/app.js";
import { loadConfigFile } from "../src/config/load-config.js";
import { connectorSettingsSchemas } from "../src/connectors/registry.js";
import { noopConnector } from "./noop-connector.js";

const { configFile, env } = workerData as { configFile: string; env: Record<string, string> };
const config = loadConfigFile(configFile, { connectorSchemas: connectorSettingsSchemas, env });
const broker = await createBroker(config, { log: silentLogger, env, connectors: new Map([["box", noopConnector]]) });
const url = await broker.start();
parentPort?.postMessage({ url });
parentPort?.once("message", () => {
  void broker.stop().then(() => parentPort?.postMessage({ stopped: true }));
});
