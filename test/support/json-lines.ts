/** Files of one JSON value per line (the file alarm channel, recorded deliveries). */
import { existsSync, readFileSync } from "node:fs";

/**
 * The values in `path`, one per complete line (a last line without its newline is still being
 * written and is left for the next read); none while the file does not exist yet.
 */
export function readJsonLines<T = unknown>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .slice(0, -1)
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as T);
}
