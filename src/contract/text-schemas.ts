/**
 * The text rules every input shares — the API's request bodies, the configuration file, the CLI's
 * offline commands — as zod schemas over the pure rules in src/core/text.ts and
 * src/core/user-name.ts.
 */
import { z } from "zod";
import { controlCharIn, type TextKind } from "../core/text.js";
import { normalizeUserName, USER_NAME_MAX, USER_NAME_PATTERN, userNameProblem } from "../core/user-name.js";

/**
 * Free text one person writes and another reads (a justification, a reason, a note): refused when
 * it holds a control or bidi character — ESC, NUL, DEL, C1, U+202E… — which a terminal would obey
 * (src/core/text.ts). `prose` may hold tab and newline; `line` nothing of the kind.
 */
export function plainText(kind: TextKind, max: number) {
  return z
    .string()
    .max(max)
    .check((ctx) => {
      const bad = controlCharIn(ctx.value, kind);
      if (bad !== null) {
        ctx.issues.push({
          code: "custom",
          input: ctx.value,
          message: `holds the control character ${bad}; ${kind === "prose" ? "only tab and newline are allowed" : "write it on one line, without control characters"}`,
        });
      }
    });
}

/**
 * A user name as a person types it (login form, `--owner`): compared NFKC-normalised and
 * lower-cased; refused when it breaks the user-name rule or is reserved (src/core/user-name.ts).
 */
export const UserNameSchema = z
  .string()
  .min(1)
  .max(USER_NAME_MAX)
  .check((ctx) => {
    const problem = userNameProblem(normalizeUserName(ctx.value));
    if (problem !== null) ctx.issues.push({ code: "custom", input: ctx.value, message: problem });
  })
  .describe("A user name: lowercase letters, digits, `_` `.` `-` `@` `+`; not a reserved name (system, anonymous…)");

/**
 * A user name as the configuration writes it: exactly the pattern (no normalisation: the file is
 * the reference every other name is compared with). Reserved names are refused by the
 * configuration's reference checks, with their own hint.
 */
export const ConfigUserNameSchema = z
  .string()
  .max(USER_NAME_MAX)
  .regex(USER_NAME_PATTERN, { error: (iss) => `"${String(iss.input)}" is not a valid user name` })
  .meta({ pattern: USER_NAME_PATTERN.source });
