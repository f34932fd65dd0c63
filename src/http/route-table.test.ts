import { describe, expect, test } from "vitest";
import { z } from "zod";
import { API_PREFIX } from "../contract/api.js";
import { type AnyRoute, defineRoute, type HttpMethod, methodsAt } from "./route-table.js";
import { buildRoutes, type RouteDeps } from "./routes/index.js";

const route = (method: HttpMethod, path: string): AnyRoute =>
  defineRoute({
    method,
    path,
    operationId: `${method}${path}`,
    summary: "test",
    tag: "test",
    auth: true,
    status: 200,
    response: z.object({}),
    problems: [],
    handler: async () => ({ body: {} }),
  });

describe("the methods a path takes (what a 405 lists in Allow)", () => {
  const at = methodsAt(
    [
      route("GET", "/grants"),
      route("POST", "/grants"),
      route("GET", "/grants/:id"),
      route("POST", "/grants/:id/approve"),
      route("GET", "/drills/runs/:run"),
      route("POST", "/drills/:name/run"),
      route("GET", "/openapi.json"),
    ],
    API_PREFIX,
  );

  test("a GET brings HEAD; methods of every route at the path, sorted, each once", () => {
    expect(at("/api/v1/grants")).toEqual(["GET", "HEAD", "POST"]);
  });

  test("a :param is any one segment, never two and never none", () => {
    expect(at("/api/v1/grants/g_1")).toEqual(["GET", "HEAD"]);
    expect(at("/api/v1/grants/g_1/approve")).toEqual(["POST"]);
    expect(at("/api/v1/grants/g_1/approve/again")).toEqual([]);
    expect(at("/api/v1/grants/a/b")).toEqual([]);
    expect(at("/api/v1/grants//approve")).toEqual([]);
  });

  test("two routes whose params overlap at one path both count", () => {
    // /drills/runs/run is GET /drills/runs/:run (run = "run") and POST /drills/:name/run (name = "runs").
    expect(at("/api/v1/drills/runs/run")).toEqual(["GET", "HEAD", "POST"]);
    expect(at("/api/v1/drills/nightly/run")).toEqual(["POST"]);
  });

  test("a path's other characters are literal, and the prefix is required", () => {
    expect(at("/api/v1/openapi.json")).toEqual(["GET", "HEAD"]);
    expect(at("/api/v1/openapiXjson")).toEqual([]);
    expect(at("/grants")).toEqual([]);
    expect(at("/api/v2/grants")).toEqual([]);
  });

  test("every route of the API's table takes its own method at its path, params filled in", () => {
    // The table is built without services: no handler runs here.
    const routes = buildRoutes({ queries: {}, drills: {} } as unknown as RouteDeps);
    const atApi = methodsAt(routes, API_PREFIX);
    expect(routes.length).toBeGreaterThan(30);
    for (const r of routes) {
      const path = `${API_PREFIX}${r.path.replace(/:[A-Za-z_]+/g, "x1")}`;
      expect(atApi(path), `${r.method} ${r.path}`).toContain(r.method);
    }
  });
});
