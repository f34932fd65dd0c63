/**
 * Security keys through the browser's WebAuthn API. The broker's options are WebAuthn's JSON
 * forms (from @simplewebauthn/server) and it takes the credential's `toJSON()` answer, so the
 * browser's own parse/serialise functions are all that is needed.
 */

/** Whether this browser can use a security key here (WebAuthn with its JSON helpers, secure page). */
export function webauthnAvailable(): boolean {
  return (
    window.isSecureContext &&
    typeof PublicKeyCredential !== "undefined" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function"
  );
}

/** Register a new key with the options of POST /auth/factors/webauthn; the answer for /confirm. */
export async function registerKey(options: Record<string, unknown>): Promise<Record<string, unknown>> {
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(
    options as unknown as PublicKeyCredentialCreationOptionsJSON,
  );
  const credential = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential | null;
  if (!credential) throw new Error("the security key gave no answer");
  return credential.toJSON() as unknown as Record<string, unknown>;
}

/** Sign the challenge of POST /auth/webauthn/challenge with one of the user's keys. */
export async function signWithKey(options: Record<string, unknown>): Promise<Record<string, unknown>> {
  const allow = (options.allowCredentials as unknown[] | undefined) ?? [];
  if (allow.length === 0) throw new Error("no security key is enrolled for this user: use a code instead");
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(
    options as unknown as PublicKeyCredentialRequestOptionsJSON,
  );
  const credential = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential | null;
  if (!credential) throw new Error("the security key gave no answer");
  return credential.toJSON() as unknown as Record<string, unknown>;
}
