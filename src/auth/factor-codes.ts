/**
 * The codes a person types: TOTP (RFC 6238, 6 digits, 30 s steps, one step either side so a phone
 * clock 30 s off still works) and one-time recovery codes (10 per batch, only their hash stored).
 * @see https://www.rfc-editor.org/rfc/rfc6238
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import * as OTPAuth from "otpauth";
import type { LocalFactor } from "../core/records.js";
import type { SecretBox } from "../secrets/secret-box.js";

export const TOTP_PERIOD_S = 30;
/** Steps accepted either side of now. */
export const TOTP_WINDOW = 1;
export const RECOVERY_CODES = 10;

/** What a person typed, without spaces and dashes, lower case. */
export const normalizeCode = (code: string): string => code.replace(/[\s-]/g, "").toLowerCase();

/** A TOTP factor's secret is sealed to its id: one factor's sealed secret cannot stand in for another's. */
export const sealTotpSecret = (box: SecretBox, factorId: string, base32: string): string =>
  box.seal(base32, `factor:${factorId}`);

/** The TOTP generator of a factor (its secret opened from the box). */
export function totpOf(issuer: string, box: SecretBox, factor: LocalFactor, user: string): OTPAuth.TOTP {
  return new OTPAuth.TOTP({
    issuer,
    label: user,
    algorithm: "SHA1",
    digits: 6,
    period: TOTP_PERIOD_S,
    secret: OTPAuth.Secret.fromBase32(box.open(factor.secret, `factor:${factor.id}`).reveal()),
  });
}

/**
 * The time step `code` belongs to, if it is valid at `now` (within the window); null otherwise.
 * The caller accepts a step once (FactorWrites.advanceFactorStep): a replayed code is refused.
 */
export function acceptedStep(totp: OTPAuth.TOTP, code: string, now: number): number | null {
  const delta = totp.validate({ token: normalizeCode(code), timestamp: now, window: TOTP_WINDOW });
  return delta === null ? null : Math.floor(now / 1000 / TOTP_PERIOD_S) + delta;
}

/** A batch of fresh recovery codes, `xxxxx-xxxxx-xxxxx-xxxxx` (80 random bits each). */
export const newRecoveryCodes = (): string[] =>
  Array.from({ length: RECOVERY_CODES }, () => {
    const raw = randomBytes(10).toString("hex");
    return `${raw.slice(0, 5)}-${raw.slice(5, 10)}-${raw.slice(10, 15)}-${raw.slice(15)}`;
  });

/** What is stored of a recovery code: SHA-256 of its normalized form. */
export const recoveryCodeHash = (code: string): string =>
  createHash("sha256").update(normalizeCode(code)).digest("hex");

/** Whether a stored recovery-code hash matches, compared in constant time. */
export const sameHash = (a: string, b: string): boolean => {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
};
