/**
 * The package's own folder (where package.json and examples/ are), found from this module's
 * location so it works from src/ (tests) and from dist/src/ (the built CLI) alike.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown }).name === "breakglass") return dir;
      } catch {
        // Not ours or unreadable: keep looking upwards.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the breakglass package folder above ${from}`);
    dir = parent;
  }
}
