import { describe, expect, test } from "vitest";
import type { ProblemCode } from "../contract/api.js";
import { BreakglassError, type ErrorCode } from "../core/errors.js";
import { clientErrorResponse, problem, problemType, STATUS_BY_CODE, toProblem } from "./problem.js";

/** Every code the API answers with (STATUS_BY_CODE is a Record over the union: the compiler keeps it whole). */
const CODES = Object.keys(STATUS_BY_CODE) as ProblemCode[];

/** A fastify refusal as the framework throws it. */
const fastifyError = (code: string, statusCode: number, message = "framework text"): Error =>
  Object.assign(new Error(message), { code, statusCode });

describe("each problem code", () => {
  test("has an HTTP error status and a fixed title; its type names the code", () => {
    expect(CODES.length).toBeGreaterThan(30);
    for (const code of CODES) {
      const status = STATUS_BY_CODE[code];
      expect(status >= 400 && status < 600, code).toBe(true);
      if (code === "ERR_INTERNAL") continue;
      const body = problem(code, "req-1", "what happened");
      expect(body.title, code).toMatch(/\S/);
      expect(body).toMatchObject({ status, code, instance: "req-1", type: problemType(code) });
      // The title is the same for every occurrence: it is not the detail.
      expect(problem(code, "req-2", "something else").title).toBe(body.title);
    }
  });

  test("a 4xx carries its detail and its safe fields: primitives and short arrays of them, never the reserved members", () => {
    const body = problem("ERR_FORBIDDEN", "req-1", "needs an admin", {
      groups: ["security"],
      count: 2,
      nested: { secret: "x" },
      mixed: ["a", { b: 1 }],
      long: Array.from({ length: 51 }, (_, i) => i),
      status: 200,
      code: "ERR_NONE",
      instance: "other",
    });
    expect(body).toEqual({
      type: problemType("ERR_FORBIDDEN"),
      title: "Not allowed",
      status: 403,
      detail: "needs an admin",
      code: "ERR_FORBIDDEN",
      instance: "req-1",
      groups: ["security"],
      count: 2,
    });
  });

  test("a 5xx carries no detail and no fields (a target's output may be in them); ERR_INTERNAL only its code and the request id", () => {
    for (const code of CODES.filter((c) => STATUS_BY_CODE[c] >= 500)) {
      const body = problem(code, "req-1", "connector said: password=hunter2", { host: "db.internal" });
      expect(JSON.stringify(body), code).not.toMatch(/hunter2|db\.internal/);
      expect(Object.keys(body).sort(), code).toEqual(
        code === "ERR_INTERNAL" ? ["code", "instance"] : ["code", "instance", "status", "title", "type"],
      );
    }
  });
});

