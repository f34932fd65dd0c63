/**
 * Gateway logins: for a target behind the gateway, the holder never gets the target's own
 * credential. Activation swaps it for a gateway login — the same user name, a fresh random
 * password known only to the holder (the broker keeps its SCRAM verifier), and the gateway's
 * address — while the target credential is sealed for the gateway alone.
 */
import { randomBytes } from "node:crypto";
import type { GatewayConfig } from "../config/app-config.js";
import type { GatewayLogin } from "../core/records.js";
import { Redacted } from "../core/redacted.js";
import { formatVerifier, scramVerifier } from "../secrets/scram.js";
import type { SecretBox } from "../secrets/secret-box.js";
import { parseUpstream } from "./upstream.js";

/** Additional authenticated data binding a sealed upstream credential to its grant. */
export const upstreamAad = (grantId: string): string => `breakglass:gateway-upstream:${grantId}`;

/**
 * @param upstream the connection string the postgres connector issued for the grant
 * @returns what the holder gets, and the login the gateway keeps
 */
export function issueGatewayLogin(
  config: GatewayConfig,
  grantId: string,
  upstream: Redacted<string>,
  box: SecretBox,
): { holder: Redacted<string>; login: GatewayLogin } {
  const target = parseUpstream(upstream.reveal());
  const password = randomBytes(24).toString("base64url");
  const host = config.publicHost.includes(":") ? `[${config.publicHost}]` : config.publicHost;
  const sslmode = config.tls ? "require" : "disable";
  const holder = `postgresql://${encodeURIComponent(target.user)}:${password}@${host}:${config.publicPort}/${encodeURIComponent(target.database)}?sslmode=${sslmode}`;
  return {
    holder: new Redacted(holder),
    login: {
      grantId,
      user: target.user,
      verifier: formatVerifier(scramVerifier(password)),
      upstream: box.seal(upstream.reveal(), upstreamAad(grantId)),
    },
  };
}
