/**
 * How the configuration names a secret without containing it: `{env: NAME}`, `{file: PATH}` or
 * `{sealed: PATH}` (opened by src/secrets/secret-ref.ts on the broker).
 */
import { z } from "zod";

export const secretRefSchema = z
  .union([
    z.object({ env: z.string().min(1).describe("Environment variable holding the secret") }).strict(),
    z.object({ file: z.string().min(1).describe("File holding the secret, relative to the config file") }).strict(),
    z
      .object({
        sealed: z
          .string()
          .min(1)
          .describe(
            "File sealed with `breakglass secret seal`, relative to the config file; opened with the broker's secret key",
          ),
      })
      .strict(),
  ])
  .describe("A secret: `{env: NAME}`, `{file: PATH}` or `{sealed: PATH}` — never the value itself");

export type SecretRef = z.infer<typeof secretRefSchema>;
