import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import type { AppConfig } from "../../config/app-config.js";
import { demoServer } from "./server-commands.js";

const server = { host: "127.0.0.1", port: 8080, publicUrl: "http://127.0.0.1:8080" } as AppConfig["server"];

describe("the demo's server settings", () => {
  it("`--port 0` becomes a port that is free now, and the public URL names it (not `:0`)", async () => {
    const s = await demoServer(server, "127.0.0.1", 0);
    expect(s.port).toBeGreaterThan(0);
    expect(s.publicUrl).toBe(`http://127.0.0.1:${s.port}`);
    // It is free: something can listen on it.
    await new Promise<void>((resolve, reject) => {
      const probe = createServer().once("error", reject);
      probe.listen(s.port, "127.0.0.1", () => probe.close(() => resolve()));
    });
  });

  it("a given port and host are kept as they are", async () => {
    expect(await demoServer(server, "0.0.0.0", 9000)).toMatchObject({
      host: "0.0.0.0",
      port: 9000,
      publicUrl: "http://0.0.0.0:9000",
    });
  });
});
