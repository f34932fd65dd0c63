/** The file channel: one JSON line per alarm appended to a local file (a drill's or a lab's receiver). */
import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { AlarmChannelConfig } from "../config/app-config.js";
import { type AlarmChannel, DeliveryError } from "./alarm-channel.js";
import { groupWrites } from "./group-writes.js";

type FileConfig = Extract<AlarmChannelConfig, { type: "file" }>;

export function createFileChannel(config: FileConfig): AlarmChannel {
  // Lines delivered together are appended with one write, in the order they came (a storm of
  // thousands of alarms is a few writes, not thousands of open/append/close).
  let folderMade = false;
  const append = groupWrites<string>(async (lines) => {
    try {
      if (!folderMade) await mkdir(dirname(config.path), { recursive: true });
      folderMade = true;
      await appendFile(config.path, lines.join(""), { mode: 0o600 });
    } catch (e) {
      folderMade = false;
      throw new DeliveryError(`cannot append to ${config.path}: ${(e as Error).message}`, false);
    }
  });
  return {
    name: config.name,
    deliver: (alarm) => append(`${JSON.stringify({ channel: config.name, ...JSON.parse(alarm.payload) })}\n`),
  };
}
