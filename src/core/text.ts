/**
 * Text written by one person and read by another — a justification, a review note, a user name
 * from the IdP — must not be able to act on the reader's screen. This module is the one place
 * that knows which characters can: terminals obey C0/C1 control characters (ESC starts cursor
 * moves, screen clears, OSC 8 hyperlinks, title changes), DEL, and bidi controls reorder what is
 * shown (a "trojan source" line reads differently from what it holds). It is pure, so the API
 * contract, the grant machine, the CLI and the notifiers all share it.
 *
 * Two rules:
 * - At input, free text with such characters is refused ({@link controlCharIn}); only tab and
 *   newline pass, and only in fields that are prose.
 * - At output, whatever got through (older rows, another broker, a target's error text) is shown
 *   visibly: `\x1b` for a C0 character, `\u202e` for the others ({@link terminalText}). The
 *   `\uXXXX` form keeps serialised JSON valid: JSON.stringify already escapes C0 itself.
 */
import { BreakglassError } from "./errors.js";

/**
 * Characters that act on a terminal or reorder text: C0 controls, DEL, C1 controls, the bidi
 * marks, embeddings, overrides and isolates, line/paragraph separators (some terminals and every
 * JS line splitter break lines there), invisible separators (U+180E, U+2060–U+2064, U+FEFF,
 * U+200B) and the tag characters that smuggle invisible ASCII (U+E0000–U+E007F).
 */
const UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  /[\u0000-\u001f\u007f-\u009f\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff\u{e0000}-\u{e007f}]/gu;

/** What characters of a free-text field may be controls: none, or tab and newline (prose). */
export type TextKind = "line" | "prose";

function visible(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  if (code < 0x20) return `\\x${code.toString(16).padStart(2, "0")}`;
  // Astral characters (the tag block) as their UTF-16 pair: still valid inside a JSON string.
  let out = "";
  for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, "0")}`;
  return out;
}

/**
 * Text made safe for a terminal: every unsafe character shown as its escape (`\x1b`, `\u202e`),
 * newline and tab kept. Applied to everything the CLI prints for a person.
 */
export function terminalText(text: string): string {
  return text.replace(UNSAFE, (ch) => (ch === "\n" || ch === "\t" ? ch : visible(ch)));
}

/**
 * Text made safe for one line (a table cell, a log line, a chat message's quoted field): as
 * {@link terminalText}, and newline, carriage return and tab shown as escapes too, so a value
 * cannot start a line that looks like the program's own.
 */
export function lineText(text: string): string {
  return text.replace(UNSAFE, visible);
}

/**
 * The first character a free-text field may not hold, as its visible escape (`\x1b`), or null.
 * `prose` allows tab and newline.
 */
export function controlCharIn(text: string, kind: TextKind): string | null {
  for (const m of text.matchAll(UNSAFE)) {
    const ch = m[0];
    if (kind === "prose" && (ch === "\n" || ch === "\t")) continue;
    return visible(ch);
  }
  return null;
}

/**
 * Characters that show nothing and take no room: controls, format characters (zero-width space
 * and joiners, bidi marks, soft hyphen), and the blank letters (Hangul fillers, braille blank)
 * that render as empty space. Ordinary whitespace is counted as one space between words.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u115f\u1160\u2800\u3164\uffa0]/gu;

/**
 * How many characters of `text` a reader can see: what `justification_min_length` counts. Runs of
 * whitespace count as one space, leading and trailing ones not at all; invisible characters never.
 */
export function visibleLength(text: string): number {
  return [...text.replace(INVISIBLE, "").replace(/\s+/gu, " ").trim()].length;
}

/**
 * Refuse a free-text field holding a control or bidi character (prose may hold tab and newline).
 * @throws ERR_VALIDATION naming the field and the character, shown as its escape
 */
export function requirePlainText(field: string, text: string, kind: TextKind): void {
  const bad = controlCharIn(text, kind);
  if (bad !== null) {
    throw new BreakglassError(
      "ERR_VALIDATION",
      `${field} holds the control character ${bad}: ${kind === "prose" ? "only tab and newline are allowed" : "write it on one line, without control characters"}`,
      { field, character: bad },
    );
  }
}
