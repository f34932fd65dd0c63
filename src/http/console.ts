/**
 * The web console, served by the broker itself: the single-page app built by Vite into
 * `dist/web` (`npm run build`). Its pages live at the broker's own paths — `/`, `/request`,
 * `/grants/<id>` (what alarm links point at), … — each answered with the app's `index.html`;
 * its files are under `/assets/`, named by their content's hash and cached for good.
 *
 * A strict Content-Security-Policy: scripts, styles and connections from the broker only, no
 * inline script or style, no framing. The app talks to the broker through `/api/v1` like any
 * other client.
 */
import { existsSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import type { FastifyInstance } from "fastify";
import { packageRoot } from "../adapters/package-root.js";

/** The console's pages (client-side routes). */
export const CONSOLE_PAGES = [
  "/",
  "/request",
  "/reviews",
  "/posture",
  "/drills",
  "/audit",
  "/roles",
  "/factors",
  "/grants/:id",
] as const;

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Readonly<Record<string, string>> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
};

export function registerConsole(app: FastifyInstance, dir: string = join(packageRoot(), "dist", "web")): void {
  const indexFile = join(dir, "index.html");
  let index: string | null = null;
  const page = async (_request: unknown, reply: import("fastify").FastifyReply) => {
    index ??= existsSync(indexFile) ? readFileSync(indexFile, "utf8") : null;
    reply
      .header("content-security-policy", CSP)
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer")
      .type("text/html; charset=utf-8");
    if (index === null) {
      return reply
        .code(503)
        .send(
          '<!doctype html><html lang="en"><meta charset="utf-8"><title>Breakglass</title><h1>The web console is not built</h1><p>Run <code>npm run build</code>; the API is at <a href="/api/v1/openapi.json">/api/v1</a>.</p></html>',
        );
    }
    return reply.send(index);
  };
  for (const path of CONSOLE_PAGES) app.get(path, page);

  app.get<{ Params: { file: string } }>("/assets/:file", async (request, reply) => {
    const { file } = request.params;
    const type = TYPES[extname(file)];
    const path = join(dir, "assets", file);
    // Hashed names only ([name]-[hash].ext): nothing with a path in it.
    if (!/^[\w.-]+$/.test(file) || file.startsWith(".") || type === undefined || !existsSync(path)) {
      return reply.code(404).type("text/plain; charset=utf-8").send("not found");
    }
    return reply
      .header("cache-control", "public, max-age=31536000, immutable")
      .header("x-content-type-options", "nosniff")
      .type(type)
      .send(readFileSync(path));
  });
}
