import { BreakglassError } from "./errors.js";

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** Is `text` a duration such as `30m`, `1h30m`, `2d`, `45s`? Exactly what {@link parseDuration} accepts. */
export function isDuration(text: string): boolean {
  return parseDurationOrNull(text.trim()) !== null;
}

function parseDurationOrNull(text: string): number | null {
  const m = DURATION.exec(text);
  if (!m || text.length === 0) return null;
  let total = 0;
  let any = false;
  const units = ["d", "h", "m", "s"] as const;
  units.forEach((unit, i) => {
    const part = m[i + 1];
    if (part !== undefined) {
      any = true;
      total += Number(part) * (UNIT_SECONDS[unit] ?? 0);
    }
  });
  return any && Number.isSafeInteger(total) ? total : null;
}

/**
 * What is wrong with a duration given as `value` (text, or a bare number from JSON or YAML): a
 * number without a unit says so — it is never taken as seconds silently.
 */
export function durationProblem(value: unknown): string {
  const text = String(value).trim();
  if (typeof value === "number" || /^\d+(\.\d+)?$/.test(text)) {
    return `"${text}" has no unit: write ${text}s, ${text}m, ${text}h or ${text}d`;
  }
  return `"${text}" is not a duration; write it like 30m, 1h30m, 2d or 45s`;
}

/**
 * Parse a duration (`30m`, `1h30m`, `2d`, `45s`) into whole seconds. A bare number is refused.
 * @throws ERR_VALIDATION when the text is not a duration.
 */
export function parseDuration(text: string): number {
  const seconds = parseDurationOrNull(text.trim());
  if (seconds === null) {
    throw new BreakglassError("ERR_VALIDATION", durationProblem(text), { value: text });
  }
  return seconds;
}

/** Format seconds compactly: 5400 → `1h30m`, 0 → `0s`. */
export function formatDuration(totalSeconds: number): string {
  let rest = Math.max(0, Math.floor(totalSeconds));
  if (rest === 0) return "0s";
  let out = "";
  for (const [unit, size] of Object.entries(UNIT_SECONDS).sort((a, b) => b[1] - a[1])) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
