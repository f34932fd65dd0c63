/**
 * The syslog channel: RFC 5424 messages with octet-counting framing, built from real alarms, and
 * delivery to a real TCP collector on loopback.
 */
import net from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeGrant } from "../../test/support/core-fixtures.js";
import { freePort } from "../../test/support/free-port.js";
import { openUnitStore, routeAllTo, type UnitStore } from "../../test/support/unit-store.js";
import type { AlarmChannelConfig } from "../config/app-config.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { grantEvent } from "../core/grant-machine.js";
import type { AlarmRecord } from "../core/records.js";
import { createSyslogChannel, octetCounted, syslogMessage } from "./syslog-channel.js";

type SyslogConfig = Extract<AlarmChannelConfig, { type: "syslog" }>;
let u: UnitStore;

beforeEach(async () => {
  u = await openUnitStore({ now: Date.UTC(2026, 0, 5, 3, 0, 0), routing: routeAllTo("siem") });
});
afterEach(() => u.close());

const alarmOf = async (draft: Parameters<UnitStore["record"]>[0]): Promise<AlarmRecord> => {
  const alarm = (await u.record(draft)).find((a) => a.channel === "siem");
  if (!alarm) throw new Error("no siem alarm");
  return alarm;
};

describe("syslog messages", () => {
  it("carry the facility and the alarm's severity in PRI, the event's time, type and OCSF body", async () => {
    const alarm = await alarmOf(
      grantEvent(makeGrant({ id: "g_sys" }), "grant.emergency_activated", "alice", u.clock.now()),
    );
    const msg = syslogMessage(alarm.payload, { facility: 10, appName: "breakglass", host: "bg-1", pid: 42 });
    const [pri, at, host, app, pid, msgid, sd] = msg.split(" ");
    // facility 10 (authpriv) × 8 + severity 2 (critical)
    expect([pri, at, host, app, pid, msgid, sd]).toEqual([
      "<82>1",
      "2026-01-05T03:00:00.000Z",
      "bg-1",
      "breakglass",
      "42",
      "grant.emergency_activated",
      "-",
    ]);
    const body = msg.slice(msg.indexOf("\ufeff") + 1);
    expect(JSON.parse(body)).toMatchObject({ metadata: { uid: String(alarm.eventSeq) } });
    const info = await alarmOf(nonGrantEvent("auth.login", "bob", u.clock.now(), { user: "bob" }));
    expect(syslogMessage(info.payload, { facility: 10, appName: "bg", host: "h", pid: 1 })).toMatch(/^<86>1 /);
  });

  it("keep header fields printable ASCII without spaces, and escape bidi characters in the body", async () => {
    const alarm = await alarmOf(
      grantEvent(makeGrant({ id: "g_sys", justification: "fix \u202egnp.exe" }), "grant.requested", "alice", 1),
    );
    const msg = syslogMessage(alarm.payload, { facility: 1, appName: "break glass ü", host: "", pid: 7 });
    expect(msg.split(" ").slice(2, 4)).toEqual(["-", "break_glass__"]);
    expect(msg).not.toContain("\u202e");
    expect(msg).toContain("\\u202e");
  });

  it("are framed by their length in bytes, not characters", () => {
    expect(octetCounted("é!").toString("utf8")).toBe("3 é!");
  });
});

describe("delivery to a collector", () => {
  const config = (port: number, timeoutMs = 5_000): SyslogConfig => ({
    type: "syslog",
    name: "siem",
    host: "127.0.0.1",
    port,
    tls: false,
    caFile: null,
    facility: 13,
    appName: "breakglass",
    timeoutMs,
  });

  it("writes one framed message and counts once the connection closes cleanly", async () => {
    const frames: string[] = [];
    const collector = net.createServer((s) => {
      let data = "";
      s.on("data", (c: Buffer) => {
        data += c.toString("utf8");
      });
      s.on("end", () => {
        frames.push(data);
        s.end();
      });
    });
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
    const port = (collector.address() as net.AddressInfo).port;
    try {
      const alarm = await alarmOf(grantEvent(makeGrant({ id: "g_sys" }), "grant.activated", "system", 1));
      await createSyslogChannel(config(port)).deliver(alarm);
      const [frame] = frames;
      const [length, ...rest] = (frame ?? "").split(" ");
      expect(Number(length)).toBe(Buffer.byteLength(rest.join(" "), "utf8"));
      expect(rest.join(" ")).toMatch(/^<108>1 /); // facility 13 × 8 + severity 4 (warning)
    } finally {
      await new Promise((r) => collector.close(r));
    }
  });

  it("retries a collector that cannot be reached or does not close the connection in time", async () => {
    const alarm = await alarmOf(grantEvent(makeGrant({ id: "g_sys" }), "grant.activated", "system", 1));
    const down = await freePort();
    await expect(createSyslogChannel(config(down)).deliver(alarm)).rejects.toMatchObject({
      permanent: false,
      message: `syslog 127.0.0.1:${down} unreachable: ECONNREFUSED`,
    });
    const held: net.Socket[] = [];
    const silent = net.createServer((s) => {
      held.push(s);
      s.on("error", () => {});
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      await expect(createSyslogChannel(config(port, 300)).deliver(alarm)).rejects.toMatchObject({
        permanent: false,
        message: `syslog 127.0.0.1:${port} no clean delivery within 300 ms`,
      });
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
