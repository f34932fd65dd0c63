/**
 * The session cookie: `bg_session` holds the session token (HttpOnly, SameSite=Lax so the IdP's
 * redirect back carries it, Secure when the public URL is https).
 */
import type { AuthConfig } from "../config/app-config.js";

export const SESSION_COOKIE = "bg_session";

export function sessionCookie(config: AuthConfig, token: string, maxAgeS: number): string {
  return [
    `${SESSION_COOKIE}=${token}`,
    "Path=/",
    "HttpOnly",
    "SameSite=Lax",
    `Max-Age=${Math.max(0, Math.floor(maxAgeS))}`,
    ...(config.secureCookies ? ["Secure"] : []),
  ].join("; ");
}

export function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