describe("a thrown error, as the client sees it", () => {
  test("a BreakglassError keeps its code and status; a 5xx one is marked for the log", () => {
    const forbidden = toProblem(new BreakglassError("ERR_FORBIDDEN", "no", { groups: ["security"] }), "r");
    expect(forbidden).toMatchObject({ status: 403, unexpected: false, body: { detail: "no", groups: ["security"] } });
    const storage = toProblem(new BreakglassError("ERR_STORAGE", "disk full at /var/lib/x", { path: "/var" }), "r");
    expect(storage.status).toBe(503);
    expect(storage.unexpected).toBe(true);
    expect(storage.body).not.toHaveProperty("detail");
    expect(storage.body).not.toHaveProperty("path");
  });

  test("every error code maps to its own status", () => {
    for (const code of CODES.filter(
      (c): c is ErrorCode =>
        ![
          "ERR_PAYLOAD_TOO_LARGE",
          "ERR_UNSUPPORTED_MEDIA_TYPE",
          "ERR_METHOD_NOT_ALLOWED",
          "ERR_HEADERS_TOO_LARGE",
          "ERR_REQUEST_TIMEOUT",
        ].includes(c),
    )) {
      expect(toProblem(new BreakglassError(code, "x"), "r").status, code).toBe(STATUS_BY_CODE[code]);
    }
  });

  test.each([
    ["FST_ERR_CTP_INVALID_JSON_BODY", 400, 400, "ERR_VALIDATION", "the request body is not valid JSON"],
    [
      "FST_ERR_CTP_EMPTY_JSON_BODY",
      400,
      400,
      "ERR_VALIDATION",
      "the request body is empty; send a JSON object (`{}` when there are no fields)",
    ],
    [
      "FST_ERR_CTP_INVALID_CONTENT_LENGTH",
      400,
      400,
      "ERR_VALIDATION",
      "the request body does not match its Content-Length",
    ],
    ["FST_ERR_VALIDATION", 400, 400, "ERR_VALIDATION", "the request is not valid"],
    [
      "FST_ERR_CTP_BODY_TOO_LARGE",
      413,
      413,
      "ERR_PAYLOAD_TOO_LARGE",
      "the request body is larger than the 64 KiB limit",
    ],
    [
      "FST_ERR_CTP_INVALID_MEDIA_TYPE",
      415,
      415,
      "ERR_UNSUPPORTED_MEDIA_TYPE",
      "send the request body as application/json",
    ],
    ["FST_ERR_NOT_FOUND", 404, 404, "ERR_NOT_FOUND", "no such route"],
    // A framework refusal we did not name, with a 4xx: the client sent something we cannot read.
    ["FST_ERR_BAD_URL", 400, 400, "ERR_VALIDATION", "the request is malformed"],
  ])("fastify's %s (%i) is %i %s with a fixed detail", (fst, frameworkStatus, status, code, detail) => {
    const p = toProblem(fastifyError(fst, frameworkStatus), "r");
    expect(p).toMatchObject({ status, unexpected: false, body: { code, detail } });
    expect(JSON.stringify(p.body)).not.toContain("framework text");
  });

  test("a JSON parser's SyntaxError with a 400 is a validation problem; any other error is a bare 500 to log", () => {
    const syntax = Object.assign(new SyntaxError("Unexpected token } in JSON at position 7"), { statusCode: 400 });
    expect(toProblem(syntax, "r")).toMatchObject({ status: 400, body: { code: "ERR_VALIDATION" } });
    for (const error of [
      new Error("connection refused to 10.0.0.5"),
      new SyntaxError("not from a request"),
      fastifyError("FST_ERR_SOMETHING_INTERNAL", 500),
      "a string",
      null,
    ]) {
      expect(toProblem(error, "r")).toEqual({
        status: 500,
        body: { code: "ERR_INTERNAL", instance: "r" },
        unexpected: true,
      });
    }
  });
});

describe("a request Node's parser refused", () => {
  const parse = (raw: string) => {
    const [head = "", body = ""] = raw.split("\r\n\r\n");
    return { statusLine: head.split("\r\n")[0], head, body: JSON.parse(body) as Record<string, unknown> };
  };

  test.each([
    ["HPE_HEADER_OVERFLOW", "HTTP/1.1 431 Request Header Fields Too Large", "ERR_HEADERS_TOO_LARGE"],
    ["ERR_HTTP_REQUEST_TIMEOUT", "HTTP/1.1 408 Request Timeout", "ERR_REQUEST_TIMEOUT"],
    ["ERR_HTTP_HEADERS_TIMEOUT", "HTTP/1.1 408 Request Timeout", "ERR_REQUEST_TIMEOUT"],
    ["HPE_INVALID_METHOD", "HTTP/1.1 400 Bad Request", "ERR_VALIDATION"],
  ])("%s is answered `%s` as problem+json, and the connection closed", (errorCode, statusLine, code) => {
    const raw = clientErrorResponse({ code: errorCode }, "req-9");
    const r = parse(raw);
    expect(r.statusLine).toBe(statusLine);
    expect(r.head).toMatch(/\r\ncontent-type: application\/problem\+json\r\n/);
    expect(r.head).toMatch(/\r\nconnection: close(\r\n|$)/);
    expect(r.head).toContain(`content-length: ${Buffer.byteLength(raw.split("\r\n\r\n")[1] ?? "")}`);
    expect(r.body).toMatchObject({ code, instance: "req-9", status: Number(statusLine.split(" ")[1]) });
  });
});
